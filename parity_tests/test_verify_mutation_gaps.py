"""Tests that tools/mutate.py asked for on the reference side of nnparity verify (its comparison,
diagnosis and finite differences): each kills mutants the other verify tests let through."""
from __future__ import annotations

import re

import numpy as np
import pytest

from nnparity.verify.diagnosis import CLOSE, GroupData, compare, diagnose
from nnparity.verify.finite_diff import (ABSOLUTE_STEP, EPS, STEP_FACTORS, TRUST, FDResult, elementwise_derivative,
                                         scalar_derivative)
from nnparity.verify.op_check import GroupRun, _reference_not_finite
from nnparity.verify.probes import Probe
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
    assert len({c.name for c in report.checks}) == len(report.checks)      # each check once
    assert any(n.startswith("skipped where rounding or curvature hides the derivative at any step: ")
               for n in fd.notes), fd.notes


# ------------------------------------------------- thresholds, each probed on both sides of its bound


@pytest.mark.parametrize("off, matches", [(0.75, True), (1.5, False)])
def test_transposed_match_is_within_close_of_the_largest_value(off, matches):
    """_close: |got.T − expected| <= CLOSE · max(|expected|, its largest |value|), elementwise."""
    expected = np.random.default_rng(7).uniform(0.5, 1.0, size=(4, 3))
    expected[0, 0] = 10.0
    got = expected.T.copy()
    got[2, 1] += off * CLOSE * 10.0       # a small element, judged against the largest one
    text = diagnose(_one(expected, got), TOL)
    assert text.startswith("transposed: got shape (3, 4), expected (4, 3), and got.T matches") == matches, text


def test_a_transposed_zero_gradient_is_named_transposed():
    text = diagnose(_one(np.zeros((4, 3)), np.zeros((3, 4))), TOL)
    assert text.startswith("transposed: got shape (3, 4), expected (4, 3), and got.T matches"), text


@pytest.mark.parametrize("case", ["zero beside a value above the rms", "value at the rms beside a zero"])
def test_compare_worst_element_is_scaled_by_the_larger_of_its_value_and_the_rms(case):
    """The worst element is the largest |got − expected| / max(|expected|, rms of expected)."""
    s = 1e-3
    if case == "zero beside a value above the rms":
        big = np.sqrt(40.5 / 17.75)                # with 18 ones and a 0: big = 1.5 × the rms
        expected = np.concatenate([[0.0, big], np.ones(18)])
        rms = np.sqrt(np.mean(expected ** 2))
        assert 1 < big / rms < 2
        got = expected.copy()
        got[0] += rms * s                          # score s
        got[1] += 1.2 * rms * s                    # score 1.2 · rms · s / big = 0.8 s
    else:
        expected = np.concatenate([[1.0, 0.0], np.ones(18)])
        rms = np.sqrt(np.mean(expected ** 2))
        assert 0.5 < rms < 1
        got = expected.copy()
        got[0] += 1.5 * rms * s                    # score 1.5 · rms · s (> s)
        got[1] += rms * s                          # score s
    assert compare(_one(expected, got), TOL).worst.index == (0,)


@pytest.mark.parametrize("d, named", [(1.0, True), (2.0, True), (3.0, False)])
def test_constant_factor_is_named_while_the_residual_is_within_close(d, named):
    """got = 2·expected plus a stray d where expected is 0: residual ‖got − 2·expected‖/‖expected‖ = d/2e6."""
    big = 1e6
    expected = np.array([big, big, big, big, 0.0])
    got = 2 * expected
    got[4] = d
    residual = d / np.linalg.norm(expected)
    assert (residual <= CLOSE) == named and (d != 2.0 or residual == CLOSE)
    text = diagnose(_one(expected, got), TOL)
    assert text.startswith("off by a constant factor 2") == named, text


@pytest.mark.parametrize("off, near", [(1.0, True), (1.5, False)])
def test_near_miss_is_named_up_to_close_relative(off, near):
    big = 1e6
    expected = np.full(20, big)
    got = expected.copy()
    got[3] += off                                   # relative error off / 1e6: exactly CLOSE for off = 1
    assert (off / big <= CLOSE) == near
    text = diagnose(_one(expected, got), TOL)
    assert text.startswith("close but not within the tolerance") == near, text


