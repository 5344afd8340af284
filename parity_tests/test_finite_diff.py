"""Central finite differences of the scratch gradients (float64, h = 1e-6, away from kinks), and the
error measures themselves. Independent of torch: the expected gradient is the loss's own slope."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import FD_STEP, FD_TOL, make_spec, parse_spec
from scratch.activations import ACTIVATIONS
from scratch.data import random_batch
from scratch.policy import rel_error
from nnparity.verify.finite_diff import network_numeric_gradients, numeric_gradient
from scratch.losses import FEATURE_LOSSES, LOSSES
from scratch.network import Network, build_loss

# Which output each loss needs, as in test_network_parity.
OUTPUT = {"bce": "sigmoid", "cce": "softmax"}
KINKED = {"relu", "leaky_relu", "elu", "step"}


def min_abs_preactivation(net, x) -> float:
    """The smallest |z| over every layer: a finite difference of h must not cross a kink."""
    smallest, a = np.inf, x
    for layer, activation in zip(net.layers, net.activations):
        z = layer.forward(a)
        smallest = min(smallest, float(np.abs(z).min()))
        a = activation.forward(z)
    return smallest


def assert_fd_agrees(spec, batch=4, seed=None):
    net = Network.from_spec(spec)
    loss = build_loss(spec)
    x, y = random_batch(spec, batch, seed)
    if any(a in KINKED for a in (layer.activation for layer in spec.layers)):
        assert min_abs_preactivation(net, x) > 100 * FD_STEP, "too close to a kink for finite differences"
    value = loss.forward(net.forward(x), y)
    grad_x = net.backward(loss.backward())
    grads = dict(net.gradients())
    grads["input"] = grad_x
    numeric = network_numeric_gradients(net, loss, x, y, h=FD_STEP)
    assert set(numeric) == set(grads)
    assert np.isfinite(value)
    for name, g in grads.items():
        err = rel_error(g, numeric[name])
        assert err <= FD_TOL, f"{name}: finite-difference rel error {err:.3e} > {FD_TOL:g}"


@pytest.mark.parametrize("activation", list(ACTIVATIONS))
def test_finite_diff_activation(activation):
    """Each activation in both layers of a 3-4-3 network under mse (softmax_cce for softmax)."""
    loss = "softmax_cce" if activation == "softmax" else "mse"
    assert_fd_agrees(make_spec([activation, activation], loss=loss, seed=5))


@pytest.mark.parametrize("loss,reduction", [(n, r) for n, c in FEATURE_LOSSES.items() for r in c.reductions])
def test_finite_diff_loss(loss, reduction):
    assert_fd_agrees(make_spec(["tanh", OUTPUT.get(loss, "identity")], loss=loss, reduction=reduction, seed=6))


@pytest.mark.parametrize("reduction", LOSSES["token_cce"].reductions)
def test_finite_diff_loss_per_token(reduction):
    """token_cce over a [time, features] sequence, dense at every step, one target of each row ignored."""
    spec = parse_spec({"seed": 6, "input_shape": [3, 4],
                       "layers": [{"units": 5, "activation": "tanh"}, {"units": 4, "activation": "identity"}],
                       "loss": {"name": "token_cce", "reduction": reduction, "ignore_index": -1}})
    net, loss = Network.from_spec(spec), build_loss(spec)
    rng = np.random.default_rng(6)
    x, y = rng.normal(size=(2, 3, 4)), rng.integers(0, 4, size=(2, 3))
    y[:, 1] = -1
    loss.forward(net.forward(x), y)
    grad_x = net.backward(loss.backward())
    grads = {**net.gradients(), "input": grad_x}
    numeric = network_numeric_gradients(net, loss, x, y, h=FD_STEP)
    assert set(numeric) == set(grads)
    for name, g in grads.items():
        err = rel_error(g, numeric[name])
        assert err <= FD_TOL, f"{name}: finite-difference rel error {err:.3e} > {FD_TOL:g}"


@pytest.mark.parametrize("depth", [1, 2, 3, 4])
def test_finite_diff_depth(depth):
    acts = ["gelu_tanh", "elu", "sigmoid", "gelu"][:depth - 1] + ["softmax"]
    assert_fd_agrees(make_spec(acts, loss="cce", seed=depth), batch=3)


@pytest.mark.parametrize("loss,output", [("softmax_cce", "identity"), ("cce", "softmax")])
def test_finite_diff_probability_targets(loss, output):
    """Probability targets whose rows sum to 1, less and more (torch accepts all three)."""
    spec = make_spec(["tanh", output], loss=loss, seed=9)
    net, fn = Network.from_spec(spec), build_loss(spec)
    x = np.random.default_rng(2).normal(size=(3, 3))
    y = np.array([[0.2, 0.3, 0.5], [0.5, 0.0, 0.0], [0.9, 0.6, 0.3]])
    fn.forward(net.forward(x), y)
    grad_x = net.backward(fn.backward())
    numeric = network_numeric_gradients(net, fn, x, y, h=FD_STEP)
    for name, g in {**net.gradients(), "input": grad_x}.items():
        assert rel_error(g, numeric[name]) <= FD_TOL, name


def test_finite_diff_batch_one():
    assert_fd_agrees(make_spec(["leaky_relu", "sigmoid"], loss="bce", seed=8), batch=1)


def test_finite_diff_numeric_gradient_of_quadratic():
    """numeric_gradient itself: the slope of Σ c·x² is 2·c·x (central differences are exact on quadratics
    up to rounding)."""
    c = np.array([[1.0, -2.0], [0.5, 3.0]])
    x = np.array([[0.3, -1.2], [2.0, 0.7]])
    grad = numeric_gradient(lambda: float((c * x * x).sum()), x, h=1e-5)
    assert rel_error(grad, 2 * c * x) <= 1e-9
    assert np.array_equal(x, np.array([[0.3, -1.2], [2.0, 0.7]])), "x must be restored"
