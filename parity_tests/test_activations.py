"""Each activation on its own against its torch twin: forward and backward, kinks and extremes.

The expected values come from torch autograd (the twin modules of torch_ref.model), or, where
torch itself overflows (gelu at 3e38 in float32, gelu_tanh at 1e300), from the function's exact limits.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import CHECK_TOL, DTYPES, assert_close
from scratch.activations import ACTIVATIONS, make_activation
from torch_ref.model import FORWARD_ONLY, torch_activation

PARAMS = {"leaky_relu": [{}, {"negative_slope": 0.2}], "elu": [{}, {"alpha": 0.5}, {"alpha": 2.0}]}
CASES = [(name, p) for name in ACTIVATIONS for p in PARAMS.get(name, [{}])]
CASE_IDS = [name + "".join(f"-{k}={v}" for k, v in p.items()) for name, p in CASES]


def both(name, z, params=None, grad_out=None):
    """(scratch a, scratch dL/dz, torch a, torch dL/dz) for L = Σ grad_out ⊙ a."""
    params = params or {}
    grad_out = np.ones_like(z) if grad_out is None else grad_out
    op = make_activation(name, params)
    a = op.forward(z.copy())
    g = op.backward(grad_out.copy())
    zt = torch.tensor(z, requires_grad=True)
    at = torch_activation(name, params)(zt)
    if at.requires_grad:
        at.backward(torch.tensor(grad_out))
    gt = zt.grad.numpy() if zt.grad is not None else np.zeros_like(z)
    return a, g, at.detach().numpy(), gt


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,params", CASES, ids=CASE_IDS)
def test_activation_parity_random(name, params, dtype):
    rng = np.random.default_rng(0)
    z = rng.normal(scale=2.0, size=(6, 5)).astype(dtype)
    grad_out = rng.normal(size=z.shape).astype(dtype)
    a, g, at, gt = both(name, z, params, grad_out)
    assert a.dtype == np.dtype(dtype) and g.dtype == np.dtype(dtype)
    assert a.shape == z.shape and g.shape == z.shape
    assert_close(a, at, dtype, what=f"{name} forward")
    assert_close(g, gt, dtype, what=f"{name} backward")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,params", CASES, ids=CASE_IDS)
def test_activation_parity_at_zero(name, params, dtype):
    """z exactly 0 (the kink of relu, leaky_relu, elu, step): torch's one-sided conventions."""
    z = np.array([[0.0, -0.0, 1.0, -1.0], [0.0, 0.5, -0.5, 0.0]], dtype=dtype)
    grad_out = np.array([[1.0, 2.0, 3.0, 4.0], [-1.0, 0.5, 0.25, 3.0]], dtype=dtype)
    a, g, at, gt = both(name, z, params, grad_out)
    zero = (z == 0) & ACTIVATIONS[name].elementwise  # exact at the kink; softmax rows are not elementwise
    assert np.array_equal(a[zero], at[zero]), f"{name} forward at 0: {a[zero]} vs {at[zero]}"
    assert np.array_equal(g[zero], gt[zero]), f"{name} backward at 0: {g[zero]} vs {gt[zero]}"
    assert_close(a, at, dtype, what=f"{name} forward")
    assert_close(g, gt, dtype, what=f"{name} backward at 0")


def test_relu_kink_gradient_zero():
    op = make_activation("relu")
    op.forward(np.zeros((1, 3)))
    assert np.array_equal(op.backward(np.full((1, 3), 5.0)), np.zeros((1, 3)))


