"""Transferability metrics against slow references written from the papers'
formulas (transferability_reference.py), live on random inputs and as stored in
a fixture; and against invariants and degenerate inputs.

Regenerate the fixture (only when a change of values is intended) with
``PYTHONPATH=src python -m tests.select.test_metrics`` from the repository root.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from xdistill.errors import XDistillError
from xdistill.select import METRICS, compute_metric, knn_loo_accuracy, linear_probe_accuracy, nce
from xdistill.select.probes import canonical_order

from .transferability_reference import (
    REFERENCES,
    random_case,
    reference_knn_loo_accuracy,
    reference_linear_probe_accuracy,
    reference_nce,
    reference_value,
)

FIXTURE = Path(__file__).parent / "fixtures" / "metric_reference_values.npz"
FIXTURE_SHAPES = [(50, 6, 3), (24, 40, 3), (36, 36, 4)]  # (N, D, C): N > D, N < D, N = D
RANDOM_SHAPES = [(60, 5, 3), (40, 80, 4), (120, 20, 6), (30, 30, 2)]
RELATIVE_TOLERANCE = 1e-6


def score(key, case):
    name, options, _ = REFERENCES[key]
    return compute_metric(name, case["features"], case["probs"], labels=case["labels"], **options)


def test_every_registered_metric_has_a_reference():
    assert {name for name, _, _ in REFERENCES.values()} == set(METRICS.names())


def test_registry_lists_metrics_with_what_they_need():
    assert METRICS.names() == [
        "gbc", "hscore", "hscore_regularized", "knn_loo_accuracy", "leep",
        "linear_probe_accuracy", "logme", "nce", "transrate",
    ]  # fmt: skip
    needs = {name: METRICS.get(name).needs for name in METRICS.names()}
    assert {name for name, need in needs.items() if need == "probs"} == {"leep", "nce"}
    assert {need for need in needs.values()} == {"features", "probs"}


def test_unknown_metric_name_suggests_the_closest():
    with pytest.raises(XDistillError, match="Did you mean 'logme'"):
        METRICS.get("logm")


@pytest.mark.parametrize("shape", RANDOM_SHAPES, ids=lambda s: "N{}-D{}-C{}".format(*s))
@pytest.mark.parametrize("key", sorted(REFERENCES))
def test_matches_reference_on_random_inputs(key, shape):
    case = random_case(np.random.default_rng([*shape, len(key)]), *shape)
    assert score(key, case) == pytest.approx(reference_value(key, case), rel=RELATIVE_TOLERANCE, abs=1e-12)


def fixture_cases():
    return [random_case(np.random.default_rng(100 + i), *shape) for i, shape in enumerate(FIXTURE_SHAPES)]


def write_fixture(path=FIXTURE):
    arrays = {}
    for i, case in enumerate(fixture_cases()):
        arrays.update({f"case{i}/{name}": value for name, value in case.items()})
        arrays.update({f"case{i}/expected/{key}": reference_value(key, case) for key in REFERENCES})
    path.parent.mkdir(exist_ok=True)
    np.savez(path, **arrays)


def test_matches_stored_fixture():
    stored = np.load(FIXTURE)
    for i in range(len(FIXTURE_SHAPES)):
        case = {name: stored[f"case{i}/{name}"] for name in ("features", "probs", "labels")}
        for key in REFERENCES:
            expected = float(stored[f"case{i}/expected/{key}"])
            assert score(key, case) == pytest.approx(expected, rel=RELATIVE_TOLERANCE, abs=1e-12), (i, key)


@pytest.fixture(scope="module")
def case():
    return random_case(np.random.default_rng(7), 60, 12, 4)


@pytest.mark.parametrize("key", sorted(REFERENCES))
def test_permuting_samples_leaves_scores_unchanged(key, case):
    order = np.random.default_rng(1).permutation(len(case["labels"]))
    permuted = {name: value[order] for name, value in case.items()}
    assert score(key, permuted) == pytest.approx(score(key, case), rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("key", sorted(REFERENCES))
def test_renaming_classes_leaves_scores_unchanged(key, case):
    renaming = np.array([2, 0, 3, 1])
    renamed = {**case, "labels": renaming[case["labels"]]}
    assert score(key, renamed) == pytest.approx(score(key, case), rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("key", ["leep", "nce"])
def test_reordering_source_classes_leaves_scores_unchanged(key, case):
    reordered = {**case, "probs": case["probs"][:, ::-1]}
    assert score(key, reordered) == pytest.approx(score(key, case), rel=1e-9, abs=1e-12)


def test_knn_on_separated_classes_is_perfect():
    rng = np.random.default_rng(3)
    labels = np.repeat(np.arange(5), 20)
    features = 0.1 * rng.standard_normal((100, 8)) + 10 * np.eye(8)[labels]
    assert knn_loo_accuracy(features, labels) == 1.0
    assert knn_loo_accuracy(features, labels, k=5) == 1.0
    assert linear_probe_accuracy(features, labels) == 1.0


def test_knn_on_random_labels_is_near_chance():
    rng = np.random.default_rng(4)
    labels = rng.integers(0, 4, 400)
    assert abs(knn_loo_accuracy(rng.standard_normal((400, 10)), labels) - 0.25) < 0.1


def test_knn_blocks_give_the_same_neighbours_as_one_block(monkeypatch, case):
    from xdistill.select import probes

    whole = knn_loo_accuracy(case["features"], case["labels"], k=3)
    monkeypatch.setattr(probes, "NEIGHBOUR_BLOCK", 7)
    assert knn_loo_accuracy(case["features"], case["labels"], k=3) == whole


def test_knn_is_exact_where_float32_distances_cannot_tell_neighbours_apart():
    from xdistill.select.probes import nearest_neighbours

    rng = np.random.default_rng(8)
    spread = 30 * rng.standard_normal((200, 64))
    anchors = spread[:20]
    # Each anchor gets 8 neighbours along different axes whose squared distances
    # differ by ~2e-10, far below float32 resolution at this scale; the first is nearest.
    offsets = [0.01 * (1 + 1e-6 * j) * np.eye(64)[j] for j in range(8)]
    features = np.vstack([spread, *[anchors + offset for offset in offsets]])
    nearest = nearest_neighbours(features, 1)[:20, 0]
    assert np.array_equal(nearest, np.arange(200, 220))


def test_knn_falls_back_to_exact_search_when_candidates_are_uncertain(monkeypatch, case):
    from xdistill.select import probes

    monkeypatch.setattr(probes, "CANDIDATES_BEYOND_K", 0)  # no margin: most samples fall back
    for k in (1, 3):
        expected = reference_knn_loo_accuracy(case["features"], case["labels"], k)
        assert knn_loo_accuracy(case["features"], case["labels"], k=k) == expected


def test_linear_probe_reduces_folds_to_the_smallest_class():
    rng = np.random.default_rng(5)
    labels = np.array([0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2])
    features = rng.standard_normal((12, 3)) + 3 * np.eye(3)[labels]
    assert linear_probe_accuracy(features, labels, folds=5) == linear_probe_accuracy(features, labels, folds=2)


def test_nce_takes_any_integer_source_ids():
    rng = np.random.default_rng(6)
    labels = rng.permutation(np.arange(40) % 3)
    source_labels = np.array([3, 17, 42, -5])[rng.integers(0, 4, 40)]
    assert nce(source_labels, labels) == pytest.approx(reference_nce(source_labels, labels), rel=1e-12)


def test_compute_metric_returns_none_when_the_teacher_lacks_the_input(case):
    assert compute_metric("leep", case["features"], None, labels=case["labels"]) is None
    assert compute_metric("nce", features=case["features"], labels=case["labels"]) is None
    assert compute_metric("logme", None, case["probs"], labels=case["labels"]) is None
    assert compute_metric("logme", case["features"], None, labels=case["labels"]) is not None


def _nan_in_row_3(values):
    return np.where(np.arange(len(values))[:, None] == 3, np.nan, values)


DEGENERATE = {  # problem -> (corrupt(features, probs, labels), expected message)
    "single class": (lambda f, p, y: (f, p, np.zeros_like(y)), "at least 2 classes"),
    "NaN": (lambda f, p, y: (_nan_in_row_3(f), _nan_in_row_3(p), y), "must be finite"),
    "mismatched lengths": (lambda f, p, y: (f[:-1], p[:-1], y), "same number of samples"),
    "non-contiguous labels": (lambda f, p, y: (f, p, np.array([0, 2, 5, 9])[y]), "contiguous integers 0..C-1"),
    "float labels": (lambda f, p, y: (f, p, y.astype(float)), "must be integers"),
}


@pytest.mark.parametrize("problem", sorted(DEGENERATE))
@pytest.mark.parametrize("name", METRICS.names())
def test_degenerate_inputs_raise_a_clear_error(name, problem, case):
    corrupt, message = DEGENERATE[problem]
    features, probs, labels = corrupt(case["features"], case["probs"], case["labels"])
    with pytest.raises(XDistillError, match=message) as error:
        compute_metric(name, features, probs, labels=labels)
    assert f"'{name}'" in str(error.value)


@pytest.mark.parametrize("name", [name for name in METRICS.names() if METRICS.get(name).needs == "features"])
def test_all_zero_features_are_refused(name, case):
    with pytest.raises(XDistillError, match="features are all zero"):
        compute_metric(name, np.zeros_like(case["features"]), labels=case["labels"])


def test_every_problem_is_reported_at_once(case):
    features = case["features"].copy()
    features[0, 0] = np.nan
    labels = np.array([0, 2, 5, 9])[case["labels"]][:-1]
    with pytest.raises(XDistillError) as error:
        compute_metric("gbc", features, labels=labels, gaussian="full")
    message = str(error.value)
    for part in ["4 problems", "'gaussian'", "contiguous", "finite", "same number of samples"]:
        assert part in message


@pytest.mark.parametrize(
    ("probs", "message"),
    [(lambda p: p * 1.1, "must sum to 1"), (lambda p: p - 0.5, "non-negative"), (lambda p: p[:, 0], "2-D array")],
)
def test_invalid_probabilities_are_explained(case, probs, message):
    with pytest.raises(XDistillError, match=message):
        compute_metric("leep", probs=probs(case["probs"]), labels=case["labels"])


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("transrate", {"eps": 0.0}, "'eps' of transrate must be a float > 0"),
        ("knn_loo_accuracy", {"k": 60}, "at most N - 1 = 59"),
        ("knn_loo_accuracy", {"k": 0}, "'k' of knn_loo_accuracy must be an integer >= 1"),
        ("linear_probe_accuracy", {"folds": 1}, "'folds'"),
        ("linear_probe_accuracy", {"C": -1.0}, "'C'"),
    ],
)
def test_invalid_options_are_explained(case, name, options, message):
    with pytest.raises(XDistillError, match=message):
        compute_metric(name, case["features"], labels=case["labels"], **options)



def test_canonical_order_is_the_lexicographic_order_of_features_then_labels():
    rng = np.random.default_rng(3)
    for columns in (1, 3, 12):  # ties beyond the first 8 columns go to the full key
        features = rng.integers(-2, 3, (200, columns)).astype(np.float64) * 0.75
        features[:5] = 0.0
        features[5:10] = -0.0  # equal to 0.0, as in a tuple comparison
        labels = rng.integers(0, 3, 200)
        expected = np.lexsort(np.vstack([labels, (features + 0.0).T[::-1]]))
        np.testing.assert_array_equal(canonical_order(features, labels), expected)


@pytest.mark.parametrize("shape", [(300, 40, 5), (40, 300, 5)], ids=["primal", "dual"])
def test_fast_linear_probe_matches_its_literal_reference(shape):
    # Both forms of the closed-form probe against the per-fold solve of the reference; accuracies are
    # counts of equal argmaxes, so they agree exactly unless a score ties to rounding (rel 1e-12).
    case = random_case(np.random.default_rng(list(shape)), *shape)
    for C in (0.1, 1.0, 10.0):
        expected = reference_linear_probe_accuracy(case["features"], case["labels"], C=C)
        assert linear_probe_accuracy(case["features"], case["labels"], C=C) == pytest.approx(expected, rel=1e-12)

if __name__ == "__main__":
    write_fixture()
    print(f"wrote {FIXTURE}")
