"""Whole networks against their torch twins through torch_ref.check.check: output, every
intermediate activation, loss, the gradient of every parameter and of the input.

Every activation meets every loss (as the hidden layer, and as the output layer where the loss
makes sense on its output), in both reductions, with both dtypes and batch sizes 1 and 5 pairwise; depths 1-4;
kinks hit exactly; extremes; and random specs drawn by hypothesis.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import CHECK_TOL, DTYPES, assert_parity, explicit_spec, make_spec, run_check
from scratch.activations import ACTIVATIONS
from scratch.initializers import INITIALIZERS
from scratch.losses import FEATURE_LOSSES as LOSSES  # token_cce: test_sequence_layers.py
from torch_ref.check import check

# Which output activations each loss makes sense on (None: any).
#   bce needs outputs in [0, 1]; cce needs probabilities (> 0 where the target is not 0).
LOSS_OUTPUTS = {"bce": ("sigmoid", "softmax", "step"), "cce": ("softmax", "sigmoid")}
# The output a loss gets when the activation under test does not make sense there.
NATURAL_OUTPUT = {"bce": "sigmoid", "cce": "softmax", "bce_logits": "identity", "softmax_cce": "identity"}


def fits(activation: str, loss: str) -> bool:
    return activation in LOSS_OUTPUTS.get(loss, ACTIVATIONS)


def layers_for(activation: str, loss: str) -> list[str]:
    """Hidden activation under test, and the output: the same where it fits the loss."""
    return [activation, activation if fits(activation, loss) else NATURAL_OUTPUT.get(loss, "identity")]


# Every activation meets every loss in every reduction; dtype and batch size vary pairwise over
# them: (activation, loss) picks one of the four (dtype, batch) settings by its position, so each
# activation and each loss meets every setting (test_network_parity_matrix_is_pairwise).
SETTINGS = [(dtype, batch) for dtype in DTYPES for batch in (1, 5)]
TRIPLES = [(a, loss, r) for a in ACTIVATIONS for loss, cls in LOSSES.items() for r in cls.reductions]
MATRIX = [(a, loss, r, *SETTINGS[(list(ACTIVATIONS).index(a) + list(LOSSES).index(loss) + k) % len(SETTINGS)])
          for a, loss, r in TRIPLES for k in (LOSSES[loss].reductions.index(r),)]


def test_network_parity_matrix_is_pairwise():
    for column, values in ((0, ACTIVATIONS), (1, LOSSES)):
        for value in values:
            met = {row[3:] for row in MATRIX if row[column] == value}
            assert met == set(SETTINGS), (value, met)
    assert {row[:3] for row in MATRIX} == set(TRIPLES)


@pytest.mark.parametrize("activation,loss,reduction,dtype,batch", MATRIX,
                         ids=["-".join(map(str, row)) for row in MATRIX])
def test_network_parity_activation_loss(activation, loss, reduction, dtype, batch):
    spec = make_spec(layers_for(activation, loss), loss=loss, reduction=reduction, dtype=dtype, seed=3)
    report = run_check(spec, batch=batch)
    assert report["scratch"]["grads"]["input"].shape == (batch, 3)
    assert set(report["errors"]["grads"]) == {"layers.0.weight", "layers.0.bias", "layers.1.weight",
                                              "layers.1.bias", "input"}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("depth", [1, 2, 3, 4])
@pytest.mark.parametrize("activation", list(ACTIVATIONS))
def test_network_parity_depth(activation, depth, dtype):
    """Every layer the activation under test; the loss on logits (softmax_cce) or values (mse)."""
    loss = "mse" if activation == "softmax" else "softmax_cce"
    spec = make_spec([activation] * depth, loss=loss, dtype=dtype, seed=depth, init="he_uniform")
    report = run_check(spec, batch=4)
    assert len(report["errors"]["activations"]) == depth
    assert len(report["errors"]["grads"]) == 2 * depth + 1


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("init", list(INITIALIZERS))
def test_network_parity_initializer(init, dtype):
    spec = make_spec(["tanh", "sigmoid", "identity"], loss="mse", dtype=dtype, init=init, seed=11)
    run_check(spec, batch=3)


@pytest.mark.parametrize("dtype", DTYPES)
def test_network_parity_no_bias(dtype):
    spec = make_spec(["elu", "gelu", "identity"], loss="sse", dtype=dtype, use_bias=False)
    report = run_check(spec, batch=3)
    assert set(report["errors"]["grads"]) == {"layers.0.weight", "layers.1.weight", "layers.2.weight", "input"}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,params", [("leaky_relu", {"negative_slope": 0.3}), ("elu", {"alpha": 0.4})])
def test_network_parity_activation_params(name, params, dtype):
    spec = make_spec([name, name, "identity"], loss="mse", dtype=dtype)
    raw = spec.to_dict()
    for layer in raw["layers"][:2]:
        layer["activation_params"] = params
    run_check(type(spec).from_dict(raw), batch=4)


# --------------------------------------------------------------------------------------- kinks

# x @ W0 + b0 is exactly 0 in row 0 for every unit (products and sums of dyadic numbers are exact),
# and positive or negative in the others: the kinks are hit exactly, in float64 and float32.
KINK_X = [[1.0, 2.0], [0.5, -1.0], [-1.0, 0.5]]
KINK_W0 = [[1.0, -2.0, 0.5], [-0.5, 1.0, 0.25]]
KINK_B0 = [0.0, 0.0, -1.0]
KINK_W1 = [[0.75, -1.5], [1.25, 0.5], [-0.25, 2.0]]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,params", [("relu", {}), ("leaky_relu", {}), ("leaky_relu", {"negative_slope": 0.25}),
                                         ("elu", {}), ("elu", {"alpha": 0.5}), ("step", {})])
def test_network_parity_kink_exact_zero(name, params, dtype):
    spec = explicit_spec([KINK_W0, KINK_W1], biases=[KINK_B0, [0.5, -0.5]], activations=[name, "identity"],
                         loss="mse", dtype=dtype, x=KINK_X, y=[[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]],
                         params=[params, {}])
    z0 = np.array(KINK_X) @ np.array(KINK_W0) + np.array(KINK_B0)
    assert np.array_equal(z0[0], np.zeros(3)), "the spec must put z exactly at 0"
    report = run_check(spec)
    # The gradient at z = 0 reached W0 through torch's one-sided convention: check it is not trivial.
    if name != "step":
        assert np.any(report["torch"]["grads"]["layers.0.weight"] != 0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_network_parity_kink_zero_in_last_layer(dtype):
    """relu as the output layer with z = 0 exactly, on the loss's gradient directly."""
    spec = explicit_spec([[[1.0, -1.0], [1.0, 1.0]]], biases=[[0.0, 0.0]], activations=["relu"],
                         loss="half_sse", dtype=dtype, x=[[1.0, -1.0], [1.0, 1.0]], y=[[1.0, -1.0], [0.0, 1.0]])
    report = run_check(spec)
    assert np.array_equal(report["scratch"]["output"], np.array([[0.0, 0.0], [2.0, 0.0]], dtype=dtype))


