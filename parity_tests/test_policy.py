"""The error measures of the tolerance policy (scratch.policy) and its JSON rule for non-finite numbers."""
from __future__ import annotations

import numpy as np
import pytest

from scratch.policy import FAIL, PASS, TOLERANCE, json_safe, max_abs_error, rel_error, verdict


def test_policy_rel_error_definition():
    assert rel_error([3.0, 4.0], [3.0, 4.0]) == 0.0
    assert rel_error([3.0, 5.0], [3.0, 4.0]) == pytest.approx(1 / 5, rel=1e-15)
    assert rel_error([0.5, 0.0], [0.0, 0.0]) == 0.5          # ‖expected‖ = 0: max abs error
    assert max_abs_error([1.0, -2.0], [1.5, 1.0]) == 3.0
    with pytest.raises(ValueError):
        rel_error([1.0, 2.0], [1.0])


def test_policy_rel_error_huge_values():
    """Norms of values near the float64 limit neither overflow nor warn."""
    assert rel_error([1e300, 1e300], [1e300, 1e300]) == 0.0
    assert rel_error([1e300, -1e300], [1e300, 1e300]) == pytest.approx(np.sqrt(2), rel=1e-14)
    assert rel_error([1e-300, 0.0], [2e-300, 0.0]) == pytest.approx(0.5, rel=1e-14)


def test_policy_rel_error_nonfinite():
    """Shared non-finite entries are left out and the rest measured; an unshared one is an
    infinite error, which fails every tolerance."""
    assert rel_error([np.inf, 1.0], [np.inf, 1.0]) == 0.0
    assert rel_error([np.nan, 3.0, 5.0], [np.nan, 3.0, 4.0]) == pytest.approx(1 / 5, rel=1e-15)
    assert rel_error([np.inf, 1.0], [1.0, 1.0]) == np.inf
    assert rel_error([np.nan], [0.0]) == np.inf
    assert rel_error([np.inf], [-np.inf]) == np.inf
    assert max_abs_error([np.inf], [-np.inf]) == np.inf
    assert max_abs_error([np.nan, 2.0], [np.nan, 1.5]) == 0.5


def test_policy_json_safe_nonfinite_become_null():
    """Every --json shares json_safe: NaN and ±inf (an overflowed float32 loss, say) print as null,
    so the output stays strict JSON."""
    import json

    data = {"loss": np.float32("inf"), "history": [1.0, float("nan")], "w": np.array([[-np.inf, 2.0]]), 3: "k"}
    assert json.loads(json.dumps(json_safe(data), allow_nan=False)) == {
        "loss": None, "history": [1.0, None], "w": [[None, 2.0]], "3": "k"}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_policy_zero_reference_is_measured_against_the_network_scale(dtype):
    """A reference that is rounding noise of the network's gradient scale s (a bias right before a
    normalization): the error is ‖got − expected‖ / s, so the other side's noise passes and a real
    gradient there fails."""
    from scratch.policy import ZERO_ROUNDINGS, rounding_floor

    eps, scale = float(np.finfo(dtype).eps), 6.7
    rng = np.random.default_rng(0)
    expected, got = rng.normal(size=3) * eps * scale / 3, rng.normal(size=3) * eps * scale / 3
    assert np.linalg.norm(expected) <= rounding_floor(scale, dtype) == ZERO_ROUNDINGS * eps * scale
    assert rel_error(got, expected) > 0.1      # the plain measure: rounding noise against rounding noise
    assert rel_error(got, expected, scale, dtype) == pytest.approx(np.linalg.norm(got - expected) / scale)
    assert verdict(got, expected, TOLERANCE[dtype], scale, dtype)["result"] == PASS
    slip = np.full(3, 1e-3 * scale)
    assert verdict(slip, expected, TOLERANCE[dtype], scale, dtype)["result"] == FAIL


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("above", [1.0 + 1e-9, 2.0, 1e6])
def test_policy_scale_changes_nothing_above_the_rounding_floor(dtype, above):
    """A reference above the floor, however small, keeps the plain norm-relative measure: no
    tolerance is loosened for a nonzero gradient."""
    from scratch.policy import rounding_floor

    scale = 3.0
    rng = np.random.default_rng(1)
    direction = rng.normal(size=5)
    expected = direction / np.linalg.norm(direction) * rounding_floor(scale, dtype) * above
    got = expected * (1 + 1e-3)
    assert rel_error(got, expected, scale, dtype) == rel_error(got, expected)
    assert verdict(got, expected, TOLERANCE[dtype], scale, dtype) == verdict(got, expected, TOLERANCE[dtype])
