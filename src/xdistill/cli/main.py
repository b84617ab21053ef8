"""``xdistill``: cache, rank, distill, evaluate and report.

Each verb resolves a typed config (defaults < ``--config FILE`` < flags <
``key=value`` overrides) and calls one library function. User errors print
one line and exit 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import re
import sys
import warnings
from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape

from xdistill import __version__
from xdistill.cli.output import console, emit_json, err_console, print_table
from xdistill.config import resolve, to_dict
from xdistill.errors import XDistillError
from xdistill.runtime import Runtime

try:  # typer >= 0.20 carries its own copy of click's exceptions; older versions use click's
    from typer._click import exceptions as cli_errors
except ImportError:  # pragma: no cover - depends on the installed typer
    from click import exceptions as cli_errors

# Ctrl-C inside a prompt; typer's own copy of click's exceptions has no Abort class.
_ABORT = getattr(cli_errors, "Abort", KeyboardInterrupt)

app = typer.Typer(
    name="xdistill",
    help="Cross-domain knowledge distillation: cache teachers, rank them, distill a small student, report.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

ConfigOpt = typer.Option(None, "--config", "-c", help="YAML file of config values (flags and key=value override it).")
OverridesArg = typer.Argument(None, help="key=value overrides of config fields, e.g. batch_size=128.", show_default=False)
JsonOpt = typer.Option(None, "--json", help="Also write the result as JSON to this file ('-' for stdout).")
TaskOpt = typer.Option(None, "--task", "-t", help="Task folder holding task.yaml.")
ZooOpt = typer.Option(None, "--zoo", "-z", help="Zoo YAML file (teacher methods need one).")
CacheOpt = typer.Option(None, "--cache", help="Cache folder (default: $XDISTILL_HOME/cache).")
TeachersOpt = typer.Option(None, "--teachers", help="Comma-separated teacher names (default: all).")


def methods_help() -> str:
    """The --method help, from the registries: each task kind's methods and the default."""
    from xdistill.kinds import KINDS
    from xdistill.train.config import DistillConfig

    kinds = "; ".join(f"{name}: {', '.join(kind.methods.names())}" for name, kind in KINDS.items())
    return f"Method, per task kind ({kinds}). Default: {DistillConfig().method}."


def _version(value: bool) -> None:
    if value:
        console.print(f"xdistill {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version.")) -> None:
    """Cross-domain knowledge distillation."""


@app.command("cache")
def cache_cmd(
    task: Optional[str] = TaskOpt,
    zoo: Optional[str] = ZooOpt,
    cache_dir: Optional[str] = CacheOpt,
    views: Optional[int] = typer.Option(None, "--views", help="Augmented views of each unlabeled sample to cache."),
    teachers: Optional[str] = TeachersOpt,
    nproc: int = typer.Option(1, "--nproc", help="Processes to launch with torchrun (sharded caching)."),
    config: Optional[Path] = ConfigOpt,
    json_out: Optional[Path] = JsonOpt,
    overrides: Optional[list[str]] = OverridesArg,
) -> None:
    """Run every teacher once over every split of the task and cache its outputs."""
    from xdistill.cache import CacheConfig
    from xdistill.pipeline.cache import run_cache

    flags = {"task": task, "zoo": zoo, "cache_dir": cache_dir, "views": views,
             "teachers": teachers.split(",") if teachers else None}
    cfg = resolve(CacheConfig, config, overrides or [], flags=flags)
    if nproc > 1:
        from xdistill.distributed import launch_torchrun

        raise typer.Exit(launch_torchrun("cache", sys.argv[1:], nproc))
    from xdistill.distributed import distributed_context

    with distributed_context(cfg.device) as ctx:
        summary = run_cache(cfg, Runtime(rank=ctx.rank, world_size=ctx.world_size))
    if ctx.rank == 0:
        emit_json({"config": to_dict(cfg), "queries": summary.queries, "reused": summary.reused,
                   "recomputed_shards": summary.recomputed_shards, "seconds": summary.seconds,
                   "compute_seconds": summary.compute_seconds}, json_out)


