"""The report of one ``xdistill distill`` run: ``out_dir/report.html``, built
from the run's ``metrics.json`` alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from xdistill.report import plots
from xdistill.report.html import HtmlPage, format_cell
from xdistill.report.shortfall import CAUSE_TITLES, student_shortfall, teacher_accuracies

REPORT_NAME = "report.html"


def summary_rows(metrics: dict[str, Any]) -> dict[str, Any]:
    """The headline figures of one run, by the names the report shows them under."""
    test = metrics.get("test") or {}
    cost = metrics.get("cost") or {}
    return {
        "task": metrics.get("task"),
        "method": metrics.get("method"),
        "seed": metrics.get("seed"),
        "epoch reported": metrics.get("epoch_reported", "last"),
        "test accuracy": test.get("accuracy"),
        "test macro F1": test.get("macro_f1"),
        "test ECE": test.get("ece"),
        "test NLL": test.get("nll"),
        "test samples": test.get("n"),
        "student parameters": cost.get("params"),
        "student FLOPs per sample": cost.get("flops"),
        "CPU latency per sample (ms)": cost.get("cpu_latency_ms_per_sample"),
        "wall time (s)": metrics.get("seconds"),
    }


def shortfall_flag(page: HtmlPage, metrics: dict[str, Any], flag_id: str = "shortfall",
                   subject: str = "The student") -> bool:
    """Add a warning box when the student ended below its best teacher; return whether it did."""
    found = student_shortfall(metrics)
    if found is None:
        return False
    headline = (f"{subject} ({format_cell(found.student_accuracy)} test accuracy) ended below its best teacher "
                f"'{found.teacher}' ({format_cell(found.teacher_accuracy)}), {format_cell(found.gap)} lower.")
    points = [f"Likely cause, {CAUSE_TITLES[c.name]}: {c.evidence}" for c in found.causes] or [
        f"None of the checked causes ({', '.join(CAUSE_TITLES.values())}) shows in this run's numbers."]
    page.flag(headline, points, flag_id)
    return True


def _student_vs_teachers(page: HtmlPage, metrics: dict[str, Any]) -> None:
    accuracies = teacher_accuracies(metrics)
    if not accuracies:
        return
    page.heading("Student against its teachers")
    student = (metrics.get("test") or {}).get("accuracy")
    rows = [[f"student ({metrics.get('method')})", student],
            *[[f"teacher {name}, bridged", acc] for name, acc in sorted(accuracies.items(), key=lambda kv: -kv[1])]]
    combined = metrics.get("teacher_targets_test_accuracy")
    if combined is not None:
        rows.append(["combined teacher targets", combined])
    page.table(["model", "test accuracy"], rows, caption="Held-out test accuracy on the target", table_id="versus")


def _teacher_section(page: HtmlPage, metrics: dict[str, Any]) -> None:
    info = metrics.get("teachers")
    if not info or not info.get("teachers"):
        return
    page.heading("Teachers distilled")
    rows = [{"teacher": name, "weight": t.get("weight"), "bridge C": t.get("bridge_C"),
             "calibration temperature": t.get("calibration_temperature"), "held-out labeled accuracy": t.get("cv_accuracy"),
             "bridged test accuracy": t.get("test_accuracy")}
            for name, t in info["teachers"].items()]
    page.table_from_dicts(rows, caption=f"Teachers of '{info.get('method')}', bridged to the target labels",
                          table_id="teachers")
    page.key_values({"held-out labeled accuracy of the combined targets (reliability)": info.get("reliability"),
                     "test accuracy of the combined targets": metrics.get("teacher_targets_test_accuracy")},
                    table_id="targets")
    weights = {name: t.get("weight") or 0.0 for name, t in info["teachers"].items()}
    if len(weights) > 1:
        page.image(plots.teacher_weights({str(metrics.get("task")): weights}, "Teacher weights"), "teacher weights")


def _pool_section(page: HtmlPage, metrics: dict[str, Any]) -> None:
    """The weights the unlabeled pool's samples got (config 'pool_weights'), by side where the task marks them."""
    pool = metrics.get("pool_weights")
    if not pool:
        return
    page.heading("Unlabeled pool weights")
    page.key_values({"pool looks polluted (weights used)": pool.get("polluted"),
                     "share of the pool below the alpha level": pool.get("share_below_alpha"),
                     "alpha": pool.get("alpha"), "mean weight": pool.get("mean_weight"),
                     "mean weight, samples of the label set": pool.get("mean_weight_in_class"),
                     "mean weight, samples outside the label set": pool.get("mean_weight_outside")},
                    caption="Per-sample weights of unlabeled samples that look outside the label set; by side only "
                            "where the task marks its pool (unlabeled-outside.npy, never read by training)",
                    table_id="pool")


