"""Each loss on its own against its torch twin: value and dL/dpred, both reductions, extremes.

Expected values come from torch autograd through torch_ref.model.TORCH_LOSSES (torch's own
nn.MSELoss, nn.BCELoss, nn.BCEWithLogitsLoss, nn.CrossEntropyLoss, nn.KLDivLoss).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import DTYPES, assert_close, explicit_spec, run_check
from scratch.losses import LOSSES, make_loss
from torch_ref.check import run_scratch, run_torch
from torch_ref.model import TORCH_LOSSES

LOSS_REDUCTIONS = [(name, r) for name, cls in LOSSES.items() for r in cls.reductions]
IDS = [f"{n}-{r}" for n, r in LOSS_REDUCTIONS]


def both(name, reduction, pred, target):
    """(scratch value, scratch dL/dpred, torch value, torch dL/dpred)."""
    loss = make_loss(name, reduction)
    value = loss.forward(pred.copy(), target)
    grad = loss.backward()
    pt = torch.tensor(pred, requires_grad=True)
    tt = torch.tensor(target) if target.dtype.kind in "iu" else torch.tensor(target)
    vt = TORCH_LOSSES[name](reduction=reduction)(pt, tt)
    vt.backward()
    return value, grad, vt.item(), pt.grad.numpy()


def sample(name, dtype, n=5, c=4, seed=0, indices=False):
    """A prediction in the loss's domain and a fitting target (token_cce: n sequences of 3 steps,
    per-step token targets with torch's ignore_index, -100, at some steps)."""
    rng = np.random.default_rng(seed)
    if name == "token_cce":
        target = rng.integers(0, c, size=(n, 3))
        target[rng.uniform(size=(n, 3)) < 0.3] = -100
        target[0, 0] = 1   # one step to predict at least
        return rng.normal(size=(n, 3, c)).astype(dtype), target
    z = rng.normal(size=(n, c))
    if name == "bce":
        pred = 1 / (1 + np.exp(-z))
    elif name == "cce":
        pred = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    else:
        pred = z
    if indices:
        target = rng.integers(0, c, size=n)
    elif name in ("bce", "bce_logits"):
        target = rng.uniform(size=(n, c)).astype(dtype)
    elif name in ("cce", "softmax_cce"):
        t = rng.uniform(size=(n, c))
        target = (t / t.sum(axis=1, keepdims=True)).astype(dtype)
    else:
        target = rng.normal(size=(n, c)).astype(dtype)
    return pred.astype(dtype), target


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch", [1, 5])
@pytest.mark.parametrize("name,reduction", LOSS_REDUCTIONS, ids=IDS)
def test_loss_parity_random(name, reduction, batch, dtype):
    pred, target = sample(name, dtype, n=batch)
    v, g, vt, gt = both(name, reduction, pred, target)
    assert g.dtype == np.dtype(dtype) and g.shape == pred.shape
    assert_close(v, vt, dtype, what=f"{name} value")
    assert_close(g, gt, dtype, what=f"{name} gradient")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("name", ["cce", "softmax_cce"])
def test_loss_parity_class_indices(name, reduction, dtype):
    pred, target = sample(name, dtype, n=6, indices=True)
    v, g, vt, gt = both(name, reduction, pred, target)
    assert_close(v, vt, dtype, what=f"{name} value")
    assert_close(g, gt, dtype, what=f"{name} gradient")


@pytest.mark.parametrize("name", ["cce", "softmax_cce"])
def test_loss_class_indices_equal_one_hot(name):
    pred, _ = sample(name, "float64", n=4)
    labels = np.array([0, 3, 1, 3])
    onehot = np.eye(4)[labels]
    a, b = make_loss(name), make_loss(name)
    assert a.forward(pred, labels) == b.forward(pred, onehot)
    assert np.array_equal(a.backward(), b.backward())