@pytest.mark.parametrize("dtype", DTYPES)
def test_relu_backward_is_torchs_where_bit_for_bit(dtype):
    """Non-finite and signed-zero gradients pass where z > 0 untouched and become +0 elsewhere,
    exactly as torch's threshold_backward (z <= 0 ? 0 : g)."""
    z = np.array([[-1.0, 0.0, 2.0, -0.0, 3.0, -2.0, 1e-30, -1e-30, 1.0, 4.0]], dtype=dtype)
    # 1/3 and -0.1 have every mantissa bit in play: a mask off by one bit would show
    g = np.array([[np.nan, np.inf, np.nan, -np.inf, -0.0, -0.0, -np.inf, 5.0, 1 / 3, -0.1]], dtype=dtype)
    op = make_activation("relu")
    op.forward(z)
    ours = op.backward(g)
    zt = torch.tensor(z, requires_grad=True)
    torch.relu(zt).backward(torch.tensor(g))
    theirs = zt.grad.numpy()
    assert ours.dtype == theirs.dtype
    assert np.array_equal(ours.view(f"i{ours.itemsize}"), theirs.view(f"i{theirs.itemsize}"))


def test_relu_backward_gradient_of_another_width():
    """A float64 gradient into a float32 ReLU (the keep mask's width differs): the same rule,
    dL/dz = g where z > 0, else 0, in the gradient's dtype."""
    z = np.array([[-1.5, 0.0, 2.0, 3.0]], dtype=np.float32)
    g = np.array([[4.0, 5.0, -6.0, 7.0]])
    op = make_activation("relu")
    op.forward(z)
    got = op.backward(g)
    assert got.dtype == np.float64
    assert np.array_equal(got, np.array([[0.0, 0.0, -6.0, 7.0]]))


def test_leaky_relu_kink_gradient_slope():
    op = make_activation("leaky_relu", {"negative_slope": 0.25})
    op.forward(np.zeros((1, 2)))
    assert np.array_equal(op.backward(np.array([[1.0, -3.0]])), np.array([[0.25, -0.75]]))


def test_elu_kink_gradient_alpha():
    op = make_activation("elu", {"alpha": 2.0})
    op.forward(np.zeros((1, 2)))
    assert np.array_equal(op.backward(np.array([[1.0, -3.0]])), np.array([[2.0, -6.0]]))


@pytest.mark.parametrize("dtype", DTYPES)
def test_step_derivative_zero(dtype):
    """torch has no gradient for the step: forward against torch.heaviside, backward is 0."""
    z = np.array([[-2.0, -0.0, 0.0, 1e-30, 3.0], [-1e-30, 7.0, -7.0, 0.0, 0.5]], dtype=dtype)
    op = make_activation("step")
    a = op.forward(z)
    assert np.array_equal(a, torch.heaviside(torch.from_numpy(z), torch.ones((), dtype=torch.from_numpy(z).dtype)).numpy())
    g = op.backward(np.random.default_rng(1).normal(size=z.shape).astype(dtype))
    assert g.dtype == np.dtype(dtype) and np.array_equal(g, np.zeros_like(z))
    assert "step" in FORWARD_ONLY


# ------------------------------------------------------------------------------------ extremes

SATURATING = ["sigmoid", "tanh", "gelu", "gelu_tanh"]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", SATURATING + ["elu", "softmax", "identity", "relu", "leaky_relu"])
def test_activation_parity_hundreds(name, dtype):
    """|z| in the hundreds: past exp's float32 range (88) and near float64's (709)."""
    z = np.array([[-750.0, -300.0, -100.0, 0.0, 100.0, 300.0, 750.0],
                  [-90.0, -40.0, -20.0, 0.25, 20.0, 40.0, 90.0]], dtype=dtype)
    a, g, at, gt = both(name, z)
    assert np.all(np.isfinite(a)) and np.all(np.isfinite(g))
    assert_close(a, at, dtype, what=f"{name} forward")
    assert_close(g, gt, dtype, what=f"{name} backward")


HUGE = {"float64": 1e300, "float32": 3e38}

