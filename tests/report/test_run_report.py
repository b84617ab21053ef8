"""The report of one distill run, built from its metrics alone."""

from __future__ import annotations

import copy

from tests.report.helpers import cell_numbers, decode_images, external_references, tables_by_id
from xdistill.report.run import write_run_report

TEST = {"n": 9, "accuracy": 0.6666666, "macro_f1": 0.61, "ece": 0.05, "nll": 0.9, "per_class_accuracy": [1.0, 0.5, 0.5],
        "agreement": 0.7}
METRICS = {
    "xdistill": "0.1.0", "task": "tiny", "method": "weighted", "seed": 3, "test": TEST, "epoch_reported": "last",
    "cost": {"params": 13383, "flops": 180000, "cpu_latency_ms_per_sample": 0.0331},
    "curves": [{"epoch": e, "train": {"loss": 1.0 / e, "ce": 0.8 / e, "kd": 0.2 / e}, "seconds": 0.1 * e,
                "test": dict(TEST, accuracy=0.3 * e)} for e in (1, 2)],
    "teachers": {"method": "weighted", "reliability": 0.75,
                 "teachers": {"t1": {"weight": 0.8, "bridge_C": 0.1, "calibration_temperature": 1.5, "cv_accuracy": 0.7,
                                     "test_accuracy": 0.55},
                              "t0": {"weight": 0.2, "bridge_C": 1.0, "calibration_temperature": 2.0, "cv_accuracy": 0.4,
                                     "test_accuracy": 0.35}}},
    "ranking": {"task": "tiny", "metric": "logme", "prepare": "pca", "prepare_dim": 32, "weight_temperature": 0.5,
                "top_k": 3, "notes": ["t0: leep undefined (it has no logits)."],
                "teachers": [{"name": "t1", "domain": "d1", "architecture": "mlp",
                              "scores": {"logme": -0.5, "leep": None}, "rank": 1, "weight": 0.8},
                             {"name": "t0", "domain": "d0", "architecture": "cnn",
                              "scores": {"logme": -0.9, "leep": None}, "rank": 2, "weight": 0.2}]},
    "seconds": 5.0, "teacher_targets_test_accuracy": 0.5555,
}


def test_run_report_shows_the_metrics(tmp_path):
    text = write_run_report(tmp_path, METRICS).read_text()
    assert external_references(text) == []
    assert len(decode_images(text)) == 2  # teacher weights, learning curves
    tables = tables_by_id(text)
    summary = dict(tables["summary"]["rows"])
    assert summary["task"] == "tiny" and summary["method"] == "weighted" and summary["seed"] == "3"
    assert summary["epoch reported"] == "last"
    for label, value in (("test accuracy", TEST["accuracy"]), ("test macro F1", TEST["macro_f1"]),
                         ("test ECE", TEST["ece"]), ("test NLL", TEST["nll"]),
                         ("CPU latency per sample (ms)", 0.0331)):
        assert cell_numbers(summary[label]) == [float(f"{value:.3e}")]  # 4 significant digits
    assert summary["student parameters"] == "13383" and summary["student FLOPs per sample"] == "180000"
    teachers = {row[0]: row for row in tables["teachers"]["rows"]}
    assert cell_numbers(teachers["t1"][1]) == [0.8] and cell_numbers(teachers["t0"][-1]) == [0.35]
    assert [row[1] for row in tables["ranking"]["rows"]] == ["t1", "t0"]
    assert tables["ranking"]["rows"][1][-3:] == ["-0.9000", "-", "0.2000"]
    # The student (0.6667) ends above its best teacher t1 (0.55): the teachers are listed, nothing is flagged.
    assert tables["versus"]["rows"] == [["student (weighted)", "0.6667"], ["teacher t1, bridged", "0.5500"],
                                        ["teacher t0, bridged", "0.3500"], ["combined teacher targets", "0.5555"]]
    assert 'class="flag"' not in text
    curves = tables["curves"]
    assert curves["header"] == ["epoch", "train loss", "train ce", "train kd", "test accuracy", "seconds"]
    assert [cell_numbers(c)[0] for c in curves["rows"][1]] == [2, 0.5, 0.4, 0.1, 0.6, 0.2]


def test_run_report_without_teachers_or_curves(tmp_path):
    metrics = copy.deepcopy(METRICS)
    metrics.update(method="supervised", teachers=None, ranking=None, curves=[])
    metrics.pop("teacher_targets_test_accuracy")
    text = write_run_report(tmp_path, metrics).read_text()
    tables = tables_by_id(text)
    assert "teachers" not in tables and "ranking" not in tables and "curves" not in tables
    assert decode_images(text) == []


def test_a_student_below_its_best_teacher_is_flagged_with_its_causes(tmp_path):
    metrics = copy.deepcopy(METRICS)
    metrics["test"]["accuracy"] = 0.5  # below t1's 0.55; test accuracy rose 0.3 -> 0.6 over the two epochs
    text = write_run_report(tmp_path, metrics).read_text()
    flag = text[text.index('<div class="flag" id="shortfall"'):]
    flag = flag[:flag.index("</div>")]
    assert text.index('id="shortfall"') < text.index('id="summary"')  # at the top, where it cannot be missed
    assert "The student (0.5000 test accuracy) ended below its best teacher &#x27;t1&#x27; (0.5500), 0.05000 lower." in flag
    assert "Likely cause, too few epochs: Test accuracy was still rising: 0.300 at epoch 1 to 0.600 at epoch 2" in flag
    assert "capacity" not in flag and "teacher weights" not in flag and flag.count("<li>") == 1
    assert tables_by_id(text)["versus"]["rows"][0] == ["student (weighted)", "0.5000"]


def test_a_shortfall_with_no_visible_cause_says_so(tmp_path):
    metrics = copy.deepcopy(METRICS)
    metrics["test"]["accuracy"] = 0.5
    metrics["curves"] = metrics["curves"][:1]
    text = write_run_report(tmp_path, metrics).read_text()
    assert "None of the checked causes (capacity, too few epochs, teacher weights) shows" in text


def test_run_report_shows_each_epochs_decision_between_teachers_and_student(tmp_path):
    metrics = copy.deepcopy(METRICS)
    for record, (weight, student, share) in zip(metrics["curves"], ((0.6, 0.5, 0.8), (0.0, 0.9, 0.0))):
        record["decisions"] = {"distill_weight": weight, "teacher_reliability": 0.75, "student_reliability": student,
                               "estimate": "held-out", "agreement": None}
        record["train"]["teacher_share"] = share
    tables = tables_by_id(write_run_report(tmp_path, metrics).read_text())
    decisions = tables["decisions"]
    assert decisions["header"][:4] == ["epoch", "distillation weight", "teacher reliability", "student reliability"]
    assert [cell_numbers(c)[0] for c in decisions["rows"][0] if cell_numbers(c)] == [1, 0.6, 0.75, 0.5, 0.8]
    assert [cell_numbers(c)[0] for c in decisions["rows"][1] if cell_numbers(c)] == [2, 0.0, 0.75, 0.9, 0.0]
    assert "decisions" not in tables_by_id(write_run_report(tmp_path / "plain", METRICS).read_text())
