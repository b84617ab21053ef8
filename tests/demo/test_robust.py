"""The robust suite's targets: built from the demo world's images, with a zoo made useless on purpose."""

from __future__ import annotations

import numpy as np
import torch
import yaml

from xdistill.data import load_task
from xdistill.demo import nets
from xdistill.demo.robust import build_robust, over_four_task
from xdistill.demo.suite import SUITES


def test_over_four_relabels_the_digits_with_ten_labels_a_class():
    task = over_four_task()
    assert task.classes == ["0-4", "5-9"]
    assert np.bincount(task.labeled.y).tolist() == [10, 10]
    assert len(task.test) == 500 and set(np.unique(task.test.y)) == {0, 1}


def test_robust_targets_and_scrambled_zoo(tiny_world, tmp_path):
    _, world, _ = tiny_world
    assert "robust" in SUITES
    built = build_robust(world, log=lambda _: None)
    assert sorted(built) == ["mnist-noise-50", "mnist-noise-useless", "sk-digits-over-4"]
    assert np.bincount(load_task(str(built["mnist-noise-50"][0])).labeled.y).tolist() == [50] * 10
    zoo_path = built["mnist-noise-useless"][1]
    assert built["mnist-noise-50"][1] == world.zoo_path and zoo_path != world.zoo_path
    entries = yaml.safe_load(zoo_path.read_text())["teachers"]
    assert len(entries) == len(world.teacher_names)
    # A scrambled teacher answers two nearly identical images with unrelated outputs, and its classes
    # are a permutation of the original's.
    entry = entries[0]
    scrambled = torch.jit.load(str(zoo_path.parent / entry["path"]))
    original = torch.jit.load(str(world.root / f"teachers/{world.teacher_names[0]}.pt"))
    images = nets.preprocess(np.random.default_rng(0).integers(0, 256, (64, 28, 28), dtype=np.uint8))
    nudged = images.clone()
    nudged[:, 0, 0, 0] += 1e-3
    with torch.no_grad():
        features, logits = scrambled(images)
        features_nudged, _ = scrambled(nudged)
        _, original_logits = original(images)
    assert logits.shape == original_logits.shape
    # Centred per feature over the images: what is left is what tells the images apart.
    a, b = features.numpy() - features.numpy().mean(0), features_nudged.numpy() - features_nudged.numpy().mean(0)
    correlation = float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))
    assert abs(correlation) < 0.3
    # Built once: a second call finds every file and returns the same places.
    assert build_robust(world, log=lambda _: None) == built
