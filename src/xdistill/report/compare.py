"""Several runs of one task side by side: ``xdistill report RUN [RUN ...] --out FILE.html``.

Each run folder is what ``xdistill distill --out`` leaves: ``metrics.json`` (the
finished run's scores) and ``config.yaml`` (its resolved config). The report
holds a method table, per-class accuracy, calibration, cost and learning curves,
and flags every student that ended below its best teacher.

    runs = load_runs([Path("runs/supervised"), Path("runs/weighted")])
    write_compare_report(runs, Path("compare.html"))
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from xdistill.errors import XDistillError, join_problems
from xdistill.report import plots
from xdistill.report.html import HtmlPage
from xdistill.report.run import shortfall_flag
from xdistill.report.shortfall import teacher_accuracies

METRICS_NAME = "metrics.json"
CONFIG_NAME = "config.yaml"


@dataclass(frozen=True)
class RunRecord:
    """One finished run as the report reads it."""

    folder: Path
    metrics: dict[str, Any]
    config: dict[str, Any]  # the run's config.yaml; {} where the folder has none
    label: str = ""  # how tables name the run
    plot_label: str = ""  # how figures name it (at most PLOT_LABEL_CHARS characters)


def _read_run(folder: Path) -> tuple[RunRecord | None, str | None]:
    if not folder.is_dir():
        return None, (f"'{folder}' is not a folder (it does not exist or is a file). "
                      "Pass the --out folder of an 'xdistill distill' run.")
    metrics_path = folder / METRICS_NAME
    if not metrics_path.is_file():
        return None, (f"'{folder}' is not a finished run: it has no {METRICS_NAME}. Finish it (run the same "
                      "'xdistill distill' command again with resume=true) or pass a folder that holds one.")
    try:
        metrics = json.loads(metrics_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, f"'{metrics_path}' cannot be read as JSON ({exc}). Run 'xdistill distill' again into this folder."
    if not isinstance(metrics, dict) or not isinstance(metrics.get("test"), dict):
        return None, (f"'{metrics_path}' has no 'test' scores (expected an object with a 'test' object). "
                      "Pass the folder of a finished 'xdistill distill' run.")
    config: dict[str, Any] = {}
    config_path = folder / CONFIG_NAME
    if config_path.is_file():
        try:
            loaded = yaml.safe_load(config_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            return None, f"'{config_path}' cannot be read as YAML ({exc}). Restore it or remove it."
        config = loaded if isinstance(loaded, dict) else {}
    return RunRecord(folder, metrics, config), None


def _labels(runs: Sequence[RunRecord]) -> list[str]:
    """'method (seed N)' per run; the folder name is added where two runs would read alike."""
    plain = [f"{r.metrics.get('method')} (seed {r.metrics.get('seed')})" for r in runs]
    repeated = Counter(plain)
    return [label if repeated[label] == 1 else f"{label} {r.folder.name}" for label, r in zip(plain, runs)]


def _output_problem(out: str | Path) -> str | None:
    out = Path(out)
    if out.is_dir():
        return f"--out '{out}' is a folder; expected an .html file path such as '{out / 'compare.html'}'."
    if out.suffix.lower() not in (".html", ".htm"):
        return f"--out must name an .html file. Got '{out}'. Use a name such as 'compare.html'."
    return None


# Legends and tick labels show at most this many characters of a run's label.
PLOT_LABEL_CHARS = 40


def plot_labels(labels: Sequence[str]) -> dict[str, str]:
    """Each label as a figure shows it: long ones keep their start and end around '...' ('run 3' if that collides)."""
    half = (PLOT_LABEL_CHARS - 3) // 2
    short = {label: label if len(label) <= PLOT_LABEL_CHARS else f"{label[:half]}...{label[-half:]}"
             for label in labels}
    if len(set(short.values())) < len(short):
        return {label: f"run {i + 1}" for i, label in enumerate(labels)}
    return short


def load_runs(folders: Sequence[str | Path], out: str | Path | None = None) -> list[RunRecord]:
    """Read every run folder, labelled for the report.

    Raises one XDistillError that names every unusable folder (and a bad ``out``
    path, when given) at once, or the folders of each task when runs of several
    tasks are mixed.
    """
    problems = [] if out is None else [p for p in [_output_problem(out)] if p]
    if not folders:
        problems.append("No run to report. Pass one or more run folders (the --out of 'xdistill distill').")
    runs = []
    for folder in folders:
        run, problem = _read_run(Path(folder))
        if problem:
            problems.append(problem)
        else:
            runs.append(run)
    if problems:
        raise XDistillError(join_problems(problems, "Cannot compare these runs"))
    by_task: dict[str, list[str]] = {}
    for run in runs:
        by_task.setdefault(str(run.metrics.get("task")), []).append(str(run.folder))
    if len(by_task) > 1:
        listed = "; ".join(f"task '{task}': {', '.join(folders)}" for task, folders in by_task.items())
        raise XDistillError(f"Runs of different tasks cannot be compared side by side ({listed}). "
                            "Pass runs of one task, or write one report per task.")
    labels = _labels(runs)
    short = plot_labels(labels)
    return [RunRecord(r.folder, r.metrics, r.config, label, short[label]) for r, label in zip(runs, labels)]


def compare_runs(folders: Sequence[str | Path], out: str | Path) -> tuple[Path, list[RunRecord]]:
    """Check the runs and ``out``, then write the comparison report; return its path and the runs."""
    runs = load_runs(folders, out)
    return write_compare_report(runs, out), runs


def headline_of(metrics: Mapping[str, Any]) -> tuple[str, bool]:
    """(the metrics.json key that summarises a run, whether lower is better): a run of a kind other than
    classification names its own under ``headline``."""
    headline = metrics.get("headline")
    if isinstance(headline, Mapping) and isinstance(headline.get("key"), str):
        return headline["key"], bool(headline.get("lower_is_better"))
    return "accuracy", False


def headline_rows(runs: Sequence[RunRecord]) -> tuple[list[str], list[list[Any]]]:
    """The method table of a kind with its own headline: the headline, then every other scalar test score."""
    key, lower = headline_of(runs[0].metrics)
    others = sorted({k for r in runs for k, v in (r.metrics.get("test") or {}).items()
                     if k != key and isinstance(v, (int, float)) and not isinstance(v, bool)})
    columns = ["run", "method", "seed", "epochs", f"test {key} ({'lower' if lower else 'higher'} is better)",
               *[f"test {k}" for k in others], "params", "wall time (s)"]
    rows = []
    for r in runs:
        test = r.metrics.get("test") or {}
        rows.append([r.label, r.metrics.get("method"), r.metrics.get("seed"), r.config.get("epochs"), test.get(key),
                     *[test.get(k) for k in others], r.metrics.get("params"), r.metrics.get("seconds")])
    return columns, rows


def method_rows(runs: Sequence[RunRecord]) -> tuple[list[str], list[list[Any]]]:
    """The method table: one row per run, test scores and student cost."""
    if headline_of(runs[0].metrics)[0] != "accuracy":
        return headline_rows(runs)
    columns = ["run", "method", "seed", "epochs", "test accuracy", "macro F1", "ECE", "NLL", "params", "FLOPs",
               "latency (ms)"]
    rows = []
    for r in runs:
        test, cost = r.metrics.get("test") or {}, r.metrics.get("cost") or {}
        epochs = r.config.get("epochs", len(r.metrics.get("curves") or []) or None)
        rows.append([r.label, r.metrics.get("method"), r.metrics.get("seed"), epochs, test.get("accuracy"),
                     test.get("macro_f1"), test.get("ece"), test.get("nll"), cost.get("params"), cost.get("flops"),
                     cost.get("cpu_latency_ms_per_sample")])
    return columns, rows


def _teacher_rows(runs: Sequence[RunRecord]) -> list[list[Any]]:
    rows = []
    for r in runs:
        accuracies = teacher_accuracies(r.metrics)
        if not accuracies:
            continue
        best = max(accuracies, key=lambda n: accuracies[n])
        student = (r.metrics.get("test") or {}).get("accuracy")
        gap = None if student is None else float(student) - accuracies[best]
        rows.append([r.label, student, best, accuracies[best], gap, r.metrics.get("teacher_targets_test_accuracy"),
                     "below its best teacher" if gap is not None and gap < 0 else "at or above"])
    return rows


def _reliability(run: RunRecord) -> dict[str, list[float]] | None:
    """The run's reliability bins ``test.reliability`` {confidence, accuracy}, where it has usable ones."""
    bins = (run.metrics.get("test") or {}).get("reliability")
    if not isinstance(bins, Mapping):
        return None
    confidence, accuracy = bins.get("confidence"), bins.get("accuracy")
    if not isinstance(confidence, list) or not isinstance(accuracy, list) or len(confidence) != len(accuracy):
        return None
    pairs = [(c, a) for c, a in zip(confidence, accuracy) if isinstance(c, (int, float)) and isinstance(a, (int, float))
             and math.isfinite(c) and math.isfinite(a)]
    if not pairs:
        return None
    return {"confidence": [float(c) for c, _ in pairs], "accuracy": [float(a) for _, a in pairs]}


