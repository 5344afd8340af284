"""The error measures of the tolerance policy (scratch.policy) and its JSON rule for non-finite numbers."""
from __future__ import annotations

import numpy as np
import pytest

from scratch.policy import json_safe, max_abs_error, rel_error


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