def _elementwise(c, spread, n=12):
    """An elementwise op whose derivative is off by c ± spread (alternating) at every probe."""
    z = np.linspace(-2, 1.5, n)
    upstream = np.random.default_rng(3).uniform(0.5, 2.0, size=n) * np.where(np.arange(n) % 3, 1, -1)
    derivative = 1 / (1 + z * z)
    delta = c + spread * np.where(np.arange(n) % 2, 1.0, -1.0)
    return _one(upstream * derivative, upstream * (derivative + delta), inputs=z, upstream=upstream)


@pytest.mark.parametrize("c, spread, named", [(0.5, 0.5 * CLOSE, True), (0.5, 1.5 * CLOSE, False),
                                              (4.0, 3.0 * CLOSE, True), (4.0, 6.0 * CLOSE, False)])
def test_offset_is_named_while_the_differences_agree_within_close(c, spread, named):
    """The offset c of da/dz is named when every (got − expected)/grad_out is within CLOSE · max(|c|, 1) of it."""
    text = diagnose(_elementwise(c, spread), TOL)
    assert text.startswith(f"off by a constant: da/dz got = expected + {c:g} at every probe") == named, text


def test_offset_two_probes_that_agree_are_enough():
    text = diagnose(_elementwise(0.5, 0.0, n=2), TOL)
    assert text.startswith("off by a constant: da/dz got = expected + 0.5 at every probe"), text


@pytest.mark.parametrize("off, hint", [(0.5, True), (1.5, False)])
def test_region_rounding_hint_is_given_up_to_close_relative(off, hint):
    """Wrong only in saturation by at most CLOSE relative: the two formulas round differently."""
    z = np.linspace(-2, 2, 12)
    random = GroupData("random", np.cos(z), np.cos(z), inputs=z)
    sat_z = np.array([20.0, -20.0, 100.0, -100.0])
    expected = np.array([1.0, 2.0, 1.5, 0.75])
    got = expected * (1 + off * CLOSE * np.array([1.0, -1.0, 0.5, 0.25]))
    text = diagnose([random, GroupData("saturation", got, expected, inputs=sat_z)], TOL)
    assert text.startswith("wrong only in saturation"), text
    assert ("round differently there" in text) == hint, text


# ------------------------------------------------------------------ finite differences' own bounds


@pytest.mark.parametrize("share, usable", [(0.6, True), (1.2, False)])
def test_fd_point_is_usable_while_its_rounding_estimate_is_within_the_trust_bound(share, usable):
    """f = C + z: derivative 1, exact but for rounding, whose estimate 2·EPS·|f|/h (h the largest step,
    STEP_FACTORS[0], where |z| <= 1) is made ``share`` of the trust bound TRUST · FD_TOL · 1."""
    big = share * TRUST * FD_TOL * STEP_FACTORS[0] / (2 * EPS)
    z = np.linspace(-0.5, 0.5, 12).reshape(3, 4)
    fd = elementwise_derivative(lambda t: big + t, z).resolve(FD_TOL)
    assert fd.usable.all() if usable else not fd.usable.any()
    if usable:
        assert np.allclose(fd.value, 1.0, rtol=FD_TOL)


