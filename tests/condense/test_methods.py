"""Every registered condensation method's contract on the tiny task: shapes, [0, 1] range, labels, soft rows
summing to 1, determinism by seed."""

from __future__ import annotations

import numpy as np
import pytest

from tests.condense.conftest import TINY
from xdistill.condense import CONDENSE_METHODS, CondenseConfig, methods_of
from xdistill.condense.store import read_condensed
from xdistill.pipeline.condense import condense

IMAGE_METHODS = methods_of("images")
LABEL_METHODS = methods_of("labels")


def run(task, out, **settings):
    config = CondenseConfig(task=str(task), out=str(out), **{**TINY, **settings})
    record = condense(config)
    return record, read_condensed(out)


def test_both_roles_are_registered():
    assert {"random", "herding", "kcenter", "dm", "datadam", "dc"} <= set(IMAGE_METHODS)
    assert {"relabel", "committee"} <= set(LABEL_METHODS)
    assert all(CONDENSE_METHODS.get(m).summary for m in CONDENSE_METHODS)


@pytest.mark.parametrize("method", IMAGE_METHODS)
def test_image_method_contract(method, tiny_task, tmp_path):
    record, made = run(tiny_task, tmp_path / "a", method=method, ipc=2)
    assert made.x.shape == (6, 8, 8) and made.x.dtype == np.float32
    assert 0.0 <= made.x.min() and made.x.max() <= 1.0
    assert made.y.tolist() == [0, 0, 1, 1, 2, 2]
    assert made.soft is None and record["labels"] == "hard"
    assert (tmp_path / "a" / "condensed.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    _, again = run(tiny_task, tmp_path / "b", method=method, ipc=2)
    np.testing.assert_array_equal(made.x, again.x)  # same seed, same machine: identical by construction


@pytest.mark.parametrize("method", ["random", "dm"])
def test_another_seed_gives_other_images(method, tiny_task, tmp_path):
    _, first = run(tiny_task, tmp_path / "a", method=method, ipc=2, seed=0)
    _, second = run(tiny_task, tmp_path / "b", method=method, ipc=2, seed=1)
    assert not np.array_equal(first.x, second.x)


@pytest.mark.parametrize("method", ["dm", "datadam", "dc"])
def test_matching_moves_the_pixels(method, tiny_task, tmp_path):
    _, start = run(tiny_task, tmp_path / "a", method="random", ipc=1)  # same init stream as the matching methods
    record, learned = run(tiny_task, tmp_path / "b", method=method, ipc=1, init="real")
    assert record["iterations"] == 2 and record["images_learned"]
    assert np.abs(learned.x - start.x).max() > 1e-4


@pytest.mark.parametrize("labels", LABEL_METHODS)
def test_label_method_contract(labels, tiny_task, tiny_zoo, tmp_path):
    record, made = run(tiny_task, tmp_path / "a", method="dm", labels=labels, ipc=2, zoo=str(tiny_zoo),
                       cache_dir=str(tmp_path / "cache"))
    assert made.soft.shape == (6, 3) and made.soft.dtype == np.float32
    assert (made.soft >= 0).all()
    np.testing.assert_allclose(made.soft.sum(axis=1), 1.0, atol=1e-5)  # float32 rows normalised in float64
    assert record["labels"] == labels and record["soft_labels"]


def test_label_method_alone_relabels_random_real_images(tiny_task, tiny_zoo, tmp_path):
    record, made = run(tiny_task, tmp_path / "a", method="relabel", ipc=2, zoo=str(tiny_zoo),
                       cache_dir=str(tmp_path / "cache"))
    _, random_real = run(tiny_task, tmp_path / "b", method="random", ipc=2)
    assert record["images"] == "random" and record["labels"] == "relabel"
    np.testing.assert_array_equal(made.x, random_real.x)
    assert made.soft is not None


@pytest.mark.parametrize("method", ["herding", "kcenter"])
def test_coresets_in_a_teachers_feature_space(method, tiny_task, tiny_zoo, tmp_path):
    record, made = run(tiny_task, tmp_path / "a", method=method, ipc=2, features="teacher", zoo=str(tiny_zoo),
                       cache_dir=str(tmp_path / "cache"))
    assert made.x.shape == (6, 8, 8)
    assert record["record"]["features"] == "teacher"


def test_flip_matches_each_image_with_its_mirror(tiny_task, tmp_path):
    _, plain = run(tiny_task, tmp_path / "a", method="dm", ipc=1)
    record, flipped = run(tiny_task, tmp_path / "b", method="dm", ipc=1, flip=True)
    assert record["settings"]["flip"] is True
    assert not np.array_equal(plain.x, flipped.x)


def test_matching_reads_one_mini_batch_of_real_images_per_class_per_step(tiny_task, tmp_path, monkeypatch):
    """Memory stays flat as the pool grows: each matching step reads C x real_batch real images, never the pool."""
    from xdistill.condense.pool import RealPool

    sizes = []
    original = RealPool.images

    def counting(self, positions):
        sizes.append(len(positions))
        return original(self, positions)

    monkeypatch.setattr(RealPool, "images", counting)
    run(tiny_task, tmp_path / "a", method="dm", ipc=1, iterations=3, real_batch=2, init="real")
    assert sizes == [3] + [3 * 2] * 3  # the initial images, then one class mini-batch per class per step


@pytest.mark.parametrize("init", ["noise", "herding", "kcenter"])
def test_matching_starts_from_noise_or_a_coreset(init, tiny_task, tmp_path, monkeypatch):
    from xdistill.condense import matching

    started = {}
    original = matching.initial_images

    def recording(ctx):
        images = original(ctx)
        started["images"] = images.detach().clone()  # the loop then learns the returned tensor in place
        return images

    monkeypatch.setattr(matching, "initial_images", recording)
    _, made = run(tiny_task, tmp_path / "a", method="dm", ipc=2, init=init)
    assert made.x.shape == (6, 8, 8) and 0 <= made.x.min() and made.x.max() <= 1
    if init != "noise":
        _, coreset = run(tiny_task, tmp_path / "b", method=init, ipc=2)
        np.testing.assert_array_equal(started["images"][:, 0].numpy(), coreset.x)  # the coreset's own images
