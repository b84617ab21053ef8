"""``xdistill bench --matrix``: methods x student architectures on every target of a suite.

    results = run_matrix(targets, BenchConfig(seeds=2, students=["cnn", "vit"], methods=["weighted"]))

Each student family is one column: the bench (:func:`xdistill.bench.suite.run_bench`) runs every target x
method x seed with that student, in ``out/<student>/<target>/<method>/seed-<s>``, so an interrupted matrix
resumes where it stopped and a narrower or wider matrix reads back the runs it shares. Every student starts
from its own random initialisation (the demo's generic pretrained student is a CNN, which the other
families cannot load), so the columns compare architectures at the same budget. A method a student cannot
run (a loss that reads intermediate stages, such as ``ofa``, on a student without stages) is left out of
that column and shown as such. ``matrix.json``, ``matrix.md`` and ``report.html`` (tables and one heat-map
panel per target) are written in ``out``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

from xdistill import __version__
from xdistill.bench.suite import QUICK_EPOCHS, BenchConfig, BenchTarget, method_spec, run_bench
from xdistill.errors import XDistillError, join_problems
from xdistill.home import xdistill_home
from xdistill.io import atomic_write_json, atomic_write_text
from xdistill.runtime import Runtime

MATRIX_NAME = "matrix.json"
MATRIX_MARKDOWN = "matrix.md"
# The default matrix: the image students with stages and the mlp, plain supervision, distillation with KD and
# with One-for-All's loss, 2 seeds of the quick budget (docs/benchmarks.md).
MATRIX_STUDENTS = ("cnn", "resnet", "vit", "mixer", "mlp")
MATRIX_METHODS = ("supervised", "weighted", "weighted+loss=ofa")
MATRIX_SEEDS = 2
MATRIX_EPOCHS = QUICK_EPOCHS


def matrix_students(bench: BenchConfig) -> list[str]:
    return list(bench.students) or list(MATRIX_STUDENTS)


def matrix_methods(bench: BenchConfig) -> list[str]:
    return list(bench.methods) or list(MATRIX_METHODS)


def unsupported(method: str, student: str) -> str | None:
    """Why ``student`` cannot run the bench row ``method``, or None when it can."""
    from xdistill.losses import LOSSES
    from xdistill.students import STUDENTS
    from xdistill.train.config import DistillConfig

    settings = method_spec(method)[1]
    loss, projector = settings.get("loss", DistillConfig().loss), settings.get("projector", DistillConfig().projector)
    if STUDENTS.get(student).stages:
        return None
    if loss in LOSSES and "exit_logits" in LOSSES.get(loss).consumes:
        return f"loss '{loss}' reads intermediate stages, which '{student}' does not have"
    if projector != DistillConfig().projector:
        return f"projector '{projector}' reads the student's stages, which '{student}' does not have"
    return None


def matrix_problems(bench: BenchConfig) -> list[str]:
    """Every problem with the matrix's students (methods are checked by the bench), before anything runs."""
    from xdistill.students import STUDENTS

    problems = []
    for student in matrix_students(bench):
        if student not in STUDENTS:
            problems.append(STUDENTS.unknown_message(student))
        elif "image" not in STUDENTS.get(student).inputs:
            images = [n for n, f in STUDENTS.items() if "image" in f.inputs]
            problems.append(f"Student '{student}' does not read images; the matrix trains image students. Choose "
                            f"from: {', '.join(images)} (--students a,b).")
    return problems


def run_matrix(targets: Sequence[BenchTarget], bench: BenchConfig, runtime: Runtime | None = None,
               progress: bool = True) -> dict:
    """Run (or read back) every student x target x method x seed; write matrix.json, matrix.md, report.html."""
    from xdistill.train.config import StudentConfig

    runtime = runtime or Runtime()
    problems = bench.problems() + matrix_problems(bench)
    if problems:
        raise XDistillError(join_problems(problems, "Invalid matrix"))
    out = Path(bench.out) if bench.out else xdistill_home() / "bench" / f"{bench.suite}-matrix"
    students, methods = matrix_students(bench), matrix_methods(bench)
    scratch = [dataclasses.replace(t, init=None) for t in targets]
    runs: list[dict] = []
    skipped: dict[str, dict[str, str]] = {}
    targets_seen: list[str] = []
    for student in students:
        allowed = [m for m in methods if unsupported(m, student) is None]
        skipped[student] = {m: unsupported(m, student) for m in methods if m not in allowed}
        if not allowed:
            continue
        column = dataclasses.replace(bench, methods=allowed, students=[], out=str(out / student),
                                     suite=f"{bench.suite}/{student}",
                                     overrides={**bench.overrides, "student": StudentConfig(student)})
        if runtime.info is not None:
            runtime.info(f"matrix: student '{student}' ({len(allowed)} methods)")
        results = run_bench(scratch, column, runtime, progress)
        targets_seen = targets_seen or results["targets"]
        runs += [{**run, "student": student, "out": f"{student}/{run['out']}"} for run in results["runs"]]
    matrix = {"xdistill": __version__, "suite": bench.suite, "targets": targets_seen, "students": students,
              "methods": methods, "seeds": list(range(bench.seeds)), "epochs": bench.run_epochs,
              "epoch_reported": "last", "init": "none: every student starts from its own random initialisation",
              "skipped": {s: m for s, m in skipped.items() if m}, "runs": runs}
    from xdistill.report.matrix import summarise_matrix

    matrix["summary"] = summarise_matrix(matrix)
    write_matrix(out, matrix)
    if runtime.info is not None:
        runtime.info(f"matrix: {len(runs)} runs; table in {out / MATRIX_MARKDOWN}, report in {out / 'report.html'}")
    return matrix


def write_matrix(out: Path, matrix: dict) -> None:
    from xdistill.report.matrix import markdown_matrix, write_matrix_report

    atomic_write_json(out / MATRIX_NAME, matrix)
    atomic_write_text(out / MATRIX_MARKDOWN, markdown_matrix(matrix))
    write_matrix_report(out, matrix)
