"""Tests the mutation check of the image layers' backward passes asked for (tools/mutate.py over
conv.py, pooling.py, normalization.py, dropout.py, residual.py and windows.py): each kills mutants
the parity tests let through.

Equivalent survivors (no test can kill them, named in the README's mutation paragraph):
- a freshly allocated gradient buffer (``xp.empty`` in Conv2d.backward, ``padded_zeros`` in the
  pools' backward) scaled by 2 or ½: the matrix product or the sum overwrites it, zeros stay zero;
- a reshape's ``-1`` turned into ``-2`` (NumPy reads any negative size as the one it infers);
- LayerNorm.backward's shape for γ with fewer leading ones (broadcasting aligns the trailing
  dimensions alike).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import assert_close, assert_no_input_gradient_changes_nothing, assert_parity
from scratch.initializers import initial_buffers, initial_parameters
from scratch.network import Network, build_loss
from scratch.spec import parse_spec
from torch_ref.check import check
from torch_ref.model import build, build_loss as torch_loss, gradients_to_scratch

NORMS = {"batchnorm-image": ([3, 4, 4], {"kind": "batchnorm"}),
         "batchnorm-features": ([6], {"kind": "batchnorm"}),
         "layernorm-image": ([3, 4, 4], {"kind": "layernorm"}),
         "layernorm-hw": ([3, 4, 4], {"kind": "layernorm", "dims": 2})}


def _pass_with(spec, params, buffers, mode, x, y):
    """scratch's and torch's gradients (dL/dx under "input") of one pass from the same parameters and buffers."""
    net = Network.from_spec(spec, params=params, buffers=buffers).train(mode == "train")
    loss = build_loss(spec)
    loss.forward(net.forward(x), y)
    ours = dict(net.gradients(), input=net.backward(loss.backward()))
    model = build(spec, params=params, buffers=buffers).train(mode == "train")
    xt = torch.tensor(x, requires_grad=True)
    torch_loss(spec)(model(xt), torch.tensor(y)).backward()
    return ours, dict(gradients_to_scratch(model), input=xt.grad.numpy())


@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("case", list(NORMS))
def test_image_mutation_gaps_normalization_with_its_own_affine_and_statistics(case, mode):
    """γ ≠ 1, β ≠ 0 and running statistics ≠ (0, 1), drawn at random: dL/dx goes through γ (ĝ = γ ⊙ dL/dz)
    and, in eval mode, through the running σ. At their initial values (γ = 1, running var = 1) a
    backward that drops γ or σ agrees with torch anyway."""
    shape, norm = NORMS[case]
    first = {"kind": "conv2d", "out_channels": 3, "kernel": 3, "padding": 1} if len(shape) == 3 else \
        {"units": 6, "inputs": 6}
    spec = parse_spec({"seed": 2, "input_shape": shape, "layers": [first, norm, {"kind": "flatten"}, {"units": 3}],
                       "loss": {"name": "softmax_cce"}})
    rng = np.random.default_rng(7)
    params = initial_parameters(spec)
    params["layers.1.weight"] = rng.uniform(0.3, 2.5, size=params["layers.1.weight"].shape)
    params["layers.1.bias"] = rng.normal(size=params["layers.1.bias"].shape)
    buffers = initial_buffers(spec)
    if "layers.1.running_var" in buffers:
        buffers["layers.1.running_mean"] = rng.normal(size=buffers["layers.1.running_mean"].shape)
        buffers["layers.1.running_var"] = rng.uniform(0.2, 4.0, size=buffers["layers.1.running_var"].shape)
    x, y = rng.normal(size=(5, *shape)), rng.integers(0, 3, size=5)
    ours, theirs = _pass_with(spec, params, buffers, mode, x, y)
    for name in ("layers.1.weight", "layers.1.bias", "layers.0.weight", "input"):
        assert_close(ours[name], theirs[name], "float64", what=f"{case} {mode} {name}")


FIRST_LAYERS = {"dropout": {"kind": "dropout", "p": 0.3}, "batchnorm": {"kind": "batchnorm"},
                "layernorm": {"kind": "layernorm"}, "maxpool2d": {"kind": "maxpool2d", "kernel": 2},
                "avgpool2d": {"kind": "avgpool2d", "kernel": 2}, "flatten": {"kind": "flatten"},
                "global_avgpool": {"kind": "global_avgpool"}, "conv2d": {"kind": "conv2d", "out_channels": 2, "kernel": 3},
                "residual": {"kind": "residual", "projection": True,
                             "body": [{"kind": "conv2d", "out_channels": 2, "kernel": 3, "padding": 1}]}}


@pytest.mark.parametrize("kind", list(FIRST_LAYERS))
def test_image_mutation_gaps_first_layer_without_input_gradient(kind):
    """A training step asks the first layer for no dL/dx (``input_grad=False``): it returns None and
    leaves every parameter gradient as a pass that computes dL/dx does."""
    spec = parse_spec({"seed": 4, "input_shape": [2, 4, 4], "layers": [
        FIRST_LAYERS[kind], {"kind": "flatten"}, {"units": 3}], "loss": {"name": "softmax_cce"}})
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(3, 2, 4, 4)), rng.integers(0, 3, size=3)
    assert_no_input_gradient_changes_nothing(spec, x, y)


@pytest.mark.parametrize("dilation", [[1, 2], [2, 3]], ids=["width", "both"])
def test_image_mutation_gaps_conv_dilated_along_the_width(dilation):
    """A kernel spread along the width as well as the height: each offset's columns start at j·d_w."""
    spec = parse_spec({"seed": 6, "input_shape": [2, 7, 9], "layers": [
        {"kind": "conv2d", "out_channels": 3, "kernel": [2, 3], "dilation": dilation, "padding": [1, 1],
         "activation": "tanh"},
        {"kind": "flatten"}, {"units": 3}], "loss": {"name": "softmax_cce"}})
    assert_parity(check(spec, batch=3))