# ------------------------------------------------------------------------------------ extremes


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["sigmoid", "tanh", "gelu", "gelu_tanh"])
def test_network_parity_saturated_hundreds(name, dtype):
    """Pre-activations in the hundreds (±150, ±300, ±600): saturation in both dtypes."""
    w0 = [[150.0, -300.0, 600.0], [-150.0, 300.0, 2.0]]
    spec = explicit_spec([w0, [[0.5], [-0.25], [1.0]]], biases=[[0.0, 0.0, 0.0], [0.0]],
                         activations=[name, "identity"], loss="mse", dtype=dtype,
                         x=[[1.0, 0.0], [0.0, 1.0], [-1.0, 0.5]], y=[[0.5], [-0.5], [1.0]])
    report = run_check(spec)
    for grads in report["scratch"]["grads"].values():
        assert np.all(np.isfinite(grads))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_network_parity_softmax_cce_logits_near_1000(reduction, dtype):
    """An identity output whose weights put the logits at ±1000: log-softmax without overflow."""
    spec = explicit_spec([[[1000.0, 999.0, -1000.0], [-1000.0, 999.5, 1000.0]]], biases=[[0.0, 0.0, 0.0]],
                         loss="softmax_cce", reduction=reduction, dtype=dtype,
                         x=[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], y=[1, 0, 2])
    report = run_check(spec)
    assert report["scratch"]["loss"] > 300


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("loss,output", [("softmax_cce", "identity"), ("cce", "softmax")])
def test_network_parity_probability_targets(loss, output, reduction, dtype):
    """Inline probability targets, rows summing to 1, less than 1 and more than 1."""
    spec = make_spec(["tanh", output], loss=loss, reduction=reduction, dtype=dtype, seed=4)
    x = np.random.default_rng(5).normal(size=(3, 3))
    y = np.array([[0.2, 0.3, 0.5], [0.5, 0.0, 0.0], [0.9, 0.6, 0.3]])
    run_check(spec, x=x, y=y)