def _ranking_section(page: HtmlPage, metrics: dict[str, Any]) -> None:
    ranking = metrics.get("ranking")
    if not ranking or not ranking.get("teachers"):
        return
    page.heading("Teacher ranking")
    rows = ranking["teachers"]
    metric_names = list(dict.fromkeys(m for row in rows for m in row.get("scores", {})))
    table = [[row.get("rank"), row.get("name"), row.get("domain"), row.get("architecture"),
              *[row.get("scores", {}).get(m) for m in metric_names], row.get("weight")] for row in rows]
    page.table(["rank", "teacher", "domain", "architecture", *metric_names, "weight"], table,
               caption=f"Ranked by {ranking.get('metric')} on {ranking.get('prepare')} features; "
                       f"higher scores mean more transferable", table_id="ranking")
    for note in ranking.get("notes", []):
        page.paragraph(note, note=True)


def _curves_section(page: HtmlPage, metrics: dict[str, Any]) -> None:
    curves = metrics.get("curves") or []
    if not curves:
        return
    page.heading("Learning curves")
    page.image(plots.learning_curves({str(metrics.get("method")): curves}),
               "training loss terms and test accuracy per epoch")
    terms = list(dict.fromkeys(k for r in curves for k in r.get("train", {})))
    rows = [[r.get("epoch"), *[r.get("train", {}).get(k) for k in terms], (r.get("test") or {}).get("accuracy"),
             r.get("seconds")] for r in curves]
    page.table(["epoch", *[f"train {k}" for k in terms], "test accuracy", "seconds"], rows,
               caption="Per epoch: mean training loss terms, then test accuracy after the epoch", table_id="curves")


def _decisions_section(page: HtmlPage, metrics: dict[str, Any]) -> None:
    """Per epoch, how much the run trusted its teachers over the student (config 'anneal')."""
    curves = [r for r in metrics.get("curves") or [] if r.get("decisions")]
    if not curves:
        return
    page.heading("Teachers against the student")
    rows = [[r.get("epoch"), r["decisions"].get("distill_weight"), r["decisions"].get("teacher_reliability"),
             r["decisions"].get("student_reliability"), r["decisions"].get("agreement"),
             r.get("train", {}).get("teacher_share")] for r in curves]
    estimate = curves[-1]["decisions"].get("estimate")
    how = ("accuracy on labels held out of the student's training" if estimate == "held-out" else
           "one label per class: agreement of the student with the teachers on the unlabeled split")
    page.table(["epoch", "distillation weight", "teacher reliability", "student reliability", "agreement",
                "share of unlabeled samples taking the teachers' target"], rows,
               caption=f"Decided at the start of each epoch; reliability: {how}. Weight 0 trains as FixMatch.",
               table_id="decisions")


def _partner_section(page: HtmlPage, metrics: dict[str, Any]) -> None:
    """Both students of a collaborative run, side by side."""
    partner = metrics.get("partner")
    if not partner:
        return
    page.heading("Both students")
    test, cost = metrics.get("test") or {}, metrics.get("cost") or {}
    student = partner.get("primary_student") or "student"
    rows = [[f"student ({student})", "the run's folder", test.get("accuracy"), test.get("macro_f1"), test.get("ece"),
             cost.get("params"), cost.get("cpu_latency_ms_per_sample")],
            [f"partner ({partner.get('student')})", f"{partner.get('folder')}/", partner["test"].get("accuracy"),
             partner["test"].get("macro_f1"), partner["test"].get("ece"), partner["cost"].get("params"),
             partner["cost"].get("cpu_latency_ms_per_sample")]]
    page.table(["student", "files", "test accuracy", "macro F1", "ECE", "params", "CPU ms/sample"], rows,
               caption="The two students trained together, each distilling the other where it was the more "
                       "reliable", table_id="partner")


def write_run_report(out_dir: Path, metrics: dict) -> Path:
    """Write ``out_dir/report.html`` for one distill run from its metrics; return its path."""
    out_dir = Path(out_dir)
    page = HtmlPage(f"xdistill run: {metrics.get('task')} / {metrics.get('method')} (seed {metrics.get('seed')})")
    shortfall_flag(page, metrics)  # first, where nobody can miss it
    page.heading("Summary")
    page.key_values(summary_rows(metrics), caption="Test metrics at the last epoch and student cost",
                    table_id="summary")
    per_class = (metrics.get("test") or {}).get("per_class_accuracy")
    if per_class:
        page.table([f"class {i}" for i in range(len(per_class))], [per_class], caption="Test accuracy per class",
                   table_id="per-class")
    _partner_section(page, metrics)
    _student_vs_teachers(page, metrics)
    _teacher_section(page, metrics)
    _pool_section(page, metrics)
    _ranking_section(page, metrics)
    _decisions_section(page, metrics)
    _curves_section(page, metrics)
    page.paragraph(f"Written by xdistill {metrics.get('xdistill', '')} from metrics.json.", note=True)
    return page.write(out_dir / REPORT_NAME)