def _per_class_section(page: HtmlPage, runs: Sequence[RunRecord]) -> None:
    per_class = {r.label: list((r.metrics.get("test") or {}).get("per_class_accuracy") or []) for r in runs}
    classes = max((len(v) for v in per_class.values()), default=0)
    if not classes:
        return
    page.heading("Per-class accuracy")
    rows = [[c, *[v[c] if c < len(v) else None for v in per_class.values()]] for c in range(classes)]
    page.table(["class", *per_class], rows, caption="Test accuracy per class ('-': no test sample of the class)",
               table_id="per-class")
    page.image(plots.per_class_bars({r.plot_label: per_class[r.label] for r in runs}),
               "test accuracy per class, one bar per run")


def _calibration_section(page: HtmlPage, runs: Sequence[RunRecord]) -> None:
    page.heading("Calibration")
    scores = {r.label: {"ece": (r.metrics.get("test") or {}).get("ece"), "nll": (r.metrics.get("test") or {}).get("nll")}
              for r in runs}
    page.table(["run", "ECE", "NLL"], [[label, s["ece"], s["nll"]] for label, s in scores.items()],
               caption="Test ECE and NLL (lower is better)", table_id="calibration")
    diagrams = {r.plot_label: _reliability(r) for r in runs}
    if all(d is not None for d in diagrams.values()):
        page.image(plots.reliability_diagram(diagrams), "reliability diagram, one line per run")
    else:
        page.image(plots.calibration_bars({r.plot_label: scores[r.label] for r in runs}), "ECE and NLL per run")


