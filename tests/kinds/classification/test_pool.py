"""A polluted unlabeled pool: conformal p-values, the weights, their neutrality on a clean pool, and a task's
outside mask, which reports read and training never does."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import load_file

from tests.conftest import run_cli
from tests.kinds.classification.test_trust import write_world
from xdistill.kinds.classification import pool as pool_module
from xdistill.kinds.classification.pool import (
    OUTSIDE_MASK_FILE,
    POOL_ALPHA,
    conformal_p_values,
    pool_weights,
)


def test_conformal_p_values_count_the_reference_at_or_below_each_score():
    reference = np.array([0.9, 0.5, 0.7, 0.99])
    p = conformal_p_values(reference, np.array([0.4, 0.5, 0.8, 1.0]))
    assert p.tolist() == pytest.approx([1 / 5, 2 / 5, 3 / 5, 5 / 5], rel=1e-12)


def test_a_pool_like_the_reference_keeps_every_weight_at_one():
    rng = np.random.default_rng(0)
    reference, pool = rng.uniform(0.6, 1.0, 100), rng.uniform(0.6, 1.0, 1000)
    found = pool_weights(reference, pool)
    assert not found.polluted and found.of(np.arange(5)) is None
    assert found.share_below == pytest.approx(POOL_ALPHA, abs=0.05)
    assert pool_weights(None, pool).share_below is None  # nothing held out: no reference, no weights


def test_a_polluted_pool_weighs_low_scores_down_quadratically():
    rng = np.random.default_rng(1)
    reference = rng.uniform(0.6, 1.0, 100)
    pool = np.concatenate([rng.uniform(0.6, 1.0, 400), rng.uniform(0.2, 0.6, 600)])  # 60 % below every reference
    found = pool_weights(reference, pool)
    assert found.polluted and found.share_below > 2 * POOL_ALPHA
    expected = np.minimum(1.0, conformal_p_values(reference, pool) / POOL_ALPHA) ** 2
    np.testing.assert_allclose(found.weights, expected, rtol=1e-6)
    assert found.weights[400:].max() == pytest.approx((1 / 101 / POOL_ALPHA) ** 2, rel=1e-6)
    summary = found.summary(np.arange(1000) >= 400)
    # In-class p-values are about uniform: a POOL_ALPHA share gets (p / alpha)^2, 1/3 on average.
    assert summary["mean_weight_in_class"] == pytest.approx(1 - POOL_ALPHA * 2 / 3, abs=0.02)
    assert summary["mean_weight_outside"] < 0.01
    assert summary["outside_share"] == 0.6


def _distill(world: dict[str, Path], out: Path, *extra: str, zoo: str = "perfect") -> dict:
    code = run_cli("distill", "--task", str(world["task"]), "--zoo", str(world[zoo]), "--cache",
                   str(out.parent / "cache"), "--method", "weighted", "--out", str(out), "epochs=2", "batch_size=6",
                   "unlabeled_ratio=2", "progress=false", *extra)
    assert code == 0
    return json.loads((out / "metrics.json").read_text())


def _weights(out: Path) -> dict:
    return load_file(str(out / "student.safetensors"))


def _same(a: dict, b: dict) -> bool:
    return set(a) == set(b) and all(bool((a[k] == b[k]).all()) for k in a)


@pytest.fixture
def coded(tmp_path):
    return write_world(tmp_path / "world")


def test_weights_on_a_clean_pool_leave_training_exactly_as_without_them(coded, tmp_path):
    on = _distill(coded, tmp_path / "on")
    off = _distill(coded, tmp_path / "off", "pool_weights=false")
    assert on["pool_weights"]["polluted"] is False and "pool_weights" not in off
    assert _same(_weights(tmp_path / "on"), _weights(tmp_path / "off"))


def test_training_never_reads_the_outside_mask(coded, tmp_path, monkeypatch):
    # Every pool looks polluted here, so the weights are used (the noise teacher's confidence varies from sample
    # to sample, and so do they); the mask only changes what the report shows.
    monkeypatch.setattr(pool_module, "POLLUTION_FACTOR", -1.0)
    task = coded["task"]
    n = len(np.load(task / "unlabeled.npz")["x"])
    mask = np.arange(n) % 3 == 0
    np.save(task / OUTSIDE_MASK_FILE, mask)
    marked = _distill(coded, tmp_path / "marked", zoo="noise")
    np.save(task / OUTSIDE_MASK_FILE, ~mask)
    inverted = _distill(coded, tmp_path / "inverted", zoo="noise")
    (task / OUTSIDE_MASK_FILE).unlink()
    unmarked = _distill(coded, tmp_path / "unmarked", zoo="noise")
    assert marked["pool_weights"]["polluted"] is True and 0 < marked["pool_weights"]["mean_weight"] < 1
    assert _same(_weights(tmp_path / "marked"), _weights(tmp_path / "inverted"))
    assert _same(_weights(tmp_path / "marked"), _weights(tmp_path / "unmarked"))
    assert [r["train"] for r in marked["curves"]] == [r["train"] for r in unmarked["curves"]]
    sides = marked["pool_weights"]
    assert (sides["mean_weight_in_class"], sides["mean_weight_outside"]) == (
        inverted["pool_weights"]["mean_weight_outside"], inverted["pool_weights"]["mean_weight_in_class"])
    assert "mean_weight_outside" not in unmarked["pool_weights"]
    assert "Unlabeled pool weights" in (tmp_path / "marked" / "report.html").read_text()


def test_a_mask_of_the_wrong_length_is_a_clear_error(coded, tmp_path, capsys):
    np.save(coded["task"] / OUTSIDE_MASK_FILE, np.zeros(3, dtype=bool))
    code = run_cli("distill", "--task", str(coded["task"]), "--zoo", str(coded["perfect"]), "--cache",
                   str(tmp_path / "cache"), "--out", str(tmp_path / "run"), "epochs=1", "batch_size=6",
                   "unlabeled_ratio=2", "progress=false")
    assert code == 2
    assert OUTSIDE_MASK_FILE in capsys.readouterr().err


def test_bench_report_shows_the_pool_weights_of_marked_runs():
    from xdistill.report.bench import pool_weight_rows

    marked = {"polluted": True, "mean_weight": 0.6, "mean_weight_in_class": 0.9, "mean_weight_outside": 0.3}
    results = {"runs": [{"task": "t", "method": "weighted", "seed": 0, "pool_weights": marked},
                        {"task": "t", "method": "fixmatch", "seed": 0, "pool_weights": None},
                        {"task": "u", "method": "weighted", "seed": 0, "pool_weights": {"polluted": False}}]}
    assert pool_weight_rows(results) == [{"target": "t", "method": "weighted", "seed": 0, "polluted": True,
                                          "mean weight": 0.6, "in-class": 0.9, "outside": 0.3}]
