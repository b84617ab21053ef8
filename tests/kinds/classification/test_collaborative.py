"""The collaborative method: the per-sample peer terms against their formula, and two students of different
architectures trained in one run through the CLI, the partner saved with its own metrics."""

from __future__ import annotations

import json
import math

import pytest
import torch
from safetensors.torch import load_file

from tests.conftest import run_cli, write_task
from tests.report.helpers import cell_numbers, tables_by_id
from xdistill.kinds.classification.collaborative import default_partner, peer_terms, sample_reliability
from xdistill.students import build_student

# The step computes in float32 (as under mixed precision); a few exp/log terms per row stay within 1e-5.
TOL = {"rtol": 1e-5, "atol": 1e-6}


def _softmax(row: list[float], t: float) -> list[float]:
    top = max(row)
    e = [math.exp((v - top) / t) for v in row]
    return [v / sum(e) for v in e]


def test_peer_terms_follow_the_formula_row_by_row():
    a = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3], [-1.0, 3.0, 0.0], [1.0, 1.0, 1.0]], dtype=torch.float64)
    b = torch.tensor([[0.0, 1.5, 0.0], [1.0, -0.5, 0.0], [0.5, 0.5, 2.0], [2.0, 0.0, 0.0]], dtype=torch.float64)
    targets = torch.tensor([[1, 0, 0], [1, 0, 0], [0.1, 0.8, 0.1], [0.6, 0.2, 0.2]], dtype=torch.float64)
    t = 2.0
    got = peer_terms(a, b, targets, t)
    to_a = to_b = 0.0
    b_teaches = 0
    for n in range(4):
        p_a1, p_b1 = _softmax(a[n].tolist(), 1.0), _softmax(b[n].tolist(), 1.0)
        ce_a = -sum(tc * math.log(p) for tc, p in zip(targets[n].tolist(), p_a1))
        ce_b = -sum(tc * math.log(p) for tc, p in zip(targets[n].tolist(), p_b1))
        p_a, p_b = _softmax(a[n].tolist(), t), _softmax(b[n].tolist(), t)
        if ce_b < ce_a:  # B is the more reliable on this row: A learns from B
            to_a += t * t * sum(pb * math.log(pb / pa) for pa, pb in zip(p_a, p_b))
            b_teaches += 1
        elif ce_a < ce_b:
            to_b += t * t * sum(pa * math.log(pa / pb) for pa, pb in zip(p_a, p_b))
    assert 0 < b_teaches < 4  # both directions occur in this example
    torch.testing.assert_close(got["peer_a"], torch.tensor(to_a / 4), **TOL)
    torch.testing.assert_close(got["peer_b"], torch.tensor(to_b / 4), **TOL)
    assert float(got["b_teaches_a"]) == b_teaches / 4
    torch.testing.assert_close(sample_reliability(a, targets).double(), (targets * torch.log_softmax(a, 1)).sum(1),
                               **TOL)


def test_only_the_learner_gets_the_gradient():
    a = torch.randn(5, 4, requires_grad=True)
    b = torch.randn(5, 4, requires_grad=True)
    terms = peer_terms(a, b, torch.softmax(torch.randn(5, 4), 1), 1.0)
    terms["peer_a"].backward()
    assert b.grad is None and a.grad is not None


def test_default_partner_pairs_a_convolutional_and_a_transformer_student():
    assert default_partner("cnn") == "vit" and default_partner("") == "vit"
    assert default_partner("vit") == "cnn" and default_partner("mixer") == "cnn"


def test_collaborative_trains_both_students_and_saves_the_partner(tmp_path, tiny_zoo):
    task = write_task(tmp_path / "task")
    out = tmp_path / "run"
    assert run_cli("distill", "--task", str(task), "--zoo", str(tiny_zoo), "--cache", str(tmp_path / "cache"),
                   "--out", str(out), "--method", "collaborative", "--student", "cnn", "partner=vit",
                   "--epochs", "2", "progress=false", "batch_size=4") == 0
    metrics = json.loads((out / "metrics.json").read_text())
    partner = json.loads((out / "partner" / "metrics.json").read_text())
    assert partner["role"] == "partner" and partner["student"] == "vit"
    assert metrics["partner"]["student"] == "vit" and metrics["partner"]["primary_student"] == "cnn"
    assert metrics["partner"]["test"]["accuracy"] == partner["test"]["accuracy"]
    terms = metrics["curves"][-1]["train"]
    assert {"peer", "peer_to_student", "peer_to_partner", "partner_teaches", "partner_ce"} <= set(terms)
    # each folder holds its own student, loadable alone
    assert set(load_file(str(out / "student.safetensors"))) == set(build_student("cnn", (1, 8, 8), 3).state_dict())
    assert set(load_file(str(out / "partner" / "student.safetensors"))) == set(
        build_student("vit", (1, 8, 8), 3).state_dict())
    table = tables_by_id((out / "report.html").read_text())["partner"]
    assert [row[0] for row in table["rows"]] == ["student (cnn)", "partner (vit)"]
    # cells show 4 significant digits
    assert cell_numbers(table["rows"][1][2])[0] == pytest.approx(partner["test"]["accuracy"], abs=5e-4)


@pytest.mark.parametrize(("args", "message"), [
    (["--method", "weighted", "partner=vit"], "'partner=vit' names the second student"),
    (["--method", "collaborative", "partner=vitt"], "Unknown student 'vitt'"),
    (["--method", "collaborative", "kd_augment=mixup"], "'kd_augment=mixup' is not supported"),
])
def test_partner_settings_are_checked_before_work(tmp_path, tiny_zoo, capsys, args, message):
    task = write_task(tmp_path / "task")
    assert run_cli("distill", "--task", str(task), "--zoo", str(tiny_zoo), "--out", str(tmp_path / "run"),
                   *args, "--epochs", "1") == 2
    assert message in capsys.readouterr().err