@pytest.mark.parametrize("domain, z", [("real", [[0.5, -3.0, 40.0]]), ("probability", [[0.2, 0.9, 0.5]])])
def test_fd_evaluates_x_plus_minus_h_and_h_over_2_at_the_documented_steps(domain, z):
    """Steps: STEP_FACTORS × max(1, |x|) and ABSOLUTE_STEP; in (0, 1) STEP_FACTORS × the distance to
    the nearer edge. Each step h is taken as x ± h, then x ± h/2."""
    z = np.asarray(z)
    scale = np.minimum(z, 1 - z) if domain == "probability" else np.maximum(1.0, np.abs(z))
    steps = scale[..., None] * np.array(STEP_FACTORS)
    if domain == "real":
        steps = np.concatenate([steps, np.full(z.shape + (1,), ABSOLUTE_STEP)], axis=-1)
    seen = []

    def f(t):
        seen.append(np.array(t).reshape(steps.shape))
        return t * t

    elementwise_derivative(f, z, domain)
    at, plus, minus, plus2, minus2 = seen
    assert np.array_equal(at, np.broadcast_to(z[..., None], steps.shape))
    for points, h in ((plus, steps), (minus, -steps), (plus2, steps / 2), (minus2, -steps / 2)):
        assert np.allclose(points - z[..., None], h, rtol=1e-6, atol=0)


def test_fd_scalar_steps_are_the_documented_ones_and_x_is_restored():
    x = np.array([0.5, -3.0])
    before = x.copy()
    seen = []

    def fun():
        seen.append(x.copy())
        return float(np.sum(x ** 3)), float(np.sum(np.abs(x ** 3)))

    fd = scalar_derivative(fun, x)
    assert np.array_equal(x, before)
    assert np.allclose(fd.value, 3 * before ** 2, rtol=FD_TOL)
    k = len(STEP_FACTORS) + 1
    assert len(seen) == 1 + 4 * k * x.size and np.array_equal(seen[0], before)
    for i in range(x.size):
        steps = list(np.maximum(1.0, abs(before[i])) * np.array(STEP_FACTORS)) + [ABSOLUTE_STEP]
        for j, h in enumerate(steps):
            calls = seen[1 + 4 * (k * i + j): 1 + 4 * (k * i + j + 1)]
            for point, step in zip(calls, (h, -h, h / 2, -h / 2)):
                assert np.allclose(point[i] - before[i], step, rtol=1e-6, atol=0)
                assert np.array_equal(np.delete(point, i), np.delete(before, i))


@pytest.mark.parametrize("share, usable", [(0.75, True), (1.5, False)])
def test_fd_resolve_judges_a_zero_value_against_the_rms_of_the_usable_values(share, usable):
    """usable: estimate <= TRUST · tol · max(|value|, rms of the usable values)."""
    value = np.full(10, 2.0)
    value[0] = 0.0
    rms = float(np.sqrt(np.mean(value ** 2)))
    estimate = np.zeros(10)
    estimate[0] = share * TRUST * FD_TOL * rms
    fd = FDResult(value=value, estimate=estimate, kink=np.zeros(10, bool)).resolve(FD_TOL)
    assert fd.usable[1:].all() and fd.usable[0] == usable


# ------------------------------------------- a NaN torch reference, and finite differences that agree


def _nan_reference_run(off):
    """A group whose torch reference is NaN at 3 points: at 2, finite differences resolve the derivative
    (estimate half the trust bound) and the value is off by ``off`` · FD_TOL relative; at the third they do not."""
    value = np.linspace(1.0, 2.0, 12)
    estimate = 0.5 * TRUST * FD_TOL * value
    estimate[11] = np.inf
    fd = FDResult(value=value.copy(), estimate=estimate, kink=np.zeros(12, bool))
    got = value * (1 + off * FD_TOL)
    run = GroupRun(Probe("saturation", value.copy()), got={"z": got}, fd={"z": fd})
    expected = value.copy()
    expected[[0, 5, 11]] = np.nan
    return run, expected


@pytest.mark.parametrize("off, agree", [(0.5, True), (2.0, False)])
def test_nan_reference_is_set_aside_only_where_finite_differences_agree_within_the_tolerance(off, agree):
    run, expected = _nan_reference_run(off)
    agreeing, alone = _reference_not_finite(run, "z", expected, FD_TOL)
    assert np.flatnonzero(agreeing).tolist() == ([0, 5] if agree else [])
    assert np.flatnonzero(alone).tolist() == [11]
    nothing = _reference_not_finite(run, "z", np.ones(12), FD_TOL)
    assert not any(m.any() for m in nothing)


# ----------------------------------------------------------- the comparison's verdicts and messages


