"""Seeded initializers for a Dense layer's weight (inputs, units) and bias (units,).

Weights are always drawn in float64 from one ``numpy.random.Generator`` seeded by the spec and
then cast, so a float32 network starts from the rounded float64 weights. torch_ref copies these
values into its nn.Linear layers: parity never rests on two random generators agreeing.
"""
from __future__ import annotations

import math

import numpy as np


def zeros(rng, inputs, units, scale):
    """W = 0."""
    return np.zeros((inputs, units))


def normal(rng, inputs, units, scale):
    """W ~ N(0, scale²), scale defaulting to 0.01."""
    return rng.normal(0.0, 0.01 if scale is None else scale, size=(inputs, units))


def uniform(rng, inputs, units, scale):
    """W ~ U(-scale, scale), scale defaulting to 0.05."""
    bound = 0.05 if scale is None else scale
    return rng.uniform(-bound, bound, size=(inputs, units))


def xavier_normal(rng, inputs, units, scale):
    """Glorot: W ~ N(0, 2/(fan_in + fan_out)) (torch.nn.init.xavier_normal_)."""
    return rng.normal(0.0, math.sqrt(2.0 / (inputs + units)), size=(inputs, units))


def xavier_uniform(rng, inputs, units, scale):
    """Glorot: W ~ U(±√(6/(fan_in + fan_out))) (torch.nn.init.xavier_uniform_)."""
    bound = math.sqrt(6.0 / (inputs + units))
    return rng.uniform(-bound, bound, size=(inputs, units))


def he_normal(rng, inputs, units, scale):
    """He/Kaiming: W ~ N(0, 2/fan_in) (torch.nn.init.kaiming_normal_, relu gain)."""
    return rng.normal(0.0, math.sqrt(2.0 / inputs), size=(inputs, units))


def he_uniform(rng, inputs, units, scale):
    """He/Kaiming: W ~ U(±√(6/fan_in)) (torch.nn.init.kaiming_uniform_, relu gain)."""
    bound = math.sqrt(6.0 / inputs)
    return rng.uniform(-bound, bound, size=(inputs, units))


def torch_default(rng, inputs, units, scale):
    """What nn.Linear.reset_parameters does: kaiming_uniform(a=√5), i.e. W ~ U(±1/√fan_in)."""
    bound = 1.0 / math.sqrt(inputs)
    return rng.uniform(-bound, bound, size=(inputs, units))


INITIALIZERS = {f.__name__: f for f in (zeros, normal, uniform, xavier_normal, xavier_uniform,
                                         he_normal, he_uniform, torch_default)}


def initial_parameters(spec) -> dict[str, np.ndarray]:
    """Draw every layer's weight and bias, in spec.dtype, named ``layers.<i>.weight`` / ``.bias``.

    Explicit ``weight``/``bias`` values in the spec are used as given. Biases start at zero except
    under torch_default, where nn.Linear draws them from U(±1/√fan_in) too.
    """
    rng = np.random.default_rng(spec.seed)
    dtype = np.dtype(spec.dtype)
    params: dict[str, np.ndarray] = {}
    for i, layer in enumerate(spec.layers):
        weight = INITIALIZERS[layer.init](rng, layer.inputs, layer.units, layer.init_scale)
        if layer.weight is not None:
            weight = np.array(layer.weight, dtype=float)
        params[f"layers.{i}.weight"] = weight.astype(dtype)
        if layer.use_bias:
            if layer.bias is not None:
                bias = np.array(layer.bias, dtype=float)
            elif layer.init == "torch_default":
                bound = 1.0 / math.sqrt(layer.inputs)
                bias = rng.uniform(-bound, bound, size=layer.units)
            else:
                bias = np.zeros(layer.units)
            params[f"layers.{i}.bias"] = bias.astype(dtype)
    return params
