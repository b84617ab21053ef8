"""``xdistill bench``: every target x method x seed of a suite, with tables and
an HTML report; ``--perf`` measures what the teacher cache costs instead, and
``--perf --sweep`` how caching and distillation scale with the pool's size."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from xdistill.cli.output import console, emit_json, print_table


def register(app: typer.Typer) -> None:
    """Add the ``bench`` command to ``app``."""

    @app.command("bench")
    def bench_cmd(
        suite: str = typer.Option("demo", "--suite", help="Suite of targets (demo: the digits demo world; robust: targets the demo zoo does not fit; mismatch: a pool 60% outside the label set and its clean twin)."),
        seeds: int = typer.Option(3, "--seeds", help="Seeds per target and method (0..N-1)."),
        methods: Optional[str] = typer.Option(None, "--methods", help="Comma-separated methods (default: every method of the task kind); a variant adds its own settings with '+': weighted+loss=sinkd."),
        epochs: Optional[int] = typer.Option(None, "--epochs", help="Epochs per run (default: 30; 8 with --quick)."),
        out: Optional[Path] = typer.Option(None, "--out", "-o", help="Output folder (default: $XDISTILL_HOME/bench/SUITE)."),
        quick: bool = typer.Option(False, "--quick", help="The short budget (8 epochs); with --perf, fewer repeats."),
        validate: bool = typer.Option(False, "--validate", help="Also correlate each selection metric with accuracy."),
        perf: bool = typer.Option(False, "--perf", help="Measure the cache's time and memory costs instead."),
        sweep: bool = typer.Option(False, "--sweep", help="With --perf: cache and distill synthetic pools of 10k, 100k "
                                   "and 1M images on disk (x.npy, PNG folders), fresh processes, peak RSS and images/s."),
        sweep_steps: Optional[int] = typer.Option(None, "--sweep-steps", help="With --sweep: training steps of each epoch of the distill runs (default 40)."),
        sweep_repeats: Optional[int] = typer.Option(None, "--sweep-repeats", help="With --sweep: rounds of measurement; each figure is their median (default 3)."),
        track: bool = typer.Option(False, "--track", help="Log new runs to TensorBoard / MLflow when installed."),
        cache_dir: Optional[Path] = typer.Option(None, "--cache", help="Teacher-output cache (default: $XDISTILL_HOME/cache)."),
        home: Optional[Path] = typer.Option(None, "--home", help="Where the demo world lives (default: $XDISTILL_HOME)."),
        json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the results as JSON here ('-': stdout)."),
        condense: bool = typer.Option(False, "--condense", help="The condensation bench instead: methods x images per "
                                      "class x hard/soft labels on the demo's target-only MNIST images, and the reuse "
                                      "check (docs/condense.md)."),
        generation: bool = typer.Option(False, "--generation", help="The generation bench instead: the generative "
                                        "world's teacher at 50, 20 and 8 steps against every method's student at 1, 2 "
                                        "and 4 steps (--methods teacher,consistency,... runs some pieces; resumable)."),
    ) -> None:
        """Run every target x method x seed (resumable) and write results.json, results.md and report.html."""
        if generation:
            from xdistill.bench.generation import COLUMNS, check_methods, run_generation_bench, table_rows
            from xdistill.demo.gen_world import build_gen_world

            chosen = [m.strip() for m in methods.split(",") if m.strip()] if methods else None
            check_methods(chosen)
            results = run_generation_bench(build_gen_world(home, console.print), home, out, chosen, quick,
                                           log=console.print)
            print_table(f"Generation bench on {results['task']}", COLUMNS, table_rows(results["rows"]))
            emit_json(results, json_out)
            return
        if condense:
            from xdistill.cli.condense import run_condense_bench_cmd

            run_condense_bench_cmd(home, out, methods, seeds, quick, json_out)
            return
        if sweep and not perf:
            from xdistill.errors import XDistillError

            raise XDistillError("--sweep is part of the performance bench. Pass --perf --sweep.")
        if sweep:
            from xdistill.bench.sweep import run_sweep
            from xdistill.errors import XDistillError

            given = {"steps": sweep_steps, "repeats": sweep_repeats}
            bad = [f"--sweep-{k} must be >= 1. Got {v}." for k, v in given.items() if v is not None and v < 1]
            if bad:
                raise XDistillError(" ".join(bad))
            emit_json(run_sweep(out=out, log=console.print, **{k: v for k, v in given.items() if v is not None}),
                      json_out)
            return
        if perf:
            from xdistill.bench.perf import run_perf
            from xdistill.demo.suite import demo_suite

            first = sorted(demo_suite(home, progress=False, log=None)[0], key=lambda t: t.name)[0]
            emit_json(run_perf(first.task_dir, first.zoo, out=out, quick=quick, log=console.print), json_out)
            return
        from xdistill.bench.suite import BenchConfig, chosen_methods, run_bench
        from xdistill.demo.suite import SUITES, demo_suite
        from xdistill.errors import XDistillError
        from xdistill.kinds.classification.methods import METHODS
        from xdistill.report.bench import accuracy_rows, gap_rows
        from xdistill.runtime import Runtime

        if suite not in SUITES:
            raise XDistillError(f"Unknown suite '{suite}'. Available: {', '.join(SUITES)}.")
        chosen = [m.strip() for m in methods.split(",") if m.strip()] if methods else []
        bench = BenchConfig(seeds=seeds, methods=chosen, epochs=epochs or 0, quick=quick, validate=validate,
                            track=track, out=str(out or ""), suite=suite)
        problems = bench.problems() + chosen_methods(chosen, METHODS)[1]
        if problems:
            from xdistill.errors import join_problems

            raise XDistillError(join_problems(problems, "Invalid bench"))
        targets, default_cache = demo_suite(home, log=console.print, suite=suite)
        bench.cache_dir = str(cache_dir or default_cache)
        results = run_bench(targets, bench, Runtime(log=console.print))
        summary = results["summary"]
        columns, rows = accuracy_rows(results, summary)
        print_table(f"Test accuracy at the last epoch ({results['epochs']} epochs; mean ± std over "
                    f"{len(results['seeds'])} seeds)", columns, rows)
        columns, rows = gap_rows(summary)
        if rows:
            print_table("Gaps in mean test accuracy", columns, rows)
        for target, found in (results.get("validation") or {}).items():
            print_table(f"{target}: how well each metric predicts distilled accuracy",
                        ["metric", "kendall tau", "spearman rho", "top-1 regret"],
                        [[m, q["kendall_tau"], q["spearman_rho"], q["top1_regret"]]
                         for m, q in found["metrics"].items()])
        emit_json(results, json_out)
