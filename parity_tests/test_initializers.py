"""Seeded initializers: shapes, reproducibility, and the documented distributions, with torch.nn.init
(and nn.Linear) drawing the same distributions as the independent reference."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from conftest import make_spec
from scratch.initializers import INITIALIZERS, initial_parameters

FAN_IN, FAN_OUT = 200, 300          # 60,000 draws: sample std within ~0.3 % of the true one


def draw(name, scale=None, seed=0):
    return INITIALIZERS[name](np.random.default_rng(seed), FAN_IN, FAN_OUT, scale)


def torch_draw(init_fn, **kwargs):
    """torch's initializer on an nn.Linear-shaped (out, in) weight."""
    torch.manual_seed(0)
    w = torch.empty(FAN_OUT, FAN_IN, dtype=torch.float64)
    init_fn(w, **kwargs)
    return w.numpy()


# name -> (kind, the documented bound or std, torch's initializer drawing the same distribution)
DISTRIBUTIONS = {
    "xavier_uniform": ("uniform", math.sqrt(6 / (FAN_IN + FAN_OUT)), (nn.init.xavier_uniform_, {})),
    "xavier_normal": ("normal", math.sqrt(2 / (FAN_IN + FAN_OUT)), (nn.init.xavier_normal_, {})),
    "he_uniform": ("uniform", math.sqrt(6 / FAN_IN), (nn.init.kaiming_uniform_, {"nonlinearity": "relu"})),
    "he_normal": ("normal", math.sqrt(2 / FAN_IN), (nn.init.kaiming_normal_, {"nonlinearity": "relu"})),
    "torch_default": ("uniform", 1 / math.sqrt(FAN_IN), (nn.init.kaiming_uniform_, {"a": math.sqrt(5)})),
    "uniform": ("uniform", 0.05, (nn.init.uniform_, {"a": -0.05, "b": 0.05})),
    "normal": ("normal", 0.01, (nn.init.normal_, {"std": 0.01})),
}


@pytest.mark.parametrize("name", list(INITIALIZERS))
def test_initializer_shape_and_dtype(name):
    w = INITIALIZERS[name](np.random.default_rng(0), 3, 5, None)
    assert w.shape == (3, 5) and w.dtype == np.float64


@pytest.mark.parametrize("name", list(INITIALIZERS))
def test_initializer_seeded_reproducible(name):
    assert np.array_equal(draw(name, seed=4), draw(name, seed=4))
    if name != "zeros":
        assert not np.array_equal(draw(name, seed=4), draw(name, seed=5))


@pytest.mark.parametrize("name", list(DISTRIBUTIONS))
def test_initializer_distribution(name):
    """Bounds (uniform: every draw inside, the extremes within 0.5 % of it) or std (normal: within 2 %),
    for ours and for torch's twin initializer alike."""
    kind, value, (torch_init, kwargs) = DISTRIBUTIONS[name]
    for w in (draw(name), torch_draw(torch_init, **kwargs)):
        assert abs(w.mean()) < 0.02 * value
        if kind == "uniform":
            assert np.abs(w).max() <= value
            assert np.abs(w).max() >= 0.995 * value
            assert w.std() == pytest.approx(value / math.sqrt(3), rel=0.02)
        else:
            assert w.std() == pytest.approx(value, rel=0.02)


def test_initializer_zeros():
    assert np.array_equal(draw("zeros"), np.zeros((FAN_IN, FAN_OUT)))


@pytest.mark.parametrize("name,kind", [("uniform", "uniform"), ("normal", "normal")])
def test_initializer_init_scale(name, kind):
    w = draw(name, scale=0.5)
    if kind == "uniform":
        assert 0.995 * 0.5 <= np.abs(w).max() <= 0.5
    else:
        assert w.std() == pytest.approx(0.5, rel=0.02)


def test_initializer_torch_default_matches_nn_linear():
    """nn.Linear's own reset_parameters: weight and bias in U(±1/√fan_in), as ours."""
    torch.manual_seed(0)
    linear = nn.Linear(FAN_IN, FAN_OUT, dtype=torch.float64)
    bound = 1 / math.sqrt(FAN_IN)
    tw, tb = linear.weight.detach().numpy(), linear.bias.detach().numpy()
    spec = make_spec(["identity"], widths=[FAN_IN, FAN_OUT], init="torch_default")
    params = initial_parameters(spec)
    w, b = params["layers.0.weight"], params["layers.0.bias"]
    assert w.shape == tw.T.shape and b.shape == tb.shape
    for ours, theirs in ((w, tw), (b, tb)):
        assert np.abs(ours).max() <= bound and np.abs(theirs).max() <= bound
    assert np.abs(w).max() == pytest.approx(np.abs(tw).max(), rel=0.005)
    assert w.std() == pytest.approx(tw.std(), rel=0.02)
    assert b.std() == pytest.approx(tb.std(), rel=0.2)          # 300 draws: a looser sample
    assert np.abs(b).max() >= 0.98 * bound


def test_initializer_biases_zero_except_torch_default():
    params = initial_parameters(make_spec(["tanh", "identity"], init="xavier_normal"))
    assert np.array_equal(params["layers.0.bias"], np.zeros(4))
    assert np.array_equal(params["layers.1.bias"], np.zeros(3))
    params = initial_parameters(make_spec(["tanh", "identity"], init="torch_default"))
    assert np.all(params["layers.0.bias"] != 0)


def test_initializer_parameters_reproducible():
    spec = make_spec(["relu", "tanh", "identity"], init="he_normal", seed=9)
    a, b = initial_parameters(spec), initial_parameters(spec)
    assert list(a) == ["layers.0.weight", "layers.0.bias", "layers.1.weight", "layers.1.bias",
                       "layers.2.weight", "layers.2.bias"]
    assert all(np.array_equal(a[k], b[k]) for k in a)
    other = initial_parameters(make_spec(["relu", "tanh", "identity"], init="he_normal", seed=10))
    assert not np.array_equal(a["layers.0.weight"], other["layers.0.weight"])


def test_initializer_float32_is_rounded_float64():
    p64 = initial_parameters(make_spec(["tanh", "identity"], seed=2))
    p32 = initial_parameters(make_spec(["tanh", "identity"], seed=2, dtype="float32"))
    for name in p64:
        assert p32[name].dtype == np.float32
        assert np.array_equal(p32[name], p64[name].astype(np.float32))


def test_initializer_explicit_values_used_as_given():
    raw = make_spec(["tanh", "identity"], widths=[2, 2, 1]).to_dict()
    raw["layers"][0]["weight"] = [[0.1, 0.2], [0.3, 0.4]]
    raw["layers"][0]["bias"] = [0.5, -0.5]
    params = initial_parameters(type(make_spec("identity")).from_dict(raw))
    assert np.array_equal(params["layers.0.weight"], np.array([[0.1, 0.2], [0.3, 0.4]]))
    assert np.array_equal(params["layers.0.bias"], np.array([0.5, -0.5]))
    assert params["layers.1.weight"].shape == (2, 1)


def test_initializer_torch_twin_holds_same_weights():
    """torch_ref.model.build copies the scratch draws into nn.Linear (transposed)."""
    from torch_ref.model import build, to_scratch

    spec = make_spec(["relu", "softmax"], init="torch_default", seed=12)
    ours = initial_parameters(spec)
    model = build(spec)
    assert np.array_equal(model.linears[0].weight.detach().numpy(), ours["layers.0.weight"].T)
    back = to_scratch(model)
    assert all(np.array_equal(back[k], ours[k]) for k in ours)
