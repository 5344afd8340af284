"""Tests that tools/mutate.py asked for on the reference side of nnparity verify (its comparison,
diagnosis and finite differences): each kills mutants the other verify tests let through."""
from __future__ import annotations

import numpy as np
import pytest

from nnparity.verify.diagnosis import GroupData, compare, diagnose
from nnparity.verify.finite_diff import elementwise_derivative
from scratch.policy import FD_TOL


def test_fd_finds_the_kink_of_abs_where_the_one_sided_slopes_are_opposite():
    """|z| at 0: D₊ = 1, D₋ = −1, their jump 2 (relu's kink has D₋ = 0: a jump that a sum also shows)."""
    fd = elementwise_derivative(np.abs, np.array([[0.0, 1e-9, -1e-9, 0.7, -0.4]])).resolve(FD_TOL)
    assert fd.kink.tolist() == [[True, True, True, False, False]]
    assert fd.value[0, 3:].tolist() == [1.0, -1.0]


def test_fd_zero_derivative_everywhere_is_resolved_as_zero():
    """A flat function: every estimate is 0 and the rms of the usable values 0, so the scale is 1 (an
    absolute error), not 0 (which would leave every point unusable)."""
    fd = elementwise_derivative(lambda t: np.ones_like(t), np.linspace(-3, 3, 12).reshape(3, 4)).resolve(FD_TOL)
    assert fd.usable.all() and not fd.value.any()


TOL = 1e-7


def _one(expected, got, **extra) -> list[GroupData]:
    return [GroupData("random", np.asarray(got, float), np.asarray(expected, float), **extra)]


def test_compare_verdict_is_a_bool_and_an_error_equal_to_the_tolerance_passes():
    zeros = np.zeros(12)
    at_tol = compare(_one(zeros, np.full(12, TOL)), TOL)     # ‖expected‖ = 0: the max abs error, exactly tol
    assert at_tol.ok is True and at_tol.error == TOL
    beyond = compare(_one(zeros, np.full(12, 2 * TOL)), TOL)
    assert beyond.ok is False


def test_compare_with_too_few_finite_numbers_is_not_checked():
    expected = np.arange(1.0, 31.0)
    usable = np.zeros(30, bool)
    usable[:3] = True
    cmp = compare(_one(expected, expected, usable=usable), TOL)
    assert cmp.ok is False and cmp.compared == 3
    assert cmp.diagnosis == ("not checked: finite numbers compared on 3 of 30 elements (at least 10 needed); "
                             "NaN, inf or skipped probes prove nothing")


@pytest.mark.parametrize("factor, text", [(5.0, "missing the ÷N of the mean over the batch (got = 5 × expected, N = 5)"),
                                          (0.2, "divided by the batch size N = 5 once too often")])
def test_network_batch_factors_are_named(factor, text):
    expected = np.random.default_rng(1).normal(size=(4, 3))
    cmp = compare(_one(expected, factor * expected), TOL, kind="network", batch=(5, 3))
    assert cmp.diagnosis.startswith(text), cmp.diagnosis


def test_disagreement_threshold_is_the_tolerance_times_the_larger_of_the_value_and_the_rms():
    expected = np.ones(20)
    for off, bad in ((0.75, False), (1.5, True)):
        got = expected.copy()
        got[3] += off * TOL          # relative to |expected| = rms = 1
        assert (diagnose(_one(expected, got), TOL) is not None) == bad
    expected[3] = 0.0                # now relative to the rms (≈ 0.97): 0.75·tol stays within
    got = expected.copy()
    got[3] = 0.75 * TOL
    assert diagnose(_one(expected, got), TOL) is None


def test_kink_diagnosis_shows_the_derivative_and_the_target():
    expected, got = np.full(12, 0.02), np.full(12, 0.02)
    kink = np.zeros(12, bool)
    kink[:2] = True
    got[:2] = 2.0
    text = diagnose(_one(expected, got, inputs=np.where(kink, 0.0, 1.5), kink=kink, upstream=np.full(12, 2.0)), TOL)
    assert text.startswith("wrong only at a kink (at z = 0: da/dz got 1, expected 0.01)"), text
    text = diagnose(_one(expected, got, inputs=np.where(kink, 0.5, 1.5), kink=kink, targets=np.full(12, 0.5)),
                    TOL, kind="loss", wrt="pred")
    assert text.startswith("wrong only at a kink (at pred = 0.5, target 0.5: got 2, expected 0.02)"), text


def test_a_layer_backward_that_ignores_dout_is_named():
    rng = np.random.default_rng(4)
    dout, local = rng.normal(size=(6, 4)), rng.uniform(0.5, 1.5, size=(6, 4))
    text = diagnose(_one(dout * local, local, dout=dout), TOL, kind="layer")
    assert text == "backward ignores dout: it returns the local derivative, not dout · derivative", text


def test_ratio_description_reads_the_ratio_where_the_expected_value_is_not_tiny():
    inputs = np.array([0.5, 1.0, 2.0, 3.0, 0.25, 4.0])
    expected = np.array([1000.0, 2000.0, 1500.0, 1200.0, 0.5, 0.0004])
    ratio = np.array([1.5, 2.5, 3.5, 1.25, 100.0, -50.0])   # the last two sit below 1e-3 of the rms
    text = diagnose(_one(expected, expected * ratio, inputs=inputs), TOL)
    assert text == ("the formula differs, not by a constant factor: got/expected runs from 1.25 at z = 3 to 3.5 "
                    "at z = 2; e.g. at z = 2: got 5250, expected 1500"), text   # e.g.: where they differ most


def test_a_transposed_gradient_of_large_values_is_named():
    """_close is relative to the gradient's scale: got.T matching at 1e6 is still "transposed"."""
    expected = np.random.default_rng(6).normal(size=(4, 4)) * 1e6
    assert diagnose(_one(expected, expected.T), TOL).startswith("transposed: got.T matches")


def test_fd_check_names_the_points_rounding_hides():
    from nnparity.verify.op_check import verify_fd
    report = verify_fd("scratch.activations:Sigmoid")      # sigmoid at 20: f·h below the rounding of f ≈ 1
    fd = next(c for c in report.checks if c.reference == "finite differences")
    assert any(n.startswith("skipped where rounding or curvature hides the derivative at any step: ")
               for n in fd.notes), fd.notes
