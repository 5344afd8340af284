"""Whole networks: the first wrong layer is named, and a user's op named in a spec by import path
works on both sides (nnparity check, training with scratch and with torch)."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
for _p in (str(REPO), str(REPO / "parity_tests")):
    if _p not in sys.path:
        sys.path.append(_p)

import planted_ops  # noqa: E402
from conftest import TRAJECTORY_TOL, assert_parity  # noqa: E402
from scratch.losses import MSE  # noqa: E402
from scratch.network import Network  # noqa: E402
from scratch.spec import SpecError, parse_spec  # noqa: E402
from torch_ref.check import check  # noqa: E402
from nnparity.verify.autograd.layerwise import first_wrong_layer  # noqa: E402


def four_layers(activations=("tanh", "tanh", "tanh", "tanh"), loss="mse", **extra):
    layers = [{"units": 4, "activation": a} for a in activations]
    layers[0]["inputs"] = 3
    layers[-1]["units"] = 2
    return parse_spec({"seed": 1, "layers": layers, "loss": {"name": loss}, **extra})


def test_a_correct_network_agrees_layer_by_layer():
    report = first_wrong_layer(four_layers(("tanh", "examples.custom_ops:Swish", "sigmoid", "identity")))
    assert report.ok, report.format()
    assert [r.name for r in report.rows[:5]] == ["dL/d(output)", "layers.3.dL/dz", "layers.3.dL/dW",
                                                 "layers.3.dL/db", "layers.3.dL/d(input)"]
    assert len(report.rows) == 1 + 4 * 4 and all(r.ok for r in report.rows)


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_a_wrong_activation_in_layer_k_is_named(k):
    """A user subclass of scratch's Tanh with backward × 2, named in the spec, in layer k of 4."""
    acts = ["tanh"] * 4
    acts[k - 1] = "planted_ops:TanhDouble"
    report = first_wrong_layer(four_layers(acts))
    wrong = report.first_wrong
    assert (wrong["layer"], wrong["part"]) == (k - 1, "activation"), report.format()
    assert wrong["message"].startswith(f"layers.{k - 1} (layer {k} of 4): the backward of its activation "
                                       f"'planted_ops:TanhDouble'")
    assert wrong["diagnosis"].startswith("off by a constant factor 2")
    first = next(i for i, r in enumerate(report.rows) if not r.ok)
    assert all(r.ok for r in report.rows[:first]) and report.rows[first].name == f"layers.{k - 1}.dL/dz"
    assert f"FAIL: layers.{k - 1} (layer {k} of 4)" in report.format()


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_a_wrong_dense_backward_in_layer_k_is_named(k):
    """A user subclass of scratch's Dense (bias gradient averaged, not summed) put into layer k."""
    spec = four_layers()
    net = Network.from_spec(spec)
    old = net.layers[k - 1]
    net.layers[k - 1] = planted_ops.DenseBiasMean(old.weight, old.bias)
    report = first_wrong_layer(spec, net=net)
    wrong = report.first_wrong
    assert (wrong["layer"], wrong["part"], wrong["tensor"]) == (k - 1, "dense", f"layers.{k - 1}.dL/db")
    assert wrong["diagnosis"].startswith("averaged over the batch where the sum is needed (got = expected / 4")


class HalfMSE(MSE):
    """A user's MSE whose gradient is ½·MSE's."""

    def backward(self):
        return 0.5 * super().backward()


def test_a_wrong_loss_gradient_is_named_before_any_layer():
    report = first_wrong_layer(four_layers(), loss=HalfMSE())
    assert report.first_wrong["part"] == "loss" and report.first_wrong["tensor"] == "dL/d(output)"
    # N = 4 rows, C = 2 outputs: ½ is also 1/C, and the diagnosis gives both readings
    assert "off by a constant factor ½" in report.first_wrong["diagnosis"]


def test_a_forward_mismatch_is_reported_before_gradients():
    report = first_wrong_layer(four_layers(("tanh", "planted_ops:SwishWrongTwin", "tanh", "tanh")))
    assert report.first_wrong["part"] == "forward" and report.first_wrong["layer"] == 1
    assert report.rows == []


def test_class_index_targets_and_inline_data_work():
    spec = four_layers(("tanh", "examples.custom_ops:Softplus", "tanh", "identity"), loss="softmax_cce",
                       data={"x": [[0.1, 0.2, 0.3], [1.0, -1.0, 0.5]], "y": [0, 1]})
    assert first_wrong_layer(spec).ok


# ------------------------------------------------------------------------- custom ops in specs


def test_custom_ops_pass_nnparity_check_in_a_spec():
    spec = four_layers(("examples.custom_ops:Swish", "examples.custom_ops:Softplus", "tanh",
                        "examples.custom_ops:Softmax"), loss="cce")
    assert_parity(check(spec))
    assert_parity(check(spec, dtype="float32"))


def test_training_with_a_custom_op_agrees_on_both_sides():
    from scratch.training import train as train_scratch
    from torch_ref.training import train as train_torch

    spec = parse_spec({
        "seed": 0,
        "layers": [{"inputs": 2, "units": 4, "activation": "examples.custom_ops:Swish"},
                   {"units": 1, "activation": "examples.custom_ops:Softplus"}],
        "loss": {"name": "mse"}, "optimizer": {"name": "sgd", "lr": 0.1},
        "data": {"name": "xor"}, "train": {"epochs": 30},
    })
    ours, theirs = train_scratch(spec), train_torch(spec)
    losses_a, losses_b = np.array(ours.history.step_loss), np.array(theirs.history.step_loss)
    assert len(losses_a) == 30
    assert np.linalg.norm(losses_a - losses_b) / np.linalg.norm(losses_b) <= TRAJECTORY_TOL
    for name, value in ours.params.items():
        ref = theirs.params[name]
        assert np.linalg.norm(value - ref) / np.linalg.norm(ref) <= TRAJECTORY_TOL, name


@pytest.mark.parametrize("activation, message", [
    ("no_such_pkg.ops:Swish", "cannot import 'no_such_pkg.ops:Swish' (ModuleNotFoundError"),
    (":Swish", "cannot import ':Swish' (ValueError"),
    ("examples.custom_ops:Nope", "cannot import 'examples.custom_ops:Nope' (AttributeError"),
    ("planted_ops:NoBackward", "has no forward/backward methods"),
])
def test_spec_validation_names_an_unresolvable_op(activation, message):
    with pytest.raises(SpecError) as err:
        four_layers((activation, "tanh", "tanh", "tanh"))
    assert str(err.value).startswith("layers[0].activation: ") and message in str(err.value)


def test_a_user_op_without_torch_twin_is_a_spec_error_on_the_torch_side():
    spec = four_layers(("planted_ops:SigmoidAstype", "tanh", "tanh", "tanh"))
    with pytest.raises(SpecError, match="needs a torch_module"):
        check(spec)