def test_an_element_exactly_at_the_tolerance_agrees():
    """|got − expected| / max(|expected|, rms) == tol is within it, as an error equal to the tolerance passes."""
    big = 1 / TOL                      # 1e7: a difference of 1 is exactly TOL relative
    expected = np.full(12, big)
    got = expected.copy()
    got[5] += 1.0
    assert abs(got[5] - expected[5]) / expected[5] == TOL
    assert diagnose(_one(expected, got), TOL) is None


@pytest.mark.parametrize("kind, factor, text", [
    ("loss", 30.0, "missing the ÷(N·C) of a mean over all N·C = 30 elements (got = 30 × expected)"),
    ("loss", 1 / 30, "divided by the element count N·C = 30 where the loss does not divide (got = expected / 30)"),
    ("loss", 6.0, "missing the ÷N of the mean over the batch (got = 6 × expected, N = 6)"),
    ("loss", 1 / 6, "divided by the batch size N = 6 where the loss does not divide (got = expected / 6)"),
    ("loss", 5.0, "divided by N = 6 where the loss divides by N·C = 30 (got = 5 × expected)"),
    ("loss", 0.2, "divided by N·C = 30 where the loss divides by N = 6 (got = expected / 5)"),
    ("layer", 1 / 6, "averaged over the batch where the sum is needed (got = expected / 6, N = 6)"),
    ("layer", 6.0, "got = 6 × expected (N = 6): a batch sum counted once too often"),
    ("network", 6.0, "missing the ÷N of the mean over the batch (got = 6 × expected, N = 6)"),
    ("network", 1 / 6, "divided by the batch size N = 6 once too often, e.g. a sum over the batch averaged after "
                       "the loss's mean already divided by N (got = expected / 6)"),
])
def test_batch_factor_diagnosis_is_the_whole_line(kind, factor, text):
    expected = np.random.default_rng(2).normal(size=(6, 5))
    cmp = compare(_one(expected, factor * expected), TOL, kind=kind, batch=(6, 5))
    assert cmp.ok is False and cmp.diagnosis == text


@pytest.mark.parametrize("off, named", [(0.5, True), (2.0, False)])
def test_batch_factor_is_recognised_within_close_relative(off, named):
    """N·C = 30: got = 30 · (1 + off · CLOSE) × expected is named while |r − 30| <= CLOSE · 30."""
    expected = np.random.default_rng(2).normal(size=(6, 5))
    text = diagnose(_one(expected, 30 * (1 + off * CLOSE) * expected), TOL, kind="loss", batch=(6, 5))
    assert text.startswith("missing the ÷(N·C)") == named, text


def test_compare_worst_element_is_a_compared_one():
    """Elements left out (usable False) are never the worst, however far apart they are."""
    expected = np.linspace(1.0, 2.0, 20)
    got = expected * (1 + 1e-3)
    got[:5] = 1e6                       # not compared
    usable = np.ones(20, bool)
    usable[:5] = False
    cmp = compare(_one(expected, got, usable=usable), TOL)
    assert cmp.worst.index[0] >= 5


def test_compare_too_few_elements_at_exactly_the_tolerance_is_not_checked():
    usable = np.zeros(30, bool)
    usable[:3] = True
    cmp = compare(_one(np.zeros(30), np.where(usable, TOL, 0.0), usable=usable), TOL)
    assert cmp.ok is False and cmp.error == TOL
    assert cmp.diagnosis.startswith("not checked: finite numbers compared on 3 of 30 elements"), cmp.diagnosis


def test_compare_needs_half_of_an_odd_number_of_elements_rounded_up():
    """3 elements: a verdict needs 2 of them compared; 1 is not checked, never a pass."""
    usable = np.array([True, False, False])
    cmp = compare(_one(np.ones(3), np.ones(3), usable=usable), TOL)
    assert cmp.ok is False
    assert cmp.diagnosis == ("not checked: finite numbers compared on 1 of 3 elements (at least 2 needed); "
                             "NaN, inf or skipped probes prove nothing")