@app.command("rank")
def rank_cmd(
    task: Optional[str] = TaskOpt,
    zoo: Optional[str] = ZooOpt,
    metric: Optional[str] = typer.Option(None, "--metric", "-m", help="Metric that ranks and weights (default: auto = gbc, or the next of a documented order that can run)."),
    out: Optional[str] = typer.Option(None, "--out", "-o", help="Write the ranking JSON here."),
    validate: bool = typer.Option(False, "--validate", help="Also distill a short-budget student per teacher and correlate."),
    cache_dir: Optional[str] = CacheOpt,
    teachers: Optional[str] = TeachersOpt,
    config: Optional[Path] = ConfigOpt,
    json_out: Optional[Path] = JsonOpt,
    overrides: Optional[list[str]] = OverridesArg,
) -> None:
    """Score every teacher by task similarity from the cache, rank them and weight them."""
    from xdistill.pipeline.rank import run_rank
    from xdistill.select.config import RankConfig

    flags = {"task": task, "zoo": zoo, "metric": metric, "out": out, "validate": validate or None,
             "cache_dir": cache_dir, "teachers": teachers.split(",") if teachers else None}
    cfg = resolve(RankConfig, config, overrides or [], flags=flags)
    ranking, validation = run_rank(cfg)
    ordered = ranking.ordered()
    metric_names = list(ordered[0].scores)
    rows = [[t.rank, t.name, t.domain, t.architecture, *[t.scores[m] for m in metric_names], t.weight] for t in ordered]
    print_table(f"Teachers for {ranking.task}, ranked by {ranking.metric} (features: {ranking.prepare})",
                ["rank", "teacher", "domain", "arch", *metric_names, "weight"], rows)
    for note in ranking.notes:
        console.print(f"note: {note}")
    if validation is not None:
        print_table("How well each metric predicts distilled accuracy", ["metric", "kendall tau", "spearman rho", "top-1 regret"],
                    [[m, v["kendall_tau"], v["spearman_rho"], v["top1_regret"]] for m, v in validation["metrics"].items()])
    payload = ranking.to_json()
    if validation is not None:
        payload["validation"] = validation
    emit_json(payload, json_out)