def _cost_section(page: HtmlPage, runs: Sequence[RunRecord]) -> None:
    page.heading("Cost")
    rows = []
    points = []
    for r in runs:
        cost, accuracy = r.metrics.get("cost") or {}, (r.metrics.get("test") or {}).get("accuracy")
        rows.append([r.label, cost.get("params"), cost.get("flops"), cost.get("cpu_latency_ms_per_sample"),
                     r.metrics.get("seconds")])
        if None not in (accuracy, cost.get("params"), cost.get("cpu_latency_ms_per_sample")):
            points.append({"label": r.plot_label, "accuracy": accuracy, "params": cost["params"],
                           "latency_ms": cost["cpu_latency_ms_per_sample"]})
    page.table(["run", "student parameters", "FLOPs per sample", "CPU latency per sample (ms)", "wall time (s)"],
               rows, caption="What each student costs, and how long its run took", table_id="cost")
    if points:
        page.image(plots.accuracy_vs_cost(points), "test accuracy against student parameters and latency")


def _curves_section(page: HtmlPage, runs: Sequence[RunRecord]) -> None:
    curves = {r.label: list(r.metrics.get("curves") or []) for r in runs if r.metrics.get("curves")}
    if not curves:
        return
    page.heading("Learning curves")
    page.image(plots.learning_curves({r.plot_label: curves[r.label] for r in runs if r.label in curves}),
               "training loss and test accuracy per epoch, one line per run")
    epochs = sorted({rec.get("epoch") for c in curves.values() for rec in c if rec.get("epoch") is not None})
    by_epoch = {label: {rec.get("epoch"): (rec.get("test") or {}).get("accuracy") for rec in c}
                for label, c in curves.items()}
    page.table(["epoch", *curves], [[e, *[by_epoch[label].get(e) for label in curves]] for e in epochs],
               caption="Test accuracy after each epoch", table_id="curves")