@pytest.mark.parametrize("case", ["transposed", "transposed, no match", "per sample, summed", "per sample, mean",
                                  "wrong shape, right numbers", "other"])
def test_shape_diagnosis_is_the_whole_line(case):
    rng = np.random.default_rng(9)
    expected = rng.normal(size=(4, 3))
    rows = rng.normal(size=(5, 4, 3))
    got, text = {
        "transposed": (expected.T, "transposed: got shape (3, 4), expected (4, 3), and got.T matches "
                                   "(e.g. g.T @ x where x.T @ g is needed)"),
        "transposed, no match": (expected.T + 1, "transposed shape: got (3, 4), expected (4, 3) (and got.T does "
                                                 "not match either)"),
        "per sample, summed": (rows - rows.sum(axis=0) / 5 + expected / 5,
                               "missing the sum over the batch: got one row per sample, shape (5, 4, 3); summing "
                               "over axis 0 gives the expected (4, 3)"),
        "per sample, mean": (rows - rows.mean(axis=0) + expected,
                             "got one row per sample, shape (5, 4, 3); their mean (not sum) matches"),
        "wrong shape, right numbers": (expected.reshape(2, 6),
                                       "the right numbers in the wrong shape: got (2, 6) for an input of shape (4, 3) "
                                       "— the reshape back to the input's shape is missing (e.g. dx.reshape(x.shape))"),
        "other": (np.ones((2, 5)), "shape mismatch: got (2, 5), expected (4, 3)"),
    }[case]
    cmp = compare(_one(expected, got), TOL)
    assert cmp.ok is False and cmp.diagnosis == text


def test_kink_region_and_near_miss_diagnoses_are_the_whole_line():
    expected, got = np.full(12, 0.02), np.full(12, 0.02)
    kink = np.zeros(12, bool)
    kink[:2] = True
    got[:2] = 2.0
    text = diagnose(_one(expected, got, inputs=np.where(kink, 0.0, 1.5), kink=kink, upstream=np.full(12, 2.0)), TOL)
    assert text == ("wrong only at a kink (at z = 0: da/dz got 1, expected 0.01): not a subgradient there (any value "
                    "between the one-sided slopes is accepted); everywhere else it agrees")
    z = np.linspace(-2, 2, 12)
    sat = GroupData("saturation", np.array([1.0, 2.0]), np.array([1.0, 1.0]), inputs=np.array([20.0, -20.0]))
    text = diagnose([GroupData("random", np.cos(z), np.cos(z), inputs=z), sat], TOL)
    assert text == "wrong only in saturation (at z = -20: got 2, expected 1); the other probes agree"
    big = 1e6
    expected = np.full(20, big)
    got = expected.copy()
    got[3] += 1.0
    text = diagnose(_one(expected, got, inputs=np.arange(20.0)), TOL)
    assert text == ("close but not within the tolerance: at most 1.0e-06 relative (at z = 3: got 1000001, expected "
                    "1000000) — an equivalent formula that rounds differently (e.g. σ(1 − σ) loses digits where σ ≈ 1)")


@pytest.mark.parametrize("got_values, text", [
    ([1.0, 0.5, 0.5], "nonzero where the true derivative is 0 (at 1 point, e.g. at z = -1: got 1, expected 0): "
                      "a mask is missing or inverted"),
    ([1.0, 1.0, 0.0], "nonzero where the true derivative is 0 (at 2 points, e.g. at z = -1: got 1, expected 0), "
                      "and 0 where it is not (at 1 point): the mask is inverted"),
])
def test_mask_diagnosis_is_the_whole_line(got_values, text):
    """z = −1, −0.5, 0.5 (true derivative 0, 0, 0.5): counts in the singular and the plural."""
    z = np.array([-1.0, -0.5, 0.5])
    expected = np.array([0.0, 0.0, 0.5])
    got = np.array(got_values)
    if got_values[1] == 0.5:    # only the first stray: the second agrees
        got[1] = 0.0
    assert diagnose(_one(expected, got, inputs=z), TOL) == text


