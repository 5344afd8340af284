"""Network: layers of every kind (LAYER_CLASSES) and their activations, built from a spec.

Forward keeps, in each op, what its backward needs; backward runs the ops in reverse and leaves
every parameter's gradient on its layer. Parameters and gradients are named
``layers.<i>.<name>``: a dense layer's ``weight`` (inputs, units) and ``bias`` (units,), a
conv2d's ``weight`` (out_channels, in_channels / groups, kh, kw) and ``bias`` (out_channels,).
"""
from __future__ import annotations

import numpy as np

from scratch.activations import Activation, make_activation
from scratch.conv import Conv2d
from scratch.initializers import initial_parameters
from scratch.layers import Dense
from scratch.losses import Loss, make_loss
from scratch.packed import pack, still_packed
from scratch.pooling import AvgPool2d, GlobalAvgPool, MaxPool2d
from scratch.reshape import Flatten

# The scratch layer of each kind a spec names (scratch.layer_kinds.KINDS): each has ``params``
# (the names of its parameter attributes, gradients in ``grad_<name>``), ``from_spec``, ``forward``,
# ``backward(grad_out, input_grad)`` and ``release`` (let go of what forward kept).
LAYER_CLASSES = {"dense": Dense, "conv2d": Conv2d, "maxpool2d": MaxPool2d, "avgpool2d": AvgPool2d,
                 "flatten": Flatten, "global_avgpool": GlobalAvgPool}


class Network:
    """A stack of layers: a_0 = x; z_i = layer_i(a_{i-1}); a_i = f_i(z_i) (for dense layers
    z_i = a_{i-1} @ W_i + b_i: a multilayer perceptron).

    Backward: g_L = dL/da_L from the loss; dL/dz_i = f_i'(z_i) ⊙ g_i (a Jacobian-vector product
    for row-wise f); each layer's backward turns dL/dz_i into its parameters' gradients and
    g_{i-1} = dL/da_{i-1} (dense: dL/dW_i = a_{i-1}ᵀ @ dL/dz_i; g_{i-1} = dL/dz_i @ W_iᵀ).
    Torch twin: torch_ref.model.TorchNetwork (torch's layer and activation modules).
    """

    def __init__(self, layers: list, activations: list[Activation], xp=np):
        if len(layers) != len(activations):
            raise ValueError("one activation per layer")
        self.layers = layers
        self.activations = activations
        self.xp = xp
        self._packed_params = self._packed_grads = None

    @classmethod
    def from_spec(cls, spec, xp=np, params: dict | None = None) -> "Network":
        """Build the network the spec describes, with its seeded initial weights (or ``params``).

        Its parameters, and the gradients backward writes, each live in one buffer (scratch/packed.py),
        so an optimizer updates all of them in one pass.
        """
        params = initial_parameters(spec) if params is None else params
        classes = [LAYER_CLASSES[layer.kind] for layer in spec.layers]
        names = [f"layers.{i}.{name}" for i, layer_class in enumerate(classes) for name in layer_class.params
                 if f"layers.{i}.{name}" in params]
        arrays = {name: xp.asarray(params[name]) for name in names}
        packed = len({a.dtype for a in arrays.values()}) == 1
        live = pack(arrays, xp) if packed else {name: a.copy() for name, a in arrays.items()}
        layers, activations = [], []
        for i, (layer, layer_class) in enumerate(zip(spec.layers, classes)):
            own = {name: live[f"layers.{i}.{name}"] for name in layer_class.params if f"layers.{i}.{name}" in live}
            layers.append(layer_class.from_spec(layer, own, xp=xp))
            activations.append(make_activation(layer.activation, layer.activation_params, xp=xp,
                                               field=f"layers[{i}].activation"))
        net = cls(layers, activations, xp=xp)
        if packed:
            net._packed_params = live
            net._packed_grads = grads = pack(arrays, xp, copy=False)   # zeros until the first backward
            for i, layer in enumerate(layers):
                for name in layer.params:
                    setattr(layer, f"grad_{name}", grads.get(f"layers.{i}.{name}"))
        return net

    # ------------------------------------------------------------------------------ passes

    def forward_trace(self, x) -> tuple[object, list]:
        """Run forward; return the output and every layer's activation a_i (the last is the output)."""
        trace = []
        a = x
        for layer in self.layers:   # the last pass's saved inputs go first, not after the new ones exist
            _release(layer)
        for layer, activation in zip(self.layers, self.activations):
            a = activation.forward(layer.forward(a))
            trace.append(a)
        return a, trace

    def forward(self, x):
        return self.forward_trace(x)[0]

    __call__ = forward

    def backward(self, grad_out, input_grad: bool = True):
        """Given dL/d(output), store every parameter gradient and return dL/dx.

        ``input_grad=False`` (a training step): skip dL/dx, the first layer's costliest product
        that no update uses, and return None.

        As torch's backward (without retain_graph), it lets go of the layer inputs forward kept,
        each as soon as its layer is done, so they are not held through the rest of the step:
        another backward needs another forward.
        """
        grad = grad_out
        last = len(self.layers) - 1
        for i, (layer, activation) in enumerate(zip(reversed(self.layers), reversed(self.activations))):
            grad = layer.backward(activation.backward(grad), input_grad=input_grad or i < last)
            _release(layer)
        return grad

    def loss_and_gradients(self, x, y, loss: Loss):
        """One forward and backward: returns (loss value, dL/dx); parameter gradients stay on the layers."""
        value = loss.forward(self.forward(x), y)
        grad_x = self.backward(loss.backward())
        return value, grad_x

    # -------------------------------------------------------------------------- parameters

    def parameters(self) -> dict:
        """Named parameters (the live arrays: an optimizer updates them in place)."""
        return still_packed(self._named(""), self._packed_params)

    def gradients(self) -> dict:
        """Named gradients from the last backward, keyed as parameters()."""
        return still_packed(self._named("grad_"), self._packed_grads)

    def _named(self, prefix: str) -> dict:
        """layers.<i>.<name> -> the layer's attribute <prefix><name>, for each parameter it has."""
        return {f"layers.{i}.{name}": getattr(layer, prefix + name) for i, layer in enumerate(self.layers)
                for name in _param_names(layer) if getattr(layer, name) is not None}

    def load_parameters(self, params: dict) -> None:
        """Copy values into the live parameters (shapes must match)."""
        for name, value in self.parameters().items():
            value[...] = self.xp.asarray(params[name], dtype=value.dtype)


def _param_names(layer) -> tuple[str, ...]:
    """A layer's parameter names; a layer object of the user's own, put into a network, is read as Dense."""
    return getattr(layer, "params", Dense.params)


def _release(layer) -> None:
    release = getattr(layer, "release", None)
    if release is None:   # a user's Dense-like layer keeps its input in x, as Dense
        layer.x = None
    else:
        release()


def build_loss(spec, xp=np) -> Loss:
    return make_loss(spec.loss.name, spec.loss.reduction, xp=xp)