def write_headline_report(runs: Sequence[RunRecord], page: HtmlPage) -> None:
    """The sections of a kind with its own headline: methods, learning curves (``history``), samples."""
    key, lower = headline_of(runs[0].metrics)
    page.heading("Methods")
    columns, rows = headline_rows(runs)
    best = (min if lower else max)((r.metrics.get("test") or {}).get(key, math.nan) for r in runs)
    page.table(columns, rows, caption=f"Test scores at each run's last epoch; the best {key} is {best:.4g}",
               table_id="methods")
    curves = {r.label: list(r.metrics.get("history") or []) for r in runs
              if any(isinstance(rec, Mapping) and "epoch" in rec for rec in r.metrics.get("history") or [])}
    if curves:
        page.heading("Learning curves")
        page.image(plots.learning_curves({r.plot_label: curves[r.label] for r in runs if r.label in curves}, metric=key),
                   f"training loss and test {key} per epoch, one line per run")
        epochs = sorted({rec.get("epoch") for c in curves.values() for rec in c if rec.get("epoch") is not None})
        by_epoch = {label: {rec.get("epoch"): (rec.get("test") or {}).get(key) for rec in c} for label, c in curves.items()}
        page.table(["epoch", *curves], [[e, *[by_epoch[label].get(e) for label in curves]] for e in epochs],
                   caption=f"Test {key} after each epoch", table_id="curves")
    _generation_sections(page, runs)
    samples = [[r.label, s.get("prompt"), s.get("continuation")] for r in runs for s in r.metrics.get("samples") or []
               if isinstance(s, Mapping)]
    if samples:
        page.heading("Samples")
        page.table(["run", "prompt (the start of a test document)", "continuation"], samples,
                   caption="Each student continues the same prompts (temperature 0.8)", table_id="samples")


def _generation_sections(page: HtmlPage, runs: Sequence[RunRecord]) -> None:
    """Image generators: Fréchet distance against network evaluations (each run and its kept stages) and the sample
    grids they leave in their run folders (``samples.png``, ``stages/*/samples.png``)."""
    lines = {r.plot_label or r.label: [(s["network_evaluations"], s["frechet_distance"])
                                       for s in [r.metrics.get("test") or {}, *(r.metrics.get("stages") or {}).values()]
                                       if isinstance(s, Mapping) and "network_evaluations" in s]
             for r in runs}
    if any(lines.values()):
        page.heading("Quality against steps")
        page.image(plots.quality_against_cost({k: v for k, v in lines.items() if v}, "network evaluations per sample",
                                              "Fréchet distance (task classifier)"),
                   "Fréchet distance against network evaluations per sample, one line per run (its kept stages too)")
    grids = [(r, r.folder / "samples.png", "") for r in runs if (r.folder / "samples.png").is_file()]
    grids += [(r, path, path.parent.name) for r in runs for path in sorted((r.folder / "stages").glob("*/samples.png"))]
    if not grids:
        return
    page.heading("Sample grids")
    for run, path, stage in grids:
        scores = (run.metrics.get("stages") or {}).get(stage) if stage else run.metrics.get("test")
        steps = f", {scores.get('steps')} steps" if isinstance(scores, Mapping) and "steps" in scores else ""
        page.heading(f"{run.label}{' ' + stage if stage else ''}{steps}", 3)
        page.image(path.read_bytes(), f"samples of {run.label} {stage}, one row per class")


def write_compare_report(runs: Sequence[RunRecord], out: str | Path) -> Path:
    """Write the side-by-side report of ``runs`` (from :func:`load_runs`) to ``out`` atomically; return its path."""
    task = runs[0].metrics.get("task")
    page = HtmlPage(f"xdistill runs compared: {task} ({len(runs)} runs)")
    if headline_of(runs[0].metrics)[0] != "accuracy":
        write_headline_report(runs, page)
        page.heading("Runs")
        page.table(["run", "folder", "task"], [[r.label, str(r.folder), r.metrics.get("task")] for r in runs],
                   caption="Where each run's metrics.json came from", table_id="runs")
        return page.write(out)
    for i, run in enumerate(runs):
        shortfall_flag(page, run.metrics, f"shortfall-{i}", subject=f"{run.label}: the student")
    page.heading("Methods")
    columns, rows = method_rows(runs)
    page.table(columns, rows, caption="Test metrics at each run's reported epoch and student cost", table_id="methods")
    teachers = _teacher_rows(runs)
    if teachers:
        page.heading("Students against their teachers")
        page.table(["run", "student accuracy", "best teacher", "its bridged accuracy", "student - teacher",
                    "combined targets accuracy", "verdict"], teachers,
                   caption="Held-out test accuracy of each student and of its best single teacher", table_id="teachers")
    _per_class_section(page, runs)
    _calibration_section(page, runs)
    _cost_section(page, runs)
    _curves_section(page, runs)
    page.heading("Runs")
    page.table(["run", "folder", "task", "xdistill"],
               [[r.label, str(r.folder), r.metrics.get("task"), r.metrics.get("xdistill")] for r in runs],
               caption="Where each run's metrics.json came from", table_id="runs")
    return page.write(out)

