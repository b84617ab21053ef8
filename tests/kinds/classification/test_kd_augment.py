"""Mixup and HARD for the distillation term: what the teachers see and answer, online and from the cache."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from tests.conftest import run_cli
from tests.kinds.classification.test_trust import write_world
from xdistill.kinds.classification.kd_augment import hardest, mixed_targets, mixup
from xdistill.kinds.classification.steps import Batch, FeaturesAndLogits, shown_to_teachers
from xdistill.students import build_student
from xdistill.train.config import DistillConfig


def test_mixup_mixes_each_image_with_a_partner_by_its_own_share():
    raw = torch.rand(6, 1, 4, 4)
    mixed, partner, lam = mixup(raw, seed=3, alpha=1.0)
    assert sorted(partner.tolist()) == list(range(6)) and ((0 <= lam) & (lam <= 1)).all()
    for i in range(6):
        torch.testing.assert_close(mixed[i], lam[i] * raw[i] + (1 - lam[i]) * raw[partner[i]])
    again, partner_again, lam_again = mixup(raw, seed=3, alpha=1.0)
    assert torch.equal(again, mixed) and (partner_again == partner).all() and (lam_again == lam).all()


def test_mixed_targets_are_the_same_mix_of_the_cached_targets():
    targets = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]], dtype=np.float32)
    out = mixed_targets(targets, np.array([1, 2, 0]), np.array([0.25, 1.0, 0.5]))
    np.testing.assert_allclose(out, [[0.25, 0.75], [0.0, 1.0], [0.75, 0.25]], rtol=1e-7)


def test_hardest_is_the_candidate_of_largest_teacher_student_kl():
    teacher = torch.tensor([[[0.9, 0.1], [0.5, 0.5]], [[0.9, 0.1], [0.99, 0.01]]])  # [K=2, U=2, C=2]
    student = torch.tensor([[[0.9, 0.1], [0.5, 0.5]], [[0.2, 0.8], [0.5, 0.5]]])
    assert hardest(student, teacher).tolist() == [1, 1]
    assert hardest(teacher, student).tolist() == [1, 1]  # KL(student || teacher) here also largest at k=1


def _context(kd_augment, online):
    """A step context whose teacher answers each image with its mean pixel (two classes) and whose cache holds
    fixed targets, so what a step asks of each can be seen."""
    def teacher(raw, index):
        mean = raw.flatten(1).mean(1).numpy()
        return np.stack([mean, 1 - mean], axis=1).astype(np.float32), {}

    cached = np.array([[0.1, 0.9], [0.6, 0.4], [0.3, 0.7], [0.8, 0.2]], dtype=np.float32)
    targets = SimpleNamespace(unlabeled=lambda views, index: cached[index])
    config = DistillConfig(kd_augment=kd_augment, online=online)
    return SimpleNamespace(config=config, online_targets=teacher if online else None, targets=targets,
                           num_classes=2), teacher, cached


def _batch():
    raw = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    mixed, partner, lam = mixup(raw, seed=0, alpha=1.0)
    candidates = torch.stack([raw, raw.flip(2), raw * 0.5])
    return Batch(raw, torch.zeros(4, dtype=torch.long), np.arange(4), x_unlabeled=raw, index_unlabeled=np.arange(4),
                 views=np.zeros(4, dtype=int), raw_unlabeled=raw, x_augmented=mixed, raw_augmented=mixed,
                 mix_partner=partner, mix_lambda=lam, x_candidates=candidates, raw_candidates=candidates)


def test_online_mixup_asks_the_teacher_about_the_mixed_image_and_cached_mixup_mixes_the_cache():
    batch = _batch()
    torch.manual_seed(0)
    model = FeaturesAndLogits(build_student("cnn", (1, 8, 8), 2))
    ctx, teacher, cached = _context("mixup", online=True)
    shown, answered = shown_to_teachers(model, batch, ctx, dual=False)
    assert torch.equal(shown, batch.x_augmented)
    np.testing.assert_array_equal(answered, teacher(batch.raw_augmented, None)[0])
    ctx, _, cached = _context("mixup", online=False)
    _, approximated = shown_to_teachers(model, batch, ctx, dual=False)
    np.testing.assert_allclose(approximated, mixed_targets(cached, batch.mix_partner, batch.mix_lambda))
    assert shown_to_teachers(model, batch, _context("none", online=False)[0], dual=False) == (None, None)


def test_hard_shows_each_sample_its_candidate_of_most_disagreement():
    batch = _batch()
    torch.manual_seed(0)
    model = FeaturesAndLogits(build_student("cnn", (1, 8, 8), 2)).train()
    ctx, teacher, _ = _context("hard", online=True)
    shown, answered = shown_to_teachers(model, batch, ctx, dual=False)
    assert model.training  # the scoring pass leaves the student in training mode
    model.eval()
    with torch.no_grad():
        student = torch.stack([torch.softmax(model(c)[1], 1) for c in batch.x_candidates])
    teachers = torch.as_tensor(np.stack([teacher(c, None)[0] for c in batch.raw_candidates]))
    chosen = hardest(student, teachers).numpy()
    for i, k in enumerate(chosen):
        assert torch.equal(shown[i], batch.x_candidates[k, i])
        np.testing.assert_array_equal(answered[i], teachers[k, i].numpy())


@pytest.fixture(scope="module")
def coded(tmp_path_factory):
    return write_world(tmp_path_factory.mktemp("augment"))


@pytest.mark.parametrize("extra", [["kd_augment=mixup"], ["kd_augment=mixup", "--online"],
                                   ["kd_augment=hard", "hard_candidates=2", "--online"]])
def test_augmented_distillation_runs_through_the_cli(coded, tmp_path, extra):
    code = run_cli("distill", "--task", str(coded["task"]), "--zoo", str(coded["perfect"]), "--cache",
                   str(tmp_path / "cache"), "--out", str(tmp_path / "run"), "epochs=1", "batch_size=6",
                   "unlabeled_ratio=2", "progress=false", *extra)
    assert code == 0
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["curves"][0]["train"]["kd"] >= 0


def test_hard_without_online_teachers_is_refused(coded, tmp_path, capsys):
    code = run_cli("distill", "--task", str(coded["task"]), "--zoo", str(coded["perfect"]), "--out",
                   str(tmp_path / "run"), "kd_augment=hard", "feature_weight=1")
    assert code == 2
    err = capsys.readouterr().err
    assert "--online" in err and "feature_weight=0" in err and not (tmp_path / "run").exists()
