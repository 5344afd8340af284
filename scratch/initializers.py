"""Seeded initializers for a layer's weight and bias: a dense layer's (inputs, units) and (units,),
a conv2d's (out_channels, in_channels / groups, kh, kw) and (out_channels,).

Each initializer takes the weight's fans as torch computes them (``inputs`` = fan_in, ``units``
= fan_out: a dense layer's widths; for a conv weight C/groups·kh·kw and O·kh·kw) and draws the
weight's ``shape`` (default (inputs, units)).

Weights are always drawn in float64 from one ``numpy.random.Generator`` seeded by the spec and
then cast, so a float32 network starts from the rounded float64 weights. torch_ref copies these
values into its nn.Linear layers: parity never rests on two random generators agreeing.
"""
from __future__ import annotations

import math

import numpy as np


def zeros(rng, inputs, units, scale, shape=None):
    """W = 0."""
    return np.zeros(shape or (inputs, units))


def normal(rng, inputs, units, scale, shape=None):
    """W ~ N(0, scale²), scale defaulting to 0.01."""
    return rng.normal(0.0, 0.01 if scale is None else scale, size=shape or (inputs, units))


def uniform(rng, inputs, units, scale, shape=None):
    """W ~ U(-scale, scale), scale defaulting to 0.05."""
    bound = 0.05 if scale is None else scale
    return rng.uniform(-bound, bound, size=shape or (inputs, units))


def xavier_normal(rng, inputs, units, scale, shape=None):
    """Glorot: W ~ N(0, 2/(fan_in + fan_out)) (torch.nn.init.xavier_normal_)."""
    return rng.normal(0.0, math.sqrt(2.0 / (inputs + units)), size=shape or (inputs, units))


def xavier_uniform(rng, inputs, units, scale, shape=None):
    """Glorot: W ~ U(±√(6/(fan_in + fan_out))) (torch.nn.init.xavier_uniform_)."""
    bound = math.sqrt(6.0 / (inputs + units))
    return rng.uniform(-bound, bound, size=shape or (inputs, units))


def he_normal(rng, inputs, units, scale, shape=None):
    """He/Kaiming: W ~ N(0, 2/fan_in) (torch.nn.init.kaiming_normal_, relu gain)."""
    return rng.normal(0.0, math.sqrt(2.0 / inputs), size=shape or (inputs, units))


def he_uniform(rng, inputs, units, scale, shape=None):
    """He/Kaiming: W ~ U(±√(6/fan_in)) (torch.nn.init.kaiming_uniform_, relu gain)."""
    bound = math.sqrt(6.0 / inputs)
    return rng.uniform(-bound, bound, size=shape or (inputs, units))


def torch_default(rng, inputs, units, scale, shape=None):
    """What nn.Linear.reset_parameters does: kaiming_uniform(a=√5), i.e. W ~ U(±1/√fan_in)."""
    bound = 1.0 / math.sqrt(inputs)
    return rng.uniform(-bound, bound, size=shape or (inputs, units))


INITIALIZERS = {f.__name__: f for f in (zeros, normal, uniform, xavier_normal, xavier_uniform,
                                         he_normal, he_uniform, torch_default)}


def initial_parameters(spec) -> dict[str, np.ndarray]:
    """Draw every layer's parameters, in spec.dtype, named ``layers.<i>.<name>`` (a residual
    block's ``layers.<i>.body.<j>.<name>``), layer by layer from one generator (layers without
    parameters draw nothing).

    Explicit ``weight``/``bias`` values in the spec are used as given. Biases start at zero except
    under torch_default, where nn.Linear and nn.Conv2d draw them from U(±1/√fan_in) too. A kind with
    its own starting values (``initial_values``: normalization's weight 1 and bias 0, a residual
    block's body) gives them itself.
    """
    rng = np.random.default_rng(spec.seed)
    dtype = np.dtype(spec.dtype)
    params: dict[str, np.ndarray] = {}
    for i, (layer, in_shape) in enumerate(zip(spec.layers, spec.shapes)):
        params.update({f"layers.{i}.{name}": value.astype(dtype)
                       for name, value in draw_layer(layer, in_shape, rng).items()})
    return params


def draw_layer(layer, in_shape, rng) -> dict[str, np.ndarray]:
    """One layer's parameters in float64, drawn from ``rng``."""
    own = getattr(layer, "initial_values", None)
    if own is not None:
        return own(rng, in_shape, draw_layer)
    shapes = layer.parameter_shapes(in_shape)
    if not shapes:
        return {}
    fan_in, fan_out = layer.fans(in_shape)
    weight = INITIALIZERS[layer.init](rng, fan_in, fan_out, layer.init_scale, shape=shapes["weight"])
    if getattr(layer, "weight", None) is not None:
        weight = np.array(layer.weight, dtype=float)
    values = {"weight": weight}
    if "bias" in shapes:
        if getattr(layer, "bias", None) is not None:
            values["bias"] = np.array(layer.bias, dtype=float)
        elif layer.init == "torch_default":
            bound = 1.0 / math.sqrt(fan_in)
            values["bias"] = rng.uniform(-bound, bound, size=shapes["bias"])
        else:
            values["bias"] = np.zeros(shapes["bias"])
    return values


def initial_buffers(spec) -> dict[str, np.ndarray]:
    """Every layer's buffers as torch starts them: running means 0, running variances 1, counts 0
    (int64 scalars), named as the parameters are."""
    dtype = np.dtype(spec.dtype)
    buffers = {}
    for i, (layer, in_shape) in enumerate(zip(spec.layers, spec.shapes)):
        for name, shape in getattr(layer, "buffer_shapes", lambda s: {})(in_shape).items():
            if isinstance(shape, str):
                buffers[f"layers.{i}.{name}"] = np.zeros((), dtype=np.dtype(shape))
            else:
                fill = np.ones if name.endswith("running_var") else np.zeros
                buffers[f"layers.{i}.{name}"] = fill(shape, dtype=dtype)
    return buffers
