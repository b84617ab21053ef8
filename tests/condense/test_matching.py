"""The matching losses against literal, per-sample computations of the papers' formulas, the Siamese
augmentation's invariants and the coresets against their definitions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from xdistill.condense.augment import TRANSFORMS, AugmentParams, sample_params, siamese_augment
from xdistill.condense.coreset import herding, k_center
from xdistill.condense.embedders import activation_modules, intermediate_maps, random_network
from xdistill.condense.matching import MatchBatch
from xdistill.condense.methods.committee import committee_weights
from xdistill.condense.methods.datadam import attention_distance, datadam_loss
from xdistill.condense.methods.dc import gradient_distance
from xdistill.condense.methods.dm import dm_loss, embedding_distance


def literal_class_mean(rows, labels, c):
    members = [r for r, l in zip(rows, labels) if l == c]
    return [sum(m[d] for m in members) / len(members) for d in range(len(rows[0]))]


def literal_dm(real, real_labels, synthetic, synthetic_labels, classes):
    """Zhao & Bilen 2023, eq. 4: sum over classes of the squared distance between mean embeddings."""
    total = 0.0
    for c in range(classes):
        a = literal_class_mean(real, real_labels, c)
        b = literal_class_mean(synthetic, synthetic_labels, c)
        total += sum((x - y) ** 2 for x, y in zip(a, b))
    return total


def literal_attention(feature_map, p):
    """Sajedi et al. 2023, eq. 2 for one image: a_ij = sum_c |f_cij|^p, flattened and L2-normalised."""
    channels, h, w = len(feature_map), len(feature_map[0]), len(feature_map[0][0])
    a = [sum(abs(feature_map[c][i][j]) ** p for c in range(channels)) for i in range(h) for j in range(w)]
    norm = math.sqrt(sum(v * v for v in a))
    return [v / norm for v in a]


def test_dm_distance_matches_the_literal_formula():
    rng = np.random.default_rng(0)
    real, synthetic = rng.normal(size=(12, 5)), rng.normal(size=(6, 5))
    real_labels, synthetic_labels = np.arange(12) % 3, np.arange(6) // 2
    expected = literal_dm(real.tolist(), real_labels.tolist(), synthetic.tolist(), synthetic_labels.tolist(), 3)
    got = embedding_distance(torch.tensor(real), torch.tensor(real_labels), torch.tensor(synthetic),
                             torch.tensor(synthetic_labels), 3)
    assert float(got) == pytest.approx(expected, rel=1e-10)  # float64 sums of 5-dim squares


def test_datadam_attention_term_matches_the_literal_formula():
    rng = np.random.default_rng(1)
    real = [rng.normal(size=(8, 4, 3, 3)), rng.normal(size=(8, 4, 2, 2))]
    synthetic = [rng.normal(size=(4, 4, 3, 3)), rng.normal(size=(4, 4, 2, 2))]
    real_labels, synthetic_labels = np.arange(8) % 2, np.arange(4) // 2
    expected = 0.0
    for r, s in zip(real, synthetic):
        real_maps = [literal_attention(m.tolist(), 4) for m in r]
        synthetic_maps = [literal_attention(m.tolist(), 4) for m in s]
        expected += literal_dm(real_maps, real_labels.tolist(), synthetic_maps, synthetic_labels.tolist(), 2)
    got = attention_distance([torch.tensor(m) for m in real], torch.tensor(real_labels),
                             [torch.tensor(m) for m in synthetic], torch.tensor(synthetic_labels), 2, 4)
    assert float(got) == pytest.approx(expected, rel=1e-9)  # float64, fourth powers of N(0, 1) values


def test_datadam_loss_is_dm_plus_weighted_attention_on_a_real_network():
    torch.manual_seed(0)
    network = random_network("convnet3", (1, 8, 8), 3, 8, seed=3).double()
    network.requires_grad_(False)
    batch = MatchBatch(torch.randn(6, 1, 8, 8, dtype=torch.float64), torch.arange(6) % 3,
                       torch.randn(3, 1, 8, 8, dtype=torch.float64), torch.arange(3), 3)
    layers = activation_modules(network)[:-1]
    with intermediate_maps(network, layers) as take:
        real = network.forward_features(batch.real)
        real_maps = take()
        synthetic = network.forward_features(batch.synthetic)
        synthetic_maps = take()
    mmd = literal_dm(real.tolist(), batch.real_labels.tolist(), synthetic.tolist(), batch.synthetic_labels.tolist(), 3)
    sam = sum(literal_dm([literal_attention(m, 4) for m in r.tolist()], batch.real_labels.tolist(),
                         [literal_attention(m, 4) for m in s.tolist()], batch.synthetic_labels.tolist(), 3)
              for r, s in zip(real_maps, synthetic_maps))
    assert len(layers) == 2  # convnet3's first two blocks; the third feeds the embedding
    assert float(datadam_loss(0.5, 4)(network, batch)) == pytest.approx(mmd + 0.5 * sam, rel=1e-9)
    assert float(dm_loss(network, batch)) == pytest.approx(mmd, rel=1e-9)


def test_dc_distance_matches_the_literal_formula():
    """Zhao et al. 2021, eq. 10: per layer, sum over output units of 1 - cos; 1-D parameters are skipped."""
    rng = np.random.default_rng(2)
    real = [rng.normal(size=(3, 2, 2, 2)), rng.normal(size=(3,)), rng.normal(size=(4, 5))]
    synthetic = [rng.normal(size=s.shape) for s in real]
    expected = 0.0
    for a, b in zip(real, synthetic):
        if a.ndim == 1:
            continue
        for i in range(a.shape[0]):
            u, v = a[i].ravel().tolist(), b[i].ravel().tolist()
            dot = sum(x * y for x, y in zip(u, v))
            expected += 1 - dot / (math.sqrt(sum(x * x for x in u)) * math.sqrt(sum(y * y for y in v)))
    got = gradient_distance([torch.tensor(g) for g in real], [torch.tensor(g) for g in synthetic])
    assert float(got) == pytest.approx(expected, rel=1e-10)


def identity_params(groups: int) -> AugmentParams:
    return AugmentParams(torch.full((groups,), -1), torch.zeros(groups), torch.ones(groups), torch.ones(groups),
                         torch.zeros(groups, 2), torch.full((groups, 2), 0.5), torch.ones(groups, 2), torch.zeros(groups))


def test_augmentation_with_identity_parameters_changes_nothing():
    images = torch.rand(4, 3, 8, 8)
    torch.testing.assert_close(siamese_augment(images, identity_params(2), torch.tensor([0, 0, 1, 1])), images)


def test_augmentation_is_siamese_and_differentiable():
    generator = torch.Generator().manual_seed(0)
    params = sample_params(5, generator)
    image = torch.rand(1, 1, 12, 12)
    synthetic = image.clone().requires_grad_(True)
    groups = torch.arange(5)
    real_out = siamese_augment(image.expand(5, -1, -1, -1), params, groups)
    synthetic_out = siamese_augment(synthetic.expand(5, -1, -1, -1), params, groups)
    torch.testing.assert_close(real_out, synthetic_out)  # the same image under the same group's transform
    synthetic_out.sum().backward()
    assert synthetic.grad is not None and synthetic.grad.abs().sum() > 0
    assert set(params.transform.tolist()) <= set(range(len(TRANSFORMS)))


def test_cutout_zeroes_half_the_side_and_crop_translates():
    params = identity_params(1)
    params.transform = torch.tensor([TRANSFORMS.index("cutout")])
    out = siamese_augment(torch.ones(1, 1, 8, 8), params, torch.tensor([0]))
    assert int((out == 0).sum()) == 16  # a 4x4 square centred in the 8x8 image
    params = identity_params(1)
    params.transform, params.shift = torch.tensor([TRANSFORMS.index("crop")]), torch.tensor([[0.125, 0.0]])
    image = torch.zeros(1, 1, 8, 8)
    image[0, 0, 4, 4] = 1.0
    moved = siamese_augment(image, params, torch.tensor([0]))
    assert moved[0, 0, 4, 3] == pytest.approx(1.0)  # sampling 1/8 of the width to the right moves content left


def literal_herding(features, k):
    mean = features.mean(axis=0)
    chosen = []
    for _ in range(k):
        best, best_distance = None, math.inf
        for i in range(len(features)):
            if i in chosen:
                continue
            running = (features[chosen].sum(axis=0) + features[i]) / (len(chosen) + 1)
            distance = float(np.sqrt(((mean - running) ** 2).sum()))
            if distance < best_distance:
                best, best_distance = i, distance
        chosen.append(best)
    return chosen


def literal_k_center(features, k):
    distances = lambda i: [float(np.sqrt(((features[i] - features[j]) ** 2).sum())) for j in range(len(features))]  # noqa: E731
    mean = features.mean(axis=0)
    chosen = [int(np.argmin([np.sqrt(((f - mean) ** 2).sum()) for f in features]))]
    while len(chosen) < k:
        nearest = [min(distances(c)[j] for c in chosen) for j in range(len(features))]
        chosen.append(int(np.argmax(nearest)))
    return chosen


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_coresets_match_their_definitions(seed):
    features = np.random.default_rng(seed).normal(size=(15, 4))
    assert herding(features, 5).tolist() == literal_herding(features, 5)
    assert k_center(features, 5).tolist() == literal_k_center(features, 5)


def test_committee_votes_by_accuracy_above_chance():
    names, weights = committee_weights({"a": 0.9, "b": 0.5, "c": 0.1, "d": None}, 3, 10)
    assert names == ["a", "b", "c"]
    np.testing.assert_allclose(weights, [0.8 / 1.2, 0.4 / 1.2, 0.0])
    names, weights = committee_weights({"a": 0.1, "b": 0.05}, 2, 10)
    np.testing.assert_allclose(weights, [0.5, 0.5])  # nobody above chance: equal votes


def test_label_temperature_softens_by_the_power_one_over_t():
    from xdistill.condense.teacher_labels import soften

    probs = np.array([[0.7, 0.2, 0.1], [0.05, 0.9, 0.05]])
    for temperature in (1.0, 3.0):
        expected = [[p ** (1 / temperature) / sum(q ** (1 / temperature) for q in row) for p in row] for row in probs]
        np.testing.assert_allclose(soften(probs, temperature), expected, rtol=1e-6)  # float32 output
    assert soften(probs, 3.0)[0].max() < probs[0].max()