@app.command("distill")
def distill_cmd(
    task: Optional[str] = TaskOpt,
    zoo: Optional[str] = ZooOpt,
    method: Optional[str] = typer.Option(None, "--method", "-m", help=methods_help()),
    out: Optional[str] = typer.Option(None, "--out", "-o", help="Output folder (student, metrics, report)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Random seed."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Training epochs."),
    student: Optional[str] = typer.Option(None, "--student", help="Student family (see xdistill students)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the interrupted run in --out."),
    online: bool = typer.Option(False, "--online", help="Run the teachers live instead of reading the cache."),
    cache_dir: Optional[str] = CacheOpt,
    nproc: int = typer.Option(1, "--nproc", help="Processes to launch with torchrun (DDP)."),
    config: Optional[Path] = ConfigOpt,
    json_out: Optional[Path] = JsonOpt,
    overrides: Optional[list[str]] = OverridesArg,
) -> None:
    """Distill a small student on the task (or train a baseline) and write its files and metrics."""
    from xdistill.pipeline.distill import config_problems, distill
    from xdistill.train.config import DistillConfig

    flags = {"task": task, "zoo": zoo, "method": method, "out": out, "seed": seed, "epochs": epochs,
             "resume": resume or None, "online": online or None, "cache_dir": cache_dir,
             "student": {"name": student} if student else None}
    cfg = resolve(DistillConfig, config, overrides or [], flags=flags)
    problems = config_problems(cfg)
    if not cfg.out:
        problems.append("No output folder given. Pass --out DIR.")
    if problems:
        from xdistill.errors import join_problems

        raise XDistillError(join_problems(problems, "Invalid distill config"))
    if nproc > 1:
        from xdistill.distributed import launch_torchrun

        raise typer.Exit(launch_torchrun("distill", sys.argv[1:], nproc))
    from xdistill.distributed import distributed_context

    with distributed_context(cfg.device) as ctx:
        wrap = None
        if ctx.active:
            import dataclasses

            from torch.nn.parallel import DistributedDataParallel

            cfg = dataclasses.replace(cfg, device=ctx.device)
            wrap = lambda m: DistributedDataParallel(m, device_ids=[ctx.local_rank] if ctx.device.startswith("cuda") else None)  # noqa: E731
        result = distill(cfg, runtime=Runtime(rank=ctx.rank, world_size=ctx.world_size, wrap=wrap))
    if ctx.rank == 0:
        emit_json(result.metrics, json_out)


@app.command("eval")
def eval_cmd(
    student_dir: Path = typer.Argument(..., help="Folder of a finished run (the --out of distill) or a condensed folder."),
    task: Optional[str] = typer.Option(None, "--task", "-t", help="Task folder to score on (default: the run's own)."),
    split: str = typer.Option("test", "--split", help="Split to score (one with labels, e.g. test)."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Generation: sampling steps (default: the run's or teacher's own)."),
    guidance: Optional[float] = typer.Option(None, "--guidance", help="Generation: guidance scale (default: the run's or teacher's own; 1 = none)."),
    json_out: Optional[Path] = JsonOpt,
    overrides: Optional[list[str]] = typer.Argument(None, help="For a condensed folder: key=value overrides of the "
                                                    "evaluation recipe (student, seeds, steps, ...).", show_default=False),
) -> None:
    """Score a run's student on a task split, by the run's task kind; a condensed folder (condense.json) is scored
    by training fresh students on it with a fixed recipe (key=value overrides of that recipe, e.g. seeds=1)."""
    from xdistill.condense.store import is_condensed

    if is_condensed(student_dir):
        from xdistill.cli.condense import evaluate_condensed_cmd

        return evaluate_condensed_cmd(student_dir, task, overrides or [], json_out)
    if overrides:
        raise XDistillError(f"key=value overrides ({' '.join(overrides)}) apply to a condensed folder's evaluation; "
                            f"'{student_dir}' is a run. Remove them.")
    from xdistill.pipeline.evaluate import evaluate_saved, run_kind

    options = {k: v for k, v in (("steps", steps), ("guidance", guidance)) if v is not None}
    if options and run_kind(student_dir) != "generation":
        raise XDistillError(f"--steps and --guidance apply to generation runs and teachers; '{student_dir}' is a "
                            f"{run_kind(student_dir)} run. Remove them.")
    report = evaluate_saved(student_dir, task, split, **options)
    scalars = [[k, v] for k, v in report.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    print_table(f"{student_dir} on {task or 'its task'} [{split}]", ["metric", "value"], scalars)
    emit_json(report, json_out)


@app.command("export")
def export_cmd(
    student_dir: Path = typer.Argument(..., help="Folder of a saved student."),
    format: str = typer.Option("onnx", "--format", "-f", help="onnx or torchscript."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Output file (default: student.onnx / student.pt beside it)."),
    json_out: Optional[Path] = JsonOpt,
) -> None:
    """Export a saved student; the file's outputs are checked against PyTorch (to 1e-5)."""
    from xdistill.students.export import export_student
    from xdistill.students.io import load_student

    model, meta = load_student(student_dir)
    path = out or student_dir / ("student.onnx" if format == "onnx" else "student.pt")
    info = export_student(model, meta, format, path)
    console.print(f"wrote {info['path']} ({format}); max |difference| to PyTorch {info['max_abs_diff']:.2e}")
    emit_json(info, json_out)


@app.command("students")
def students_cmd(
    input_shape: str = typer.Option("1,28,28", "--input-shape", help="Sample shape: C,H,W for images, D for features, L for tokens."),
    num_classes: int = typer.Option(10, "--num-classes", help="Number of target classes."),
    json_out: Optional[Path] = JsonOpt,
) -> None:
    """List the student families with parameters and FLOPs for an input size."""
    from xdistill.students import describe_students

    try:
        shape = tuple(int(v) for v in input_shape.split(","))
    except ValueError:
        raise XDistillError(f"--input-shape must be comma-separated integers such as 1,28,28. Got {input_shape!r}.") from None
    rows = describe_students(shape, num_classes)
    print_table(f"Students for input {shape}, {num_classes} classes", ["student", "params", "FLOPs", "knobs"],
                [[r["name"], r["params"], r["flops"], ", ".join(f"{k}={v}" for k, v in r["knobs"].items())] for r in rows])
    emit_json(rows, json_out)


@app.command("pretrain")
def pretrain_cmd(
    task: Optional[list[str]] = typer.Option(None, "--task", "-t", help="A labeled task folder: its labeled split is the pool (language models: repeat --task to pool the train texts of several)."),
    images: Optional[str] = typer.Option(None, "--images", help="Or an image folder with one sub-folder per class."),
    student: Optional[str] = typer.Option(None, "--student", help="Student family (default: per the input; see xdistill students)."),
    out: Optional[str] = typer.Option(None, "--out", "-o", help="The .safetensors file to write."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Passes over the pool (default 10)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Random seed."),
    config: Optional[Path] = ConfigOpt,
    json_out: Optional[Path] = JsonOpt,
    overrides: Optional[list[str]] = OverridesArg,
) -> None:
    """Pretrain a generic student for `--method finetune` (and `init=` of any method) on a labeled pool."""
    from xdistill.pipeline.pretrain import run_pretrain
    from xdistill.train.config import PretrainConfig

    flags = {"task": task[0] if task else None, "tasks": list(task[1:]) if task and len(task) > 1 else None,
             "images": images, "out": out, "epochs": epochs, "seed": seed,
             "student": {"name": student} if student else None}
    cfg = resolve(PretrainConfig, config, overrides or [], flags=flags)
    path = run_pretrain(cfg, Runtime(log=console.print))
    console.print(f"use it with: xdistill distill --method finetune init={path} ...")
    emit_json({"config": to_dict(cfg), "out": str(path)}, json_out)


@app.command("generate")
def generate_cmd(
    source: Path = typer.Argument(..., help="A run folder (the --out of distill), a teacher folder or a pretrained .safetensors file."),
    prompt: str = typer.Option("", "--prompt", "-p", help="Text to continue (language models)."),
    n: int = typer.Option(1, "--n", help="Samples to draw."),
    max_new_tokens: int = typer.Option(64, "--max-new-tokens", help="Tokens to add to the prompt."),
    temperature: float = typer.Option(0.8, "--temperature", help="Sampling temperature (0 = greedy)."),
    seed: int = typer.Option(0, "--seed", help="Random seed of the sampling."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Image generators: sampling steps (default: the source's own)."),
    guidance: Optional[float] = typer.Option(None, "--guidance", help="Image generators: guidance scale (default: the source's own; 1 = none)."),
    label: Optional[int] = typer.Option(None, "--class", help="Image generators: draw every sample of this class index (default: uniform)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Language models: write the samples as JSONL here instead of printing them; image generators: the .npz to write (x in [0, 1], y)."),
) -> None:
    """Sample from a generative run or teacher: language models continue --prompt; image generators write --out FILE.npz."""
    import json

    from xdistill.io import atomic_write_text
    from xdistill.pipeline.generate import generate, source_kind

    if source_kind(source) == "generation":
        return generate_images_cmd(source, n, steps, guidance, seed, label, out)
    if steps is not None or guidance is not None or label is not None:
        raise XDistillError("--steps, --guidance and --class apply to image generators. Remove them.")
    samples = generate(source, prompt=prompt, n=n, max_new_tokens=max_new_tokens, temperature=temperature, seed=seed)
    if out is not None:
        atomic_write_text(out, "".join(json.dumps(s, ensure_ascii=False) + "\n" for s in samples))
        console.print(f"wrote {len(samples)} samples to {out}")
        return
    for sample in samples:
        console.print(sample["prompt"] + sample["continuation"], highlight=False, markup=False)


def generate_images_cmd(source: Path, n: int, steps: Optional[int], guidance: Optional[float], seed: int,
                        label: Optional[int], out: Optional[Path]) -> None:
    import io

    import numpy as np

    from xdistill.io import atomic_write_bytes
    from xdistill.pipeline.generate import generate

    if out is None or out.suffix != ".npz":
        raise XDistillError(f"An image generator writes its samples to an .npz file. Pass --out FILE.npz. Got {out}.")
    samples = generate(source, n=n, steps=steps, guidance=guidance, seed=seed, label=label)
    buffer = io.BytesIO()
    np.savez(buffer, x=samples["x"], y=samples["y"])
    atomic_write_bytes(out, buffer.getvalue())
    console.print(f"wrote {len(samples['y'])} samples ({samples['steps']} steps, guidance {samples['guidance']:g}) to {out}")


@app.command("demo")
def demo_cmd(
    world: str = typer.Option("images", "--world", help="images (the digits world, default), lm (language models) or gen (image generation)."),
    export: Optional[Path] = typer.Option(None, "--export", help="Write the demo world (tasks + zoo) to this folder and stop."),
    home: Optional[Path] = typer.Option(None, "--home", help="Where the world is built (default: $XDISTILL_HOME)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Where run outputs go (default: $XDISTILL_HOME/demo-runs)."),
    quick: bool = typer.Option(False, "--quick", help="One target and a short budget (a smoke run)."),
    tokenizers: str = typer.Option("shared", "--tokenizers", help="lm world: shared (one tokenizer for every model) "
                                   "or mixed (each teacher its own, none the student's)."),
) -> None:
    """Build a demo world (digits images, or language models) and run the pipeline on it."""
    if tokenizers not in ("shared", "mixed") or (tokenizers == "mixed" and world != "lm"):
        raise XDistillError(f"--tokenizers must be shared or mixed, and mixed goes with --world lm. Got --world {world} "
                            f"--tokenizers {tokenizers}.")
    if world == "lm":
        from xdistill.demo.lm_world import run_lm_demo

        if tokenizers == "mixed":
            from xdistill.demo.lm_xtok_world import build_xtok_world

            run_lm_demo(export=export, home=home, out=out, quick=quick, world=build_xtok_world(home),
                        runs="lm-xtok-demo-runs")
        else:
            run_lm_demo(export=export, home=home, out=out, quick=quick)
        return
    if world == "gen":
        from xdistill.demo.gen_world import run_gen_demo

        run_gen_demo(export=export, home=home, out=out, quick=quick)
        return
    if world != "images":
        raise XDistillError(f"--world must be images, lm or gen. Got {world!r}.")
    from xdistill.demo.run import run_demo

    run_demo(export=export, home=home, out=out, quick=quick)


from xdistill.cli.bench import register as _register_bench  # noqa: E402  (bench lives in its own file)

_register_bench(app)
from xdistill.cli.report import register as _register_report  # noqa: E402  (report lives in its own file)

_register_report(app)
from xdistill.cli.condense import register as _register_condense  # noqa: E402  (condense lives in its own file)

_register_condense(app)


# Control characters inside a message come from the user's own keys, names or paths; shown escaped,
# they cannot break the message's one line per problem ("header:" then "  - problem" lines).
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f]|\n(?!  - )")


def user_message(exc: XDistillError) -> str:
    return _CONTROL.sub(lambda found: found.group().encode("unicode_escape").decode(), str(exc))


def main(argv: list[str] | None = None) -> None:
    """Console entry point: user errors -> one line on stderr and exit status 2."""
    warnings.simplefilter("default")
    # TorchScript is the zoo's teacher format; torch's notice that it is deprecated is not the user's concern.
    warnings.filterwarnings("ignore", message=r".*torch\.jit.*deprecated", category=DeprecationWarning)
    warnings.filterwarnings("ignore", message=r".*legacy TorchScript-based ONNX export", category=DeprecationWarning)
    try:
        # Not standalone: click's usage errors reach the handler below and read like every other user error.
        code = app(args=argv, prog_name="xdistill", standalone_mode=False)
    except XDistillError as exc:
        _fail(user_message(exc))
    except cli_errors.NoArgsIsHelpError as exc:  # bare `xdistill` or `xdistill VERB`: show the help
        exc.show()
        sys.exit(exc.exit_code)
    except cli_errors.UsageError as exc:
        command = exc.ctx.command_path if exc.ctx is not None else "xdistill"
        text = exc.format_message().strip()
        _fail(f"{text}{'' if text.endswith(('.', '?')) else '.'} See '{command} --help'.", exc.exit_code)
    except cli_errors.ClickException as exc:  # e.g. a --config file that does not exist
        _fail(exc.format_message(), exc.exit_code)
    except (KeyboardInterrupt, _ABORT):
        err_console.print("interrupted")
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)  # typer.Exit(code) from a verb (a torchrun launch) returns its code


def _fail(message: str, code: int = 2) -> None:
    err_console.print(f"[bold red]error:[/] {escape(message)}", markup=True, highlight=False, soft_wrap=True)
    sys.exit(code)


if __name__ == "__main__":
    main()
