"""``xdistill condense``: a task condensed into a few synthetic images per class."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from xdistill.cli.output import console, emit_json


def condense_methods_help() -> str:
    from xdistill.condense import methods_of

    return (f"Image method ({', '.join(methods_of('images'))}) or label method ({', '.join(methods_of('labels'))}: "
            "soft labels from the zoo on random real images). Default: dm.")


def register(app: typer.Typer) -> None:
    """Add the ``condense`` command to ``app``."""

    @app.command("condense")
    def condense_cmd(
        task: Optional[str] = typer.Option(None, "--task", "-t", help="Image classification task folder."),
        ipc: Optional[int] = typer.Option(None, "--ipc", help="Images per class (default 10)."),
        method: Optional[str] = typer.Option(None, "--method", "-m", help=condense_methods_help()),
        out: Optional[str] = typer.Option(None, "--out", "-o", help="Output folder: condensed.npz, condense.json, condensed.png."),
        zoo: Optional[str] = typer.Option(None, "--zoo", "-z", help="Zoo YAML: soft labels (labels=relabel|committee), "
                                          "features=teacher and the pseudo-labeled pool need it."),
        seed: Optional[int] = typer.Option(None, "--seed", help="Random seed."),
        cache_dir: Optional[str] = typer.Option(None, "--cache", help="Cache folder (default: $XDISTILL_HOME/cache)."),
        config: Optional[Path] = typer.Option(None, "--config", "-c", help="YAML file of config values."),
        json_out: Optional[Path] = typer.Option(None, "--json", help="Also write condense.json here ('-' for stdout)."),
        overrides: Optional[list[str]] = typer.Argument(None, help="key=value overrides, e.g. iterations=500 labels=relabel.",
                                                        show_default=False),
    ) -> None:
        """Condense a task into a few synthetic images per class (with soft labels from the zoo on request)."""
        from xdistill.condense import CondenseConfig
        from xdistill.config import resolve
        from xdistill.pipeline.condense import condense

        flags = {"task": task, "ipc": ipc, "method": method, "out": out, "zoo": zoo, "seed": seed, "cache_dir": cache_dir}
        cfg = resolve(CondenseConfig, config, overrides or [], flags=flags)
        emit_json(condense(cfg, log=console.print), json_out)


def evaluate_condensed_cmd(folder: Path, task: Optional[str], overrides: list[str], json_out: Optional[Path]) -> None:
    """``xdistill eval CONDENSED_DIR``: the fixed recipe's students on the condensed set and the baselines."""
    from xdistill.cli.output import print_table
    from xdistill.condense.evaluate import EvalConfig
    from xdistill.config import resolve
    from xdistill.pipeline.condense import evaluate_condensed

    cfg = resolve(EvalConfig, None, overrides)
    report = evaluate_condensed(folder, cfg, task)
    rows = []
    for key in ("condensed_hard", "condensed_soft", "random_real_hard", "full_data"):
        if key in report:
            share = (report.get("share_of_gap") or {}).get(key)
            rows.append([key.replace("_", " "), report[key]["accuracy_mean"], report[key]["accuracy_std"],
                         "" if share is None else f"{share:.1%}"])
    print_table(f"{folder}: {report['method']} at {report['ipc']} images per class, {cfg.student} x {cfg.seeds} seeds, "
                f"{cfg.steps} steps", ["trained on", "test accuracy", "std", "share of the gap to full data"], rows)
    emit_json(report, json_out)


def run_condense_bench_cmd(home: Optional[Path], out: Optional[Path], methods: Optional[str], seeds: int, quick: bool,
                           json_out: Optional[Path]) -> None:
    """``xdistill bench --condense``: the condensation table on the demo's target-only MNIST images and the reuse
    check on the demo's mnist-noise target."""
    from xdistill.bench.condense import CondenseBenchConfig, reuse_check, run_condense_bench
    from xdistill.cli.output import print_table
    from xdistill.report.condense import condense_table, markdown_table, reuse_table
    from xdistill.demo.condense_target import condense_target
    from xdistill.demo.world import build_world
    from xdistill.home import xdistill_home

    world = build_world(home, progress=False, log=console.print)
    target = condense_target(home)
    chosen = [m.strip() for m in methods.split(",") if m.strip()] if methods else None
    bench = CondenseBenchConfig(seeds=seeds, out=str(out or Path(home or xdistill_home()) / "bench" / "condense"),
                                **({"methods": chosen} if chosen else {}))
    if quick:
        bench.ipcs, bench.recipe = [1], {"steps": 20}
        bench.condense = {"iterations": 5}
    reuse = reuse_check(world.task_paths[REUSE_TARGET], world.zoo_path, REUSE_METHODS, dict(REUSE_CONDENSE),
                        epochs=REUSE_EPOCHS if not quick else 2, seeds=1,
                        condensed_settings=dict(REUSE_CONDENSED_SETTINGS),
                        shared_settings=dict(REUSE_SHARED_SETTINGS), log=console.print)
    results = run_condense_bench(target, world.zoo_path, bench, log=console.print, reuse=reuse)
    columns, rows = condense_table(results)
    print_table(f"Condensed {results['task']}: test accuracy (%)", columns, rows)
    if results.get("reuse"):
        print_table("Reuse", *reuse_table(results["reuse"]))
    console.print(markdown_table(columns, rows))
    emit_json(results, json_out)


# The reuse check: these distillation methods on a demo target, on its full pool and with labeled_from= its
# condensed set (one seed each: full-pool runs are the bench's longest part). mnist-noise ties with mnist-color for
# the largest pool (1,400 images), so the wall-time ratio means most there, and its teachers' confident predictions
# are accurate enough for the pseudo-labeled pool (docs/benchmarks.md reports the other targets too).
REUSE_TARGET = "mnist-noise"
REUSE_METHODS = ["weighted", "supervised"]
# Condensed once from the labeled and pseudo-labeled pool: 50 a class, the herding coreset (as good as matching from
# 10 a class on the condensation target, and seconds to make), with the zoo's soft labels.
REUSE_CONDENSE = {"method": "herding", "labels": "relabel", "ipc": 50}
# Every condensed image is labeled, so a step takes its 64 images (what a full-target step takes from the pool)
# from the labeled split: batch_size 16 x unlabeled_ratio 4 becomes 64 x 1.
REUSE_CONDENSED_SETTINGS = {"batch_size": 64, "unlabeled_ratio": 1}
# Every run, full or condensed, is scored once at its end: the check times training, not learning curves.
REUSE_SHARED_SETTINGS = {"eval_every": 0}
REUSE_EPOCHS = 30
