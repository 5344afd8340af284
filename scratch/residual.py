"""Residual blocks, and the naming of what a layer holds (parameters, gradients, buffers) when one
layer holds others."""
from __future__ import annotations

import numpy as np

from scratch.activations import make_activation
from scratch.conv import Conv2d
from scratch.layers import Dense


def layer_arrays(layer, prefix: str = "") -> dict:
    """name -> the layer's attribute ``<prefix><name>`` for each parameter it has (prefix "": the
    parameters, "grad_": their gradients); a block's inner layers as ``body.<j>.<name>``."""
    nested = getattr(layer, "named_arrays", None)
    if nested is not None:
        return nested(prefix)
    names = getattr(layer, "params", ("weight", "bias"))   # a user's Dense-like layer: as Dense
    return {name: getattr(layer, prefix + name) for name in names if getattr(layer, name) is not None}


def layer_buffers(layer) -> dict:
    """name -> the layer's live buffer (running statistics, dropout's draw count)."""
    nested = getattr(layer, "named_buffers", None)
    if nested is not None:
        return nested()
    return {name: getattr(layer, name) for name in getattr(layer, "buffers", ())}


def bind_gradient(layer, name: str, array) -> None:
    """Give the layer the array its backward writes the gradient of parameter ``name`` into."""
    head, _, rest = name.partition(".")
    if rest:
        layer.bind_gradient(name, array)
    else:
        setattr(layer, f"grad_{head}", array)


def set_training(layer, mode: bool) -> None:
    if hasattr(layer, "training"):
        layer.training = mode


class Residual:
    """z = f(x) + s(x): f the body's layers and activations in turn, s the identity or, with a
    projection, P x (a bias-free 1x1 convolution, strided, or a bias-free dense layer).

    Backward, g = dL/dz: the body's backward from g gives its parameters' gradients and dL/dx
    through f; the skip adds g (identity) or Pᵀ g (the projection's backward, which also gives
    dL/dP): dL/dx = J_fᵀ g + J_sᵀ g.
    Torch twin: torch_ref.model.ResidualBlock, x ↦ body(x) + (x or projection(x)) from torch's modules.
    """

    def __init__(self, body: list, activations: list, projection=None, xp=np):
        self.xp, self.body, self.activations, self.projection = xp, body, activations, projection

    takes_state = True   # from_spec takes the layer's buffers, input shape and the layer builder too

    @classmethod
    def from_spec(cls, layer_spec, params: dict, xp=np, buffers: dict | None = None, in_shape=None,
                  build=None) -> "Residual":
        """``build(layer_spec, params, buffers, xp, in_shape)``: scratch.network.build_layer."""
        buffers, shapes = buffers or {}, layer_spec.body_shapes(in_shape, "")
        body, activations = [], []
        for j, inner in enumerate(layer_spec.body):
            prefix = f"body.{j}."
            body.append(build(inner, _under(params, prefix), _under(buffers, prefix), xp, shapes[j]))
            activations.append(make_activation(inner.activation, inner.activation_params, xp=xp,
                                               field=f"body[{j}].activation"))
        projection = None
        if layer_spec.projection:
            weight = params["projection.weight"]
            if weight.ndim == 2:
                projection = Dense(weight, None, xp=xp)
            else:
                stride = layer_spec.projection_stride(in_shape, shapes[-1], "")
                projection = Conv2d(weight, None, stride=stride, xp=xp)
        return cls(body, activations, projection, xp=xp)

    @property
    def training(self) -> bool:
        return all(getattr(layer, "training", True) for layer in self.body)

    @training.setter
    def training(self, mode: bool) -> None:
        for layer in self.body:
            set_training(layer, mode)

    def name_stream(self, seed: int, name: str) -> None:
        for j, layer in enumerate(self.body):
            if hasattr(layer, "name_stream"):
                layer.name_stream(seed, f"{name}.body.{j}")

    def _parts(self) -> list:
        parts = [(f"body.{j}.", layer) for j, layer in enumerate(self.body)]
        return parts + ([("projection.", self.projection)] if self.projection is not None else [])

    def named_arrays(self, prefix: str = "") -> dict:
        return {head + name: a for head, layer in self._parts() for name, a in layer_arrays(layer, prefix).items()}

    def named_buffers(self) -> dict:
        return {head + name: a for head, layer in self._parts() for name, a in layer_buffers(layer).items()}

    def bind_gradient(self, name: str, array) -> None:
        head, _, rest = name.partition(".")
        if head == "projection":
            bind_gradient(self.projection, rest, array)
        else:
            index, _, rest = rest.partition(".")
            bind_gradient(self.body[int(index)], rest, array)

    def release(self) -> None:
        for _, layer in self._parts():
            layer.release()

    def forward(self, x):
        h = x
        for layer, activation in zip(self.body, self.activations):
            h = activation.forward(layer.forward(h))
        skip = x if self.projection is None else self.projection.forward(x)
        return h + skip

    def backward(self, grad_out, input_grad: bool = True):
        grad = grad_out
        for j in reversed(range(len(self.body))):
            grad = self.body[j].backward(self.activations[j].backward(grad), input_grad=input_grad or j > 0)
        if self.projection is not None:
            skip = self.projection.backward(grad_out, input_grad=input_grad)
        else:
            skip = grad_out
        return grad + skip if input_grad else None


def _under(named: dict, prefix: str) -> dict:
    return {name[len(prefix):]: value for name, value in named.items() if name.startswith(prefix)}

