"""xdistill's losses against values computed independently from the papers'
formulas (tests/losses/reference.py), live on random inputs and as stored in
the fixture, so a refactor cannot silently change what a loss computes."""

from __future__ import annotations

import numpy as np
import pytest

from xdistill.losses import LOSSES

from .cases import FIXTURE, fixture_cases, load_fixture, random_case, reference_values, torch_arguments
from .reference import REFERENCES

RELATIVE_TOLERANCE = 1e-6


def run_xdistill(case):
    """Call the registered loss on ``case`` in float64 and return its terms as floats."""
    terms = LOSSES.get(case["loss"])(**torch_arguments(case), **case["params"])
    return {name: value.item() for name, value in terms.items()}


def assert_terms_match(actual, expected, case):
    assert set(actual) == set(expected), case["loss"]
    for name in expected:
        assert actual[name] == pytest.approx(expected[name], rel=RELATIVE_TOLERANCE, abs=1e-12), (
            f"{case['loss']} term '{name}' with params {case['params']}"
        )


def test_every_registered_loss_has_a_reference():
    assert sorted(REFERENCES) == LOSSES.names()


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("loss", sorted(REFERENCES))
def test_matches_reference_on_random_inputs(loss, seed):
    case = random_case(loss, np.random.default_rng([seed, sorted(REFERENCES).index(loss)]))
    assert_terms_match(run_xdistill(case), reference_values(case), case)


def test_matches_stored_fixture():
    stored = load_fixture(FIXTURE)
    assert len(stored) == len(fixture_cases())
    for case in stored:
        assert_terms_match(run_xdistill(case), case["expected"], case)


def test_reference_still_produces_stored_fixture():
    """Guards the guard: a change to reference.py or cases.py must be deliberate."""
    stored = load_fixture(FIXTURE)
    for fresh, kept in zip(fixture_cases(), stored):
        assert fresh["loss"] == kept["loss"]
        for name, value in fresh["arrays"].items():
            # The inputs come from numpy's exp and normal sampler, whose last bit varies with the CPU's SIMD code
            # paths (1 ulp, 1e-16 relative); a deliberate change to cases.py moves them by far more than 1e-12.
            np.testing.assert_allclose(value, kept["arrays"][name], rtol=1e-12, atol=0, err_msg=f"{kept['loss']} {name}")
        # Parameters are drawn by uniform and choice: a few correctly rounded operations, so 1e-12 is wide.
        assert fresh["params"] == pytest.approx(kept["params"], rel=1e-12, abs=0)
        assert_terms_match(fresh["expected"], kept["expected"], fresh)