@pytest.mark.parametrize("name,reduction", LOSS_REDUCTIONS, ids=IDS)
def test_loss_reduction_divisor(name, reduction):
    """mean divides by what torch divides by: N·C for elementwise losses, N for cross-entropies."""
    pred, target = sample(name, "float64", n=5, c=4)
    value = make_loss(name, reduction).forward(pred, target)
    if "sum" in LOSSES[name].reductions and reduction == "mean":
        total = make_loss(name, "sum").forward(pred, target)
        divisor = {"cce": 5, "softmax_cce": 5, "token_cce": int((target != -100).sum())}.get(name, 20)
        assert_close(value, total / divisor, what=f"{name} mean")
    vt = TORCH_LOSSES[name](reduction=reduction)(torch.tensor(pred), torch.tensor(target)).item()
    assert_close(value, vt, what=f"{name} value")


def test_half_sse_is_half_sse():
    pred, target = sample("mse", "float64")
    assert make_loss("half_sse").forward(pred, target) == 0.5 * make_loss("sse").forward(pred, target)


# ------------------------------------------------------------------------------------ extremes

BCE_PROBS = np.array([[0.0, 1.0, 1e-300, 1e-13, 1 - 1e-16, 1 - 1e-7, 0.5, 1e-7]])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("target", ["ones", "zeros", "fractional"])
def test_bce_parity_extreme_probabilities(target, reduction, dtype):
    """p exactly 0 and 1 (log clamped at -100) and within 1e-13 of them (gradient denominator
    clamped at torch's float 1e-12)."""
    pred = BCE_PROBS.astype(dtype)
    t = {"ones": np.ones_like(pred), "zeros": np.zeros_like(pred),
         "fractional": np.linspace(0.05, 0.95, pred.size, dtype=dtype).reshape(pred.shape)}[target]
    v, g, vt, gt = both("bce", reduction, pred, t)
    assert np.isfinite(v) and np.all(np.isfinite(g))
    assert_close(v, vt, dtype, what="bce value")
    assert_close(g, gt, dtype, what="bce gradient")


def test_bce_log_clamp_value():
    """-log(0) is clamped to 100, as nn.BCELoss."""
    assert make_loss("bce", "sum").forward(np.array([[0.0, 1.0]]), np.array([[1.0, 0.0]])) == 200.0


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_bce_logits_parity_extreme_logits(reduction, dtype):
    big = 1e300 if dtype == "float64" else 1e38  # two such terms still sum below float32's max
    pred = np.array([[1000.0, -1000.0, big, -big, 0.0, 30.0, -30.0, 1e-8]], dtype=dtype)
    t = np.array([[1.0, 0.0, 0.0, 1.0, 1.0, 0.25, 0.75, 0.5]], dtype=dtype)
    v, g, vt, gt = both("bce_logits", reduction, pred, t)
    assert_close(v, vt, dtype, what="bce_logits value")
    assert_close(g, gt, dtype, what="bce_logits gradient")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("indices", [True, False], ids=["indices", "probabilities"])
def test_softmax_cce_parity_logits_near_1000(indices, reduction, dtype):
    pred = np.array([[1000.0, 999.0, -1000.0, 0.0],
                     [-1000.0, -999.5, -1000.0, -998.0],
                     [1000.0, 1000.0, 1000.0, 1000.0]], dtype=dtype)
    target = np.array([2, 1, 3]) if indices else np.array(
        [[0.0, 0.0, 1.0, 0.0], [0.25, 0.25, 0.25, 0.25], [0.5, 0.0, 0.0, 0.5]], dtype=dtype)
    v, g, vt, gt = both("softmax_cce", reduction, pred, target)
    assert np.isfinite(v) and v > 600
    assert_close(v, vt, dtype, what="softmax_cce value")
    assert_close(g, gt, dtype, what="softmax_cce gradient")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("name", ["cce", "softmax_cce"])
def test_loss_parity_unnormalized_probability_targets(name, reduction, dtype):
    """Probability targets whose rows do not sum to 1 (torch accepts them): softmax_cce's gradient is
    softmax·Σ_c t_c − t, not softmax − t."""
    pred, _ = sample(name, dtype, n=4, c=3)
    target = np.array([[0.5, 0.0, 0.0], [0.75, 0.5, 0.45], [0.0, 0.0, 0.0], [1.0, 1.0, 1.0]], dtype=dtype)
    v, g, vt, gt = both(name, reduction, pred, target)
    assert_close(v, vt, dtype, what=f"{name} value")
    assert_close(g, gt, dtype, what=f"{name} gradient")