# The exact limits for z -> +huge and z -> -huge: (a(+), a'(+), a(-), a'(-)); None: a = z.
LIMITS = {
    "sigmoid": (1.0, 0.0, 0.0, 0.0),
    "tanh": (1.0, 0.0, -1.0, 0.0),
    "gelu": (None, 1.0, 0.0, 0.0),
    "gelu_tanh": (None, 1.0, 0.0, 0.0),
    "relu": (None, 1.0, 0.0, 0.0),
    "elu": (None, 1.0, -1.0, 0.0),
    "identity": (None, 1.0, None, 1.0),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", list(LIMITS))
def test_activation_huge_no_overflow(name, dtype):
    """z = ±1e300 (±3e38 in float32): no warning (the errstate fixture raises), the exact limits."""
    h = HUGE[dtype]
    z = np.array([[h, -h, 0.5 * h, -0.5 * h]], dtype=dtype)
    op = make_activation(name)
    a = op.forward(z.copy())
    g = op.backward(np.ones_like(z))
    pos_a, pos_g, neg_a, neg_g = LIMITS[name]
    want_a = np.array([[pos_a if pos_a is not None else z[0, i] for i in (0, 2)]
                       + [neg_a if neg_a is not None else z[0, i] for i in (1, 3)]], dtype=dtype)
    got_a = a[:, [0, 2, 1, 3]]
    assert np.array_equal(got_a, want_a), f"{name} forward at ±{h:g}: {got_a} vs {want_a}"
    assert np.array_equal(g[:, [0, 2, 1, 3]], np.array([[pos_g, pos_g, neg_g, neg_g]], dtype=dtype))


@pytest.mark.parametrize("name", ["sigmoid", "tanh", "gelu", "elu", "relu"])
def test_activation_parity_huge_float64(name):
    """At ±1e300 torch is finite for these too: equal to it."""
    z = np.array([[1e300, -1e300, 3.0, -3.0]])
    a, g, at, gt = both(name, z)
    assert_close(a, at, what=f"{name} forward")
    assert_close(g, gt, what=f"{name} backward")


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_huge_logits_no_overflow(dtype):
    """Rows like (3e38, -3e38) in float32: z - max would overflow; the result is one-hot."""
    h = HUGE[dtype]
    z = np.array([[h, -h, 0.0], [-h, -h, -h], [0.0, -h, 1.0]], dtype=dtype)
    grad_out = np.array([[1.0, 2.0, 3.0], [0.5, -1.0, 0.25], [1.0, 0.0, -1.0]], dtype=dtype)
    a, g, at, gt = both("softmax", z, grad_out=grad_out)
    assert np.array_equal(a[0], np.array([1.0, 0.0, 0.0], dtype=dtype))
    assert_close(a[1], np.full(3, 1 / 3), dtype, what="softmax of a constant row")
    assert_close(a, at, dtype, what="softmax forward")
    assert_close(g, gt, dtype, what="softmax backward")


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_rows_sum_to_one(dtype):
    z = np.random.default_rng(3).normal(scale=50, size=(8, 6)).astype(dtype)
    a = make_activation("softmax").forward(z)
    assert np.all(a >= 0)
    assert_close(a.sum(axis=1), np.ones(8), dtype, what="row sums")


def test_softmax_backward_is_jvp():
    """dL/dz = Jᵀ g with J = diag(a) - a aᵀ, the Jacobian built explicitly from torch."""
    rng = np.random.default_rng(4)
    z, g = rng.normal(size=(1, 5)), rng.normal(size=(1, 5))
    op = make_activation("softmax")
    op.forward(z)
    jac = torch.autograd.functional.jacobian(lambda t: torch.softmax(t, dim=1), torch.tensor(z))
    expected = g.reshape(-1) @ jac.reshape(5, 5).numpy()
    assert_close(op.backward(g).reshape(-1), expected, what="softmax JVP")


def test_activation_float32_stays_float32():
    z = np.linspace(-3, 3, 12, dtype=np.float32).reshape(2, 6)
    for name in ACTIVATIONS:
        op = make_activation(name)
        assert op.forward(z.copy()).dtype == np.float32, name
        assert op.backward(np.ones_like(z)).dtype == np.float32, name


def test_activation_tolerance_policy_values():
    """The policy's numbers, so that nobody loosens them silently."""
    assert CHECK_TOL == {"float64": 1e-12, "float32": 1e-5}