def _ratios(scale=1.0):
    """Four large expected values with ratios 1.5 … 3.5, one at 0.75e-3 of the rms (ratio 100: left out)
    and one at 1.5e-3 of it (ratio −50: read)."""
    expected = np.array([1000.0, 2000.0, 1500.0, 1200.0, 0.0, 0.0])
    rms = np.sqrt(np.mean(expected[:4] ** 2) * 4 / 6)
    expected[4], expected[5] = 0.75e-3 * rms, 1.5e-3 * rms
    ratio = np.array([1.5, 2.5, 3.5, 1.25, 100.0, -50.0])
    inputs = np.array([0.5, 1.0, 2.0, 3.0, 0.25, 4.0])
    return _one(scale * expected, scale * expected * ratio, inputs=inputs)


@pytest.mark.parametrize("scale", [1.0, 1e-6])
def test_ratio_description_reads_values_above_a_thousandth_of_the_rms(scale):
    text = diagnose(_ratios(scale), TOL)
    assert text.split("; e.g.")[0] == ("the formula differs, not by a constant factor: got/expected runs from -50 at "
                                       "z = 4 to 3.5 at z = 2"), text


@pytest.mark.parametrize("readable, text", [
    (2, "the formula differs, not by a constant factor: got/expected runs from 1.5 at z = 0.5 to 2.5 at z = 1"),
    (1, "no recognisable shape (3 elements disagree)"),
])
def test_ratio_description_needs_two_readable_ratios(readable, text):
    expected = np.array([1000.0, 2000.0, 0.0])
    if readable == 1:
        expected[1] = 0.0
    got = expected * np.array([1.5, 2.5, 1.0]) + np.array([0.0, 1.0, 1.0]) * (readable == 1)
    got[2] = 3.0
    result = diagnose(_one(expected, got, inputs=np.array([0.5, 1.0, 2.0]), targets=np.zeros(3)), TOL)
    assert result == text, result


def test_an_alternative_that_fits_only_some_rows_is_not_named():
    """grad_out ignored in rows 0 and 2 only: no single slip explains the numbers."""
    rng = np.random.default_rng(5)
    z = rng.normal(size=(4, 3))
    upstream = rng.uniform(0.5, 2.0, size=(4, 3))
    derivative = 1 / (1 + z * z)
    got = upstream * derivative * 1.3
    got[[0, 2]] = derivative[[0, 2]]
    text = diagnose(_one(upstream * derivative, got, inputs=z, upstream=upstream), TOL)
    assert not text.startswith("backward ignores grad_out"), text


def test_fd_scalar_derivative_in_float32_steps_float32_points():
    x = np.array([0.5, -3.0])
    fd = scalar_derivative(lambda: (float(np.sum(x.astype(np.float32).astype(np.float64) ** 3)),
                                    float(np.sum(np.abs(x) ** 3))), x, precision="float32")
    assert np.array_equal(x, [0.5, -3.0])
    assert np.allclose(fd.value, [0.75, 27.0], rtol=1e-4)


def test_fd_sampled_elements_only():
    x = np.array([[0.5, -3.0, 1.5], [2.0, -0.25, 1.0]])
    before = x.copy()
    only = np.array([[True, False, True], [False, True, False]])
    fd = scalar_derivative(lambda: (float(np.sum(x ** 3)), float(np.sum(np.abs(x) ** 3))), x, only=only)
    assert np.array_equal(x, before) and fd.kink.dtype == bool and not fd.kink.any()
    assert np.allclose(fd.value[only], 3 * before[only] ** 2, rtol=FD_TOL)
    assert np.isnan(fd.value[~only]).all() and np.array_equal(fd.sampled, only)
    assert not fd.resolve(FD_TOL).usable[~only].any()