def test_softmax_cce_huge_logits_no_overflow():
    pred = np.array([[1e300, -1e300, 0.0]])
    v, g, vt, gt = both("softmax_cce", "sum", pred, np.array([0]))
    assert v == 0.0 and np.array_equal(g, np.zeros((1, 3)))
    assert_close(v, vt)
    assert_close(g, gt)


@pytest.mark.parametrize("dtype", DTYPES)
def test_cce_parity_zero_probability_zero_target(dtype):
    """A softmax that underflowed to 0 on a class with target 0 contributes 0 (no 0·log 0 = NaN)."""
    pred = np.array([[0.75, 0.25, 0.0], [0.0, 0.5, 0.5]], dtype=dtype)
    for target in (np.array([0, 1]), np.array([[0.5, 0.5, 0.0], [0.0, 0.25, 0.75]], dtype=dtype)):
        v, g, vt, gt = both("cce", "mean", pred, target)
        assert np.isfinite(v) and np.all(np.isfinite(g))
        assert_close(v, vt, dtype, what="cce value")
        assert_close(g, gt, dtype, what="cce gradient")


@pytest.mark.parametrize("dtype", DTYPES)
def test_bce_matches_bce_with_logits(dtype):
    """sigmoid + BCE in scratch against torch's fused nn.BCEWithLogitsLoss on the same logits."""
    w0 = [[0.5, -0.25], [1.5, 0.75]]
    w1 = [[1.25, -0.5, 0.25], [-2.0, 0.5, 1.0]]
    x = [[1.0, 2.0], [-0.5, 0.25], [2.0, -1.0]]
    y = [[1.0, 0.0, 1.0], [0.0, 0.0, 1.0], [0.3, 0.9, 0.1]]
    probs = explicit_spec([w0, w1], activations=["tanh", "sigmoid"], loss="bce", dtype=dtype)
    logits = explicit_spec([w0, w1], activations=["tanh", "identity"], loss="bce_logits", dtype=dtype)
    ours = run_scratch(probs, np.array(x), np.array(y))
    theirs = run_torch(logits, np.array(x), np.array(y))
    assert_close(ours["loss"], theirs["loss"], dtype, what="loss")
    for name, grad in theirs["grads"].items():
        assert_close(ours["grads"][name], grad, dtype, what=name)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_bce_network_parity_probabilities_near_0_and_1(reduction, dtype):
    """Through check(): an identity output whose explicit weights put p exactly at 0, 1 and near them."""
    probs = [[0.0, 1.0, 1e-12, 1 - 1e-12, 1e-6, 0.5]] if dtype == "float64" else [[0.0, 1.0, 1e-7, 0.999, 1e-4, 0.5]]
    spec = explicit_spec([probs], biases=[[0.0] * 6], activations=["sigmoid"], loss="bce", reduction=reduction,
                         dtype=dtype, x=[[1.0]], y=[[1.0, 0.0, 0.0, 1.0, 0.5, 1.0]])
    # The loader refuses bce on an identity output (a user's spec needs probabilities there); the
    # test sets it after loading, to feed bce probabilities exactly at 0, 1 and near them.
    spec.layers[0].activation = "identity"
    report = run_check(spec)
    assert np.array_equal(report["scratch"]["output"], np.array(probs, dtype=dtype))


@pytest.mark.parametrize("p", [0.0, 1e-310])
def test_cce_probability_underflow_infinite_like_torch(p):
    """A softmax that underflowed to 0 (or a subnormal) under a hot target: the loss is +inf and
    the gradient -inf beyond the float range, as torch's twin gives them, and no numpy warning."""
    pred = np.array([[p, 1.0 - p]])
    target = np.array([[1.0, 0.0]])
    loss = LOSSES["cce"](reduction="mean")
    value = loss.forward(pred, target)
    grad = loss.backward()
    pt = torch.tensor(pred, requires_grad=True)
    tvalue = TORCH_LOSSES["cce"](reduction="mean")(pt, torch.tensor(target))
    tvalue.backward()
    assert float(tvalue.detach()) == value
    np.testing.assert_array_equal(grad, pt.grad.numpy())
    assert grad[0, 0] == -np.inf and grad[0, 1] == 0
