"""``xdistill bench --generation``: the generative world's teacher at 50, 20 and 8 Euler steps against every
student method at 1, 2 and 4 steps, in one table, with sample grids and a quality-versus-steps plot.

Each method trains once (``SETTINGS``); its 1-, 2- and 4-step rows come from that run: progressive keeps every
halving's student; consistency keeps every segment stage's student, and a step count without its own student
is sampled from the student with the nearest larger step count, one jump per step; guidance samples at any
step count. The one-step generators (dmd, sid, multi-student) give one row each, multi-student also a row per
student on its own classes; a second table times a training step of each against consistency's and measures its
memory (``training_cost.py``). Every piece (a teacher row, a run, a student row, a cost row) is written as it
finishes and reused by a rerun,
so the bench resumes and its pieces may run in separate processes (``--methods teacher``, ``--methods
consistency``, ...), then a last call with every piece present writes the table and report.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from xdistill.io import atomic_write_json, atomic_write_text

TEACHER_STEPS = (50, 20, 8)
STUDENT_STEPS = (1, 2, 4)
# guidance samples at any step count: it is also scored at the teacher's 8 and 20 steps, to compare like with like
EXTRA_STEPS = {"guidance": (8, 20)}
# One training run per method at the methods' default budget (400 updates of 32 images); progressive goes down
# to 1 step from a 16-step teacher, keeping the 8-, 4- and 2-step students on the way.
SETTINGS = {
    "progressive": {"steps": 1, "teacher_steps": 16},
    "consistency": {"steps": 4},
    "guidance": {"steps": 4},
    "dmd": {"steps": 1},
    "sid": {"steps": 1},
    "multi-student": {"steps": 1},
}
# One-step generators: scored at one step only (they are not trained to take more).
ONE_STEP = ("dmd", "sid", "multi-student")
# The cost table: time and memory of a training step of each of these against consistency's (training_cost.py).
COST_METHODS = ("consistency", "dmd", "sid", "multi-student")
COST_COLUMNS = ["method", "CPU seconds per step", "x consistency", "wall seconds per step",
                "peak memory above start (MiB)", "x consistency", "networks in a step"]
NETWORKS = {"consistency": "student, its average, teacher", "dmd": "generator, fake score (x fake_updates), teacher",
            "sid": "generator, fake score, teacher (backward through both scores)",
            "multi-student": "one small generator, fake score (x fake_updates), teacher"}
MEMBER_COLUMNS = ["student", "classes", "params", "frechet_distance", "precision", "recall", "class_consistency"]
QUICK = {"iterations": 20}
COLUMNS = ["model", "steps", "network evaluations", "frechet_distance", "precision", "recall", "class_consistency",
           "samples_per_second"]


def _read(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def teacher_row(world, task, steps: int, out: Path, log) -> dict:
    from xdistill.kinds.generation.flow import sample_images
    from xdistill.kinds.generation.run import evaluate_generation, load_generator, save_samples_grid

    path = out / "rows" / f"teacher-{steps}.json"
    found = _read(path)
    if found is None:
        if log:
            log(f"scoring the teacher at {steps} steps")
        found = {"model": "teacher", **evaluate_generation(world.teacher, task, steps=steps)}
        network, sampling = load_generator(world.teacher)
        x, y = sample_images(network, 100, steps, sampling["guidance"], 1, torch_labels(len(task.classes)))
        save_samples_grid(out / "grids" / f"teacher-{steps}.png", x, y, len(task.classes))
        atomic_write_json(path, found)
    return found


def torch_labels(classes: int, per_class: int = 10):
    import torch

    return torch.arange(classes * per_class) // per_class


def method_rows(world, task, method: str, out: Path, quick: bool, log) -> list[dict]:
    from xdistill.kinds.generation.flow import sample_images
    from xdistill.kinds.generation.run import save_samples_grid
    from xdistill.kinds.generation.scoring import Scorer
    from xdistill.models.denoiser import load_denoiser
    from xdistill.pipeline.distill import distill
    from xdistill.runtime import Runtime
    from xdistill.train.config import DistillConfig

    run = out / "runs" / method
    if not (run / "metrics.json").is_file():
        settings = {**SETTINGS[method], **(QUICK if quick else {})}
        distill(DistillConfig(task=str(world.task()), zoo=str(world.zoo), method=method, out=str(run), progress=False,
                              **settings), runtime=Runtime(log=log))
    metrics = json.loads((run / "metrics.json").read_text())
    students = {int(metrics["sampling"]["steps"]): run / "student"}
    for name in metrics.get("stages", {}):
        students.setdefault(int(name.split("-")[1]), run / "stages" / name)
    scored = {int(metrics["test"]["steps"]): metrics["test"],
              **{int(s["steps"]): s for s in metrics.get("stages", {}).values()}}
    rows, scorer = [], None
    for steps in (1,) if method in ONE_STEP else (*STUDENT_STEPS, *EXTRA_STEPS.get(method, ())):
        path = out / "rows" / f"{method}-{steps}.json"
        found = _read(path)
        if found is None:
            own = min((s for s in students if s >= steps), default=max(students))
            network, config = load_denoiser(students[own])
            if own == steps and steps in scored:  # the run scored this student already (same seed and labels)
                scores = scored[steps]
            else:
                scorer = scorer or Scorer(task, "test")
                scores, _, _ = scorer.score(network, steps, float(config.get("guidance", 1.0)))
            found = {"model": method, **scores, "student_of": own, "train_seconds": metrics["train_seconds"],
                     "params": metrics["params"], **({"members": metrics["members"]} if "members" in metrics else {})}
            x, y = sample_images(network, 100, steps, float(config.get("guidance", 1.0)), 1,
                                 torch_labels(len(task.classes)))
            save_samples_grid(out / "grids" / f"{method}-{steps}.png", x, y, len(task.classes))
            atomic_write_json(path, found)
        rows.append(found)
    return rows


def check_methods(methods: list[str] | None) -> None:
    from xdistill.errors import XDistillError

    unknown = [m for m in methods or [] if m not in ("teacher", *SETTINGS)]
    if unknown:
        raise XDistillError(f"--methods for the generation bench are teacher, {', '.join(SETTINGS)}. Got "
                            f"{', '.join(repr(m) for m in unknown)}.")


def run_generation_bench(world, home: Path | None = None, out: Path | None = None, methods: list[str] | None = None,
                         quick: bool = False, log: Callable[[str], None] | None = print) -> dict:
    """The bench on ``world`` (the generative demo world: ``root``, ``zoo``, ``teacher``, ``task()``)."""
    from xdistill.home import xdistill_home
    from xdistill.kinds.generation.task import load_generation_task

    check_methods(methods)
    task = load_generation_task(world.task())
    out = Path(out or Path(home or xdistill_home()) / "bench" / ("gen-quick" if quick else "gen"))
    chosen = methods or ["teacher", *SETTINGS]
    rows = []
    if "teacher" in chosen:
        rows += [teacher_row(world, task, steps, out, log) for steps in TEACHER_STEPS]
    for method in (m for m in SETTINGS if m in chosen):
        rows += method_rows(world, task, method, out, quick, log)
    from xdistill.kinds.generation.scoring import Scorer, real_reference

    costs = [cost_row(world, method, out, log) for method in COST_METHODS
             if method in chosen or (out / "rows" / f"cost-{method}.json").is_file()]
    results = {"task": task.name, "rows": rows, "costs": with_ratios(costs), "settings": SETTINGS, "quick": quick,
               "reference": real_reference(Scorer(task, "test")),
               "world": json.loads((world.root / "world.json").read_text())}
    atomic_write_json(out / "results.json", results)
    atomic_write_text(out / "results.md", markdown_table(rows) + "\n" + cost_table(results["costs"])
                      + "\n" + member_table(rows))
    write_generation_report(out, results)
    return results


def cost_row(world, method: str, out: Path, log) -> dict:
    """Time and memory of one training step of ``method`` (``training_cost.py``), written once and reused."""
    from xdistill.bench.training_cost import measure_training_cost

    path = out / "rows" / f"cost-{method}.json"
    found = _read(path)
    if found is None:
        if log:
            log(f"timing a training step of {method}")
        found = measure_training_cost(world.task(), world.zoo, method, SETTINGS[method])
        atomic_write_json(path, found)
    return found


def cpu_seconds_per_step(cost: dict) -> float:
    """CPU seconds of the measured training over its steps: a shared machine's load changes wall time, not this
    (multi-student's teacher score matching is included)."""
    return cost["train_cpu_seconds"] / cost["iterations"]


def with_ratios(costs: list[dict]) -> list[dict]:
    """Each cost row with its CPU time and memory per step as multiples of consistency's (when it was measured)."""
    base = next((c for c in costs if c["method"] == "consistency"), None)
    return [{**c, "cpu_seconds_per_step": cpu_seconds_per_step(c),
             "time_vs_consistency": cpu_seconds_per_step(c) / cpu_seconds_per_step(base) if base else None,
             "memory_vs_consistency": c["peak_memory_mib"] / base["peak_memory_mib"] if base else None}
            for c in costs]


def cost_table_rows(costs: list[dict]) -> list[list]:
    return [[c["method"], c["cpu_seconds_per_step"], c["time_vs_consistency"], c["seconds_per_step"],
             c["peak_memory_mib"], c["memory_vs_consistency"], NETWORKS.get(c["method"], "")] for c in costs]


def member_table_rows(rows: list[dict]) -> list[list]:
    return [[f"{r['model']} {m['student']}", f"{m['classes'][0]}-{m['classes'][-1]}", m["params"], m["frechet_distance"],
             m["precision"], m["recall"], m["class_consistency"]] for r in rows for m in r.get("members", [])]


def _markdown(columns: list[str], rows: list[list]) -> str:
    def cell(v):
        return f"{v:.3f}" if isinstance(v, float) else "" if v is None else str(v)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    return "\n".join(lines + ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]) + "\n"