def test_fd_finds_a_kink_away_from_zero_on_a_function_away_from_zero():
    """|z − 3| + 10: the one-sided slopes at z = 3 are ∓1 whatever f(3) is (the jump of the slopes, not of f)."""
    z = np.array([[3.0, 3 + 1e-9, 0.5, 5.0]])
    fd = elementwise_derivative(lambda t: np.abs(t - 3.0) + 10.0, z).resolve(FD_TOL)
    assert fd.kink.tolist() == [[True, True, False, False]]
    assert np.allclose(fd.value[0, 2:], [-1.0, 1.0], rtol=FD_TOL) and fd.usable[0, 2:].all()
    bend = elementwise_derivative(lambda t: t + 0.2 * np.maximum(t - 3.0, 0.0), z).resolve(FD_TOL)
    assert bend.kink.tolist() == [[True, True, False, False]]     # slopes 1 and 1.2: a bend, not a corner
    hinge = elementwise_derivative(lambda t: 0.1 * np.maximum(t - 3.0, 0.0) + 10.0, z).resolve(FD_TOL)
    assert hinge.kink.tolist() == [[True, True, False, False]]    # slopes 0 and 0.1


def test_fd_of_a_zero_dimensional_input():
    fd = elementwise_derivative(np.sin, np.array(0.5)).resolve(FD_TOL)
    assert fd.value.shape == () and np.isclose(fd.value, np.cos(0.5), rtol=FD_TOL, atol=0)


@pytest.mark.parametrize("truncation, usable", [(0.33, True), (1.2, False)])
def test_fd_point_is_unresolved_when_its_truncation_estimate_passes_the_trust_bound(truncation, usable):
    """f = B + z³: D(h) = 3z² + h², so the Richardson estimate |D(h) − D(h/2)|/3 = h²/4, exact. At the
    step h = STEP_FACTORS[1] it is ``truncation`` × the trust bound TRUST · FD_TOL · 3z², the rounding
    estimate there 0.15 × (B chosen so); the steps above truncate more, the steps below round more."""
    h = STEP_FACTORS[1]
    z = np.sqrt(h * h / 4 / (truncation * TRUST * FD_TOL * 3))
    bound = TRUST * FD_TOL * 3 * z * z
    offset = 0.15 * bound * h / (2 * EPS)
    assert 2 * EPS * offset / STEP_FACTORS[2] > bound        # the next smaller step rounds past the bound
    fd = elementwise_derivative(lambda t: offset + t ** 3, np.full((2, 2), z)).resolve(FD_TOL)
    assert fd.usable.all() if usable else not fd.usable.any()


def test_fd_check_of_relu_skips_every_kink_and_tiny_probe_and_says_how_many():
    """relu's kink at 0 lies within the smallest step (ABSOLUTE_STEP) of every kink (z = 0) and tiny
    (|z| ~ 1e-8) probe: all of them skipped, counted by group; the random and saturation probes compared."""
    from nnparity.verify.op_check import verify_fd
    report = verify_fd("scratch.activations:ReLU")
    header = report.format().splitlines()[1]          # probes: random 30, kink 10 (z = 0), ...
    sizes = {word: int(n) for word, n in re.findall(r"(random|kink|saturation|tiny) (\d+)", header)}
    assert ABSOLUTE_STEP > 1e-8
    fd = next(c for c in report.checks if c.reference == "finite differences")
    assert fd.name == "dL/dz vs finite differences"
    assert fd.notes[0].startswith(f"kept away from kinks (one-sided slopes differ): skipped {sizes['kink']} in "
                                  f"kink, {sizes['tiny']} in tiny; "), fd.notes
    assert fd.compared == sizes["random"] + sizes["saturation"]


def test_weighted_finite_differences_scale_the_error_estimate_as_the_value():
    """Σ w·f differenced: value and error estimate both times w (|w| for the estimate), kinks unchanged."""
    from nnparity.verify.op_check import _scaled
    w = np.array([-3.0, 0.5, 2.0])
    fd = FDResult(value=np.array([1.0, 2.0, 4.0]), estimate=np.array([1e-9, 2e-9, 4e-9]),
                  kink=np.array([False, True, False]))
    scaled = _scaled(fd, w)
    assert np.array_equal(scaled.value, fd.value * w)
    assert np.array_equal(scaled.estimate, fd.estimate * np.abs(w))
    assert np.array_equal(scaled.kink, fd.kink)
