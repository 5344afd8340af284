"""The torch-free core of `nnparity verify`: probes, finite differences that know their limits,
and the one-line diagnosis of a mismatch, each tested on synthetic numbers with a known answer."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from nnparity.verify import probes
from nnparity.verify.diagnosis import GroupData, compare, diagnose
from nnparity.verify.finite_diff import elementwise_derivative, scalar_derivative

REPO = Path(__file__).resolve().parents[1]
FD_TOL = 1e-7


def sigmoid(z):
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1 / (1 + e), e / (1 + e))


# ------------------------------------------------------------------------------------ probes


def test_elementwise_probes_hold_kinks_saturation_and_tiny_values():
    groups = {p.group: p.x for p in probes.elementwise_probes(0)}
    assert set(groups) == {"random", "kink", "saturation", "tiny"}
    assert np.all(groups["kink"] == 0)
    assert set(np.abs(groups["saturation"]).ravel()) == {20.0, 100.0, 700.0}
    assert set(np.sign(groups["saturation"]).ravel()) == {-1.0, 1.0}
    assert np.all(np.abs(groups["tiny"]) <= 3.0001e-8) and np.all(groups["tiny"] != 0)


def test_probes_are_reproducible_and_move_with_the_seed():
    a, b, c = probes.elementwise_probes(3), probes.elementwise_probes(3), probes.elementwise_probes(4)
    assert np.array_equal(a[0].x, b[0].x)
    assert not np.array_equal(a[0].x, c[0].x)
    w1, w2 = probes.upstream_gradient((6, 5), 3, "random"), probes.upstream_gradient((6, 5), 3, "random")
    assert np.array_equal(w1, w2) and np.all(np.abs(w1) >= 0.5)


@pytest.mark.parametrize("domain", ["real", "probability"])
def test_loss_probes_have_targets_0_and_1_and_edges(domain):
    groups = {p.group: p for p in probes.loss_probes(0, domain)}
    for p in groups.values():
        assert p.x.shape == p.target.shape == (probes.ROWS, probes.COLS)
        assert np.any(p.target == 0) and np.any(p.target == 1)
    assert np.all(groups["kink"].x[groups["kink"].kink_mask] == groups["kink"].target[groups["kink"].kink_mask])
    if domain == "probability":
        for p in groups.values():
            assert np.all((p.x > 0) & (p.x < 1))
        assert set(groups["saturation"].x.ravel()) == {probes.NEAR_EDGE, 1 - probes.NEAR_EDGE}
    else:
        assert set(np.abs(groups["saturation"].x).ravel()) <= {20.0, 100.0, 700.0}


def test_loss_probes_reject_an_unknown_domain():
    with pytest.raises(ValueError, match="expected real or probability"):
        probes.loss_probes(0, "positive")


# -------------------------------------------------------------------------- finite differences


def test_fd_matches_a_smooth_derivative_to_the_policy():
    z = np.random.default_rng(0).normal(0, 2, size=(6, 5))
    fd = elementwise_derivative(np.tanh, z).resolve(FD_TOL)
    assert fd.usable.all()
    exact = 1 - np.tanh(z) ** 2
    assert np.linalg.norm(fd.value - exact) / np.linalg.norm(exact) <= FD_TOL


def test_fd_finds_relu_kinks_at_zero_and_within_a_step_of_it():
    z = np.array([[0.0, 1e-8, -1e-8, 0.5, -0.5]])
    fd = elementwise_derivative(lambda t: np.maximum(t, 0), z).resolve(FD_TOL)
    assert fd.kink.tolist() == [[True, True, True, False, False]]
    assert np.allclose(fd.value[0, 3:], [1.0, 0.0])


def test_fd_sampled_elements_match_the_full_differences_and_leave_the_rest_unusable():
    w = np.random.default_rng(2).normal(size=(4, 3))
    x0 = w.copy()

    def fun():
        value = float(np.sum(np.sin(w) * np.arange(12.0).reshape(4, 3)))
        return value, abs(value)
    only = np.zeros(w.shape, bool)
    only[0, 1] = only[3, 2] = only[2, 0] = True
    full = scalar_derivative(fun, w).resolve(FD_TOL)
    part = scalar_derivative(fun, w, only=only).resolve(FD_TOL)
    assert np.array_equal(w, x0)     # restored
    assert np.array_equal(part.sampled, only) and full.sampled is None
    assert np.array_equal(part.usable, only) and full.usable.all()
    assert np.array_equal(part.value[only], full.value[only])
    assert np.all(np.isnan(part.value[~only]))
    exact = np.cos(x0) * np.arange(12.0).reshape(4, 3)
    assert np.allclose(part.value[only], exact[only], rtol=1e-8)


def test_fd_skips_a_c1_kink_it_cannot_resolve():
    """ELU (alpha 1) is C¹ at 0 but its second derivative jumps: the central difference is off by
    ~h/4 there, more than the tolerance, and is left out rather than compared."""
    elu = lambda t: np.where(t > 0, t, np.expm1(np.minimum(t, 0)))  # noqa: E731
    fd = elementwise_derivative(elu, np.array([[0.0, 1.3]])).resolve(FD_TOL)
    assert fd.usable.tolist() == [[False, True]]


def test_fd_leaves_out_what_rounding_hides_and_keeps_what_it_can_resolve():
    # sigmoid at +20: f'·h is below the rounding of f ≈ 1 (at -20, f itself is tiny: resolvable);
    # softplus at 700 stays resolvable
    assert not elementwise_derivative(sigmoid, np.array([[20.0]])).resolve(FD_TOL).usable.any()
    assert elementwise_derivative(sigmoid, np.array([[-20.0]])).resolve(FD_TOL).usable.all()
    softplus = lambda t: np.maximum(t, 0) + np.log1p(np.exp(-np.abs(t)))  # noqa: E731
    sp = elementwise_derivative(softplus, np.array([[700.0, -700.0, 100.0, 0.3]])).resolve(FD_TOL)
    assert sp.usable[0, 0] and sp.usable[0, 2]
    assert abs(sp.value[0, 0] - 1.0) <= FD_TOL


def test_scalar_fd_restores_the_perturbed_array():
    x = np.random.default_rng(1).normal(size=(3, 4))
    before = x.copy()
    fd = scalar_derivative(lambda: (float(np.sum(np.sin(x))), float(np.sum(np.abs(np.sin(x))))), x)
    assert np.array_equal(x, before)
    assert np.linalg.norm(fd.value - np.cos(x)) / np.linalg.norm(np.cos(x)) <= FD_TOL


def test_probability_steps_stay_inside_the_domain():
    p = np.array([[1e-6, 1 - 1e-6, 0.5]])
    fd = scalar_derivative(lambda: (float(-np.sum(np.log(p))), float(np.sum(-np.log(p)))), p, "probability")
    assert np.all(np.isfinite(fd.value))
    assert np.allclose(fd.value, -1 / p, rtol=1e-6)


# --------------------------------------------------------------------------------- diagnosis


def _groups(expected: dict, got: dict | None = None, **extra) -> list[GroupData]:
    got = expected if got is None else got
    return [GroupData(name, np.asarray(got[name], float), np.asarray(e, float),
                      **{k: v[name] for k, v in extra.items()}) for name, e in expected.items()]


def _rand(seed, shape=(6, 5)):
    return np.random.default_rng(seed).normal(size=shape)


def test_equal_gradients_pass_without_diagnosis():
    e = _rand(0)
    cmp = compare(_groups({"random": e}), 1e-12)
    assert cmp.ok and cmp.diagnosis is None and cmp.error == 0.0


FACTORS = {-1.0: "wrong sign", 2.0: "constant factor 2", 0.5: "constant factor ½", -2.0: "constant factor −2",
           -0.5: "constant factor −½", 4.0: "constant factor 4", 0.25: "constant factor ¼"}


@settings(max_examples=40, deadline=None)
@given(factor=st.sampled_from(sorted(FACTORS)), seed=st.integers(0, 2**16))
def test_a_constant_factor_is_named(factor, seed):
    e = {"random": _rand(seed), "saturation": _rand(seed + 1) * 1e-3}
    got = {k: factor * v for k, v in e.items()}
    text = diagnose(_groups(e, got), 1e-12)
    assert FACTORS[factor] in text


def test_an_arbitrary_constant_factor_is_given_as_a_number():
    e = _rand(2)
    assert "constant factor 1.37" in diagnose(_groups({"random": e}, {"random": 1.37 * e}), 1e-12)


@pytest.mark.parametrize("factor, text", [
    (6.0, "missing the ÷N of the mean over the batch"),
    (1 / 6, "divided by the batch size N = 6 where the loss does not divide"),
    (30.0, "missing the ÷(N·C) of a mean over all N·C = 30 elements"),
    (1 / 30, "divided by the element count N·C = 30"),
    (5.0, "divided by N = 6 where the loss divides by N·C = 30"),
    (0.2, "divided by N·C = 30 where the loss divides by N = 6"),
])
def test_batch_factors_of_a_loss_are_named(factor, text):
    e = _rand(3)
    assert text in diagnose(_groups({"random": e}, {"random": factor * e}), 1e-12, kind="loss", batch=(6, 5))


def test_a_layer_gradient_averaged_instead_of_summed():
    e = _rand(4, (3,))
    text = diagnose(_groups({"random": e}, {"random": e / 6}), 1e-12, kind="layer", batch=(6, 1))
    assert "averaged over the batch where the sum is needed" in text


def test_wrong_only_at_a_kink():
    e = {"random": _rand(5), "kink": np.zeros((2, 5))}
    got = {"random": e["random"], "kink": np.ones((2, 5))}
    kink = {"random": np.zeros((6, 5), bool), "kink": np.ones((2, 5), bool)}
    text = diagnose(_groups(e, got, kink=kink, inputs={"random": _rand(6), "kink": np.zeros((2, 5))}), 1e-12)
    assert text.startswith("wrong only at a kink (at z = 0: got 1, expected 0)")


def test_wrong_only_in_saturation_names_the_overflow():
    sat = np.array([[20.0, -20.0, 700.0]])
    e = {"random": _rand(7, (2, 3)), "saturation": np.array([[1.0, 0.0, 1.0]])}
    got = {"random": e["random"], "saturation": np.array([[1.0, 0.0, np.nan]])}
    text = diagnose(_groups(e, got, inputs={"random": _rand(8, (2, 3)), "saturation": sat}), 1e-12)
    assert text.startswith("wrong only in saturation (at z = 700: got nan, expected 1)")
    assert "overflow" in text


def test_wrong_only_at_tiny_inputs():
    e = {"random": _rand(9), "tiny": np.full((1, 3), 0.5)}
    got = {"random": e["random"], "tiny": np.full((1, 3), 0.0)}
    assert diagnose(_groups(e, got), 1e-12).startswith("wrong only at tiny inputs")


def test_transposed_shape_and_transposed_values():
    e = _rand(10, (4, 3))
    assert diagnose(_groups({"random": e}, {"random": e.T}), 1e-12).startswith(
        "transposed: got shape (3, 4), expected (4, 3), and got.T matches")
    sq = _rand(11, (3, 3))
    assert diagnose(_groups({"random": sq}, {"random": sq.T}), 1e-12).startswith("transposed: got.T matches")


def test_per_sample_gradient_not_summed_over_the_batch():
    rows = _rand(12, (6, 3))
    text = diagnose([GroupData("random", rows, rows.sum(axis=0))], 1e-12)
    assert text.startswith("missing the sum over the batch: got one row per sample, shape (6, 3)")


def test_backward_ignoring_grad_out():
    deriv, w = np.abs(_rand(13)), probes.upstream_gradient((6, 5), 0, "random")
    text = diagnose([GroupData("random", deriv, w * deriv, upstream=w)], 1e-12)
    assert text.startswith("backward ignores grad_out")


def test_a_known_wrong_alternative_is_recognised():
    e, alt = _rand(14), _rand(15)
    text = diagnose([GroupData("random", alt, e, alternatives={"the Jacobian is transposed": alt})], 1e-12)
    assert text == "the Jacobian is transposed"


def test_a_different_formula_reports_the_ratio_range():
    z = np.linspace(-2, 2, 9).reshape(3, 3)       # holds z = 0
    e, got = 1 - np.tanh(z) ** 2, 1 + np.tanh(z) ** 2
    text = diagnose([GroupData("random", got, e, inputs=z)], 1e-12)
    assert text.startswith("the formula differs, not by a constant factor: got/expected runs from")
    # the example is where got and expected differ most: |z| = 2 (z = 0 agrees)
    t = np.tanh(2.0)
    assert text.endswith(f"; e.g. at z = -2: got {1 + t * t:.6g}, expected {1 - t * t:.6g}")


def test_a_near_miss_is_called_rounding_not_a_wrong_formula():
    e = _rand(16)
    got = e * (1 + 1e-9 * np.sign(_rand(17)))
    assert diagnose(_groups({"random": e}, {"random": got}), 1e-12).startswith("close but not within the tolerance")


def test_error_is_measured_over_every_probe_of_the_gradient():
    e = {"random": np.ones((2, 2)), "saturation": np.full((1, 2), 1e-9)}
    got = {"random": np.ones((2, 2)), "saturation": np.full((1, 2), 1.1e-9)}
    cmp = compare(_groups(e, got), 1e-12)
    total = np.linalg.norm(np.r_[np.ones(4), [1e-9, 1e-9]])
    assert cmp.error == pytest.approx(np.linalg.norm([1e-10, 1e-10]) / total, rel=1e-12)
    assert cmp.groups["random"] == 0.0 and cmp.groups["saturation"] == pytest.approx(cmp.error)
    assert not cmp.ok and cmp.worst.group == "saturation"


def test_non_finite_values_that_differ_fail_and_shared_ones_agree():
    e = np.array([[1.0, np.nan]])
    assert compare([GroupData("random", np.array([[1.0, np.nan]]), e)], 1e-12).ok
    cmp = compare([GroupData("random", np.array([[1.0, 2.0]]), e)], 1e-12)
    assert not cmp.ok and cmp.error == float("inf")


def test_verify_core_runs_without_torch():
    """The finite-difference part needs no torch: it runs where torch cannot be imported."""
    code = ("import importlib.abc, sys\n"
            "class NoTorch(importlib.abc.MetaPathFinder):\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name.split('.')[0] == 'torch':\n"
            "            raise ImportError(f'{name} is blocked in this test')\n"
            "sys.meta_path.insert(0, NoTorch())\n"
            "from nnparity.verify import verify_fd\n"
            "ok = verify_fd('examples.custom_ops:Swish')\n"
            "bad = verify_fd('examples.tutorial_ops:MSESlip')\n"
            "assert ok.ok and not bad.ok, (ok.format(), bad.format())\n"
            "assert 'constant factor ½' in bad.diagnosis, bad.diagnosis\n"
            "assert 'torch' not in sys.modules\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def _central(f, z, h=1e-6):
    return (f(z + h) - f(z - h)) / (2 * h)


def test_mask_missing_is_named_with_its_worst_point():
    z = np.linspace(-3, 3, 30).reshape(6, 5) + 0.05           # no point on the kinks at ±1
    hardtanh = lambda t: np.clip(t, -1, 1)                    # noqa: E731
    expected = _central(hardtanh, z)
    assert np.array_equal(expected == 0, np.abs(z) > 1)      # the true derivative: 0 outside [-1, 1]
    got = np.ones_like(z)                                     # the mask forgotten
    text = diagnose([GroupData("random", got, expected, inputs=z)], 1e-7)
    outside = int((np.abs(z) > 1).sum())
    assert text.startswith(f"nonzero where the true derivative is 0 (at {outside} points, e.g. at z = ")
    assert text.endswith("got 1, expected 0): a mask is missing or inverted")


def test_mask_inverted_is_named_as_such():
    z = np.linspace(-2, 2, 30).reshape(6, 5) + 0.01
    expected = _central(lambda t: np.maximum(t, 0), z)
    got = (z <= 0).astype(float)                              # relu's mask inverted
    text = diagnose([GroupData("random", got, expected, inputs=z)], 1e-7)
    assert text.startswith(f"nonzero where the true derivative is 0 (at {int((z < 0).sum())} points")
    assert text.endswith(f"and 0 where it is not (at {int((z > 0).sum())} points): the mask is inverted")


def test_example_is_where_got_and_expected_differ_most():
    z = np.linspace(-2, 2, 12).reshape(3, 4)
    expected = _central(np.tanh, z)
    got = 1 - np.tanh(z)                                      # the square forgotten
    text = diagnose([GroupData("random", got, expected, inputs=z)], 1e-7)
    scores = np.abs(got - expected) / np.maximum(np.abs(expected), np.sqrt(np.mean(expected ** 2)))
    i = np.unravel_index(int(np.argmax(scores)), z.shape)
    assert text.endswith(f"e.g. at z = {z[i]:.6g}: got {got[i]:.6g}, expected {expected[i]:.6g}")


def test_example_prints_enough_digits_to_differ():
    z = np.linspace(-1, 1, 12).reshape(3, 4)
    expected = 2 * z + 1
    got = expected * (1 + 1e-7 * np.sin(7 * z))              # differs beyond the 6th digit, not by a factor
    text = diagnose([GroupData("random", got, expected, inputs=z)], 1e-12)
    assert text.startswith("close but not within the tolerance")
    shown_got, shown_expected = text.split("got ")[1].split(")")[0].split(", expected ")
    assert shown_got != shown_expected
    assert f"{float(shown_got):.6g}" == f"{float(shown_expected):.6g}"   # equal at the usual 6 digits
