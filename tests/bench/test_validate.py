from __future__ import annotations

import itertools
import warnings

import pytest

from xdistill.bench.validate import selection_quality


def kendall_tau_a(x, y):
    """Concordant minus discordant pairs over all pairs (no ties in these examples)."""
    pairs = list(itertools.combinations(range(len(x)), 2))
    sign = [((x[i] - x[j]) * (y[i] - y[j]) > 0) - ((x[i] - x[j]) * (y[i] - y[j]) < 0) for i, j in pairs]
    return sum(sign) / len(pairs)


def spearman(x, y):
    rank = lambda v: [sorted(v).index(e) for e in v]  # noqa: E731 - distinct values only
    rx, ry, n = rank(x), rank(y), len(x)
    return 1 - 6 * sum((a - b) ** 2 for a, b in zip(rx, ry)) / (n * (n * n - 1))


def test_correlations_and_regret_match_their_definitions():
    scores = {"a": 0.9, "b": 0.1, "c": 0.5, "d": 0.7}
    accuracy = {"a": 0.60, "b": 0.20, "c": 0.80, "d": 0.70}
    found = selection_quality(scores, accuracy)
    names = list(scores)
    x, y = [scores[n] for n in names], [accuracy[n] for n in names]
    assert found["kendall_tau"] == pytest.approx(kendall_tau_a(x, y))
    assert found["spearman_rho"] == pytest.approx(spearman(x, y))
    assert found["top1"] == "a" and found["top1_regret"] == pytest.approx(0.80 - 0.60) and found["n"] == 4


def test_a_perfect_ranking_has_tau_one_and_no_regret():
    found = selection_quality({"a": 3.0, "b": 2.0, "c": 1.0}, {"a": 0.9, "b": 0.5, "c": 0.1})
    assert found["kendall_tau"] == pytest.approx(1.0) and found["spearman_rho"] == pytest.approx(1.0)
    assert found["top1_regret"] == 0.0


def test_undefined_scores_are_left_out_and_too_few_teachers_give_none():
    found = selection_quality({"a": 1.0, "b": None, "c": float("nan"), "d": 0.5}, {"a": 0.9, "b": 0.1, "c": 0.2, "d": 0.4})
    assert found == {"kendall_tau": None, "spearman_rho": None, "top1_regret": None, "n": 2}


@pytest.mark.parametrize("scores, accuracy", [
    ({"a": 1.0, "b": 1.0, "c": 1.0}, {"a": 0.9, "b": 0.5, "c": 0.1}),
    ({"a": 3.0, "b": 2.0, "c": 1.0}, {"a": 0.5, "b": 0.5, "c": 0.5}),
])
def test_constant_scores_or_accuracies_have_no_correlation_and_no_warning(scores, accuracy):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        found = selection_quality(scores, accuracy)
    assert found["kendall_tau"] is None and found["spearman_rho"] is None and found["n"] == 3