@pytest.mark.parametrize("dtype", DTYPES)
def test_network_parity_softmax_output_saturated(dtype):
    spec = explicit_spec([[[500.0, -500.0, 0.0]]], biases=[[0.0, 0.0, 0.0]], activations=["softmax"],
                         loss="cce", dtype=dtype, x=[[1.0], [-1.0], [0.001]], y=[0, 1, 2])
    run_check(spec)


# ---------------------------------------------------------------------------------- hypothesis


@st.composite
def random_specs(draw):
    depth = draw(st.integers(1, 4))
    loss = draw(st.sampled_from(sorted(LOSSES)))
    reduction = draw(st.sampled_from(LOSSES[loss].reductions))
    names = sorted(ACTIVATIONS)
    activations = [draw(st.sampled_from(names)) for _ in range(depth - 1)]
    activations.append(draw(st.sampled_from([a for a in names if fits(a, loss)])))
    widths = [draw(st.integers(1, 5)) for _ in range(depth + 1)]
    if activations[-1] == "softmax" or loss in ("cce", "softmax_cce"):
        widths[-1] = max(widths[-1], 2)
    spec = make_spec(activations, loss=loss, reduction=reduction, widths=widths,
                     dtype=draw(st.sampled_from(DTYPES)), seed=draw(st.integers(0, 2**16)),
                     init=draw(st.sampled_from(["xavier_uniform", "xavier_normal", "he_uniform", "torch_default"])),
                     use_bias=draw(st.booleans()))
    return spec, draw(st.integers(1, 6))


@settings(max_examples=80, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(random_specs())
def test_network_parity_hypothesis(case):
    spec, batch = case
    report = check(spec, batch=batch)
    assert_parity(report)
    assert report["tol"] == CHECK_TOL[spec.dtype]


def test_network_backward_lets_go_of_the_step():
    """As torch's backward: once a layer is done, the input forward saved for it is released (a
    large network holds no activations between steps); the gradients are the same either way."""
    from scratch.network import Network, build_loss

    spec = make_spec(["relu", "identity"], "softmax_cce")
    net, loss = Network.from_spec(spec), build_loss(spec)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(4, spec.inputs)), rng.integers(0, spec.layers[-1].units, size=4)
    net.loss_and_gradients(x, y, loss)
    first = {name: g.copy() for name, g in net.gradients().items()}
    assert all(layer.x is None for layer in net.layers)
    net.loss_and_gradients(x, y, loss)   # a new forward: the same gradients again
    for name, g in net.gradients().items():
        assert np.array_equal(g, first[name]), name