def cost_table(costs: list[dict]) -> str:
    return _markdown(COST_COLUMNS, cost_table_rows(costs)) if costs else ""


def member_table(rows: list[dict]) -> str:
    members = member_table_rows(rows)
    return _markdown(MEMBER_COLUMNS, members) if members else ""


def table_rows(rows: list[dict]) -> list[list]:
    return [[r["model"], r["steps"], r["network_evaluations"], r["frechet_distance"], r["precision"], r["recall"],
             r["class_consistency"], r["samples_per_second"]] for r in rows]


def markdown_table(rows: list[dict]) -> str:
    def cell(v):
        return f"{v:.3f}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in table_rows(rows)]
    return "\n".join(lines) + "\n"


def quality_plot(rows: list[dict]) -> bytes:
    """Fréchet distance against network evaluations per sample, one line per model (log x axis)."""
    from xdistill.report.plots import quality_against_cost

    lines = {model: [(r["network_evaluations"], r["frechet_distance"]) for r in rows if r["model"] == model]
             for model in dict.fromkeys(r["model"] for r in rows)}
    return quality_against_cost(lines, "network evaluations per sample", "Fréchet distance (task classifier)")


def write_generation_report(out: Path, results: dict) -> Path:
    from xdistill.report.html import HtmlPage

    rows = results["rows"]
    page = HtmlPage(f"xdistill generation bench: {results['task']}")
    page.paragraph("Fréchet distance, precision and recall (k = 3) are measured in the feature space of a digits "
                   "classifier trained on the task's real train split (not FID); class consistency is that "
                   "classifier's accuracy on samples against their conditioning label. 2,000 samples against the "
                   "test split.")
    page.table(COLUMNS, table_rows(rows), caption="Teacher at 50, 20 and 8 Euler steps against each student at 1, 2 "
               "and 4 steps", table_id="bench")
    reference = results.get("reference")
    if reference:
        page.paragraph(f"Real images for reference: {reference['samples']} train images scored the same way give "
                       f"Fréchet distance {reference['frechet_distance']:.2f}, precision {reference['precision']:.3f}, "
                       f"recall {reference['recall']:.3f}, class consistency {reference['class_consistency']:.3f} "
                       "(the floor with this many samples).", note=True)
    if rows:
        page.image(quality_plot(rows), "Fréchet distance against network evaluations per sample")
    if member_table_rows(rows):
        page.table(MEMBER_COLUMNS, member_table_rows(rows), caption="multi-student: each student's size and quality "
                   "on its own classes (its samples against the test images of those classes)", table_id="members")
    if results.get("costs"):
        page.table(COST_COLUMNS, cost_table_rows(results["costs"]), caption="Time and memory of one training step "
                   "against consistency's: peak resident memory above the start of training, each method alone in a "
                   "fresh process (training_cost.py)", table_id="costs")
    page.heading("Sample grids")
    for row in rows:
        grid = out / "grids" / f"{row['model']}-{row['steps']}.png"
        if grid.is_file():
            page.heading(f"{row['model']}, {row['steps']} steps ({row['network_evaluations']} network evaluations)", 3)
            page.image(grid.read_bytes(), f"samples of {row['model']} at {row['steps']} steps, one row per class")
    return page.write(out / "report.html")
