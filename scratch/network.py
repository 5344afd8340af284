"""Network: layers of every kind (LAYER_CLASSES) and their activations, built from a spec.

Forward keeps, in each op, what its backward needs; backward runs the ops in reverse and leaves
every parameter's gradient on its layer. Parameters and gradients are named
``layers.<i>.<name>``: a dense layer's ``weight`` (inputs, units) and ``bias`` (units,), a
conv2d's ``weight`` (out_channels, in_channels / groups, kh, kw) and ``bias`` (out_channels,),
a normalization's ``weight`` and ``bias``, a residual block's ``layers.<i>.body.<j>.<name>`` and
``layers.<i>.projection.weight``. Buffers (``buffers()``: running statistics, dropout's draw
count) are named alike.

Mode: ``train()`` (the default, as a torch module) and ``eval()``: batch normalization uses the
batch's statistics and updates its running ones in train mode, the running ones in eval mode;
dropout drops in train mode only.
"""
from __future__ import annotations

import numpy as np

from scratch.activations import Activation, make_activation
from scratch.attention import Attention
from scratch.conv import Conv2d
from scratch.initializers import initial_parameters
from scratch.layers import Dense
from scratch.losses import Loss, make_loss
from scratch.packed import pack, still_packed
from scratch.dropout import Dropout
from scratch.initializers import initial_buffers
from scratch.normalization import BatchNorm, LayerNorm
from scratch.pooling import AvgPool2d, GlobalAvgPool, MaxPool2d
from scratch.reshape import Flatten
from scratch.transformer import TransformerBlock
from scratch.embedding import Embedding, PositionalEmbedding
from scratch.readouts import SeqLast, SeqMean
from scratch.recurrent import GRU, LSTM, RNN
from scratch.residual import Residual, bind_gradient, layer_arrays, layer_buffers, set_training

# The scratch layer of each kind a spec names (scratch.layer_kinds.KINDS): each has ``params``
# (the names of its parameter attributes, gradients in ``grad_<name>``), ``from_spec``, ``forward``,
# ``backward(grad_out, input_grad)`` and ``release`` (let go of what forward kept).
# A class with ``takes_state`` also takes its ``buffers``, ``in_shape`` and ``build`` (build_layer) in from_spec.
LAYER_CLASSES = {"dense": Dense, "conv2d": Conv2d, "maxpool2d": MaxPool2d, "avgpool2d": AvgPool2d,
                 "flatten": Flatten, "global_avgpool": GlobalAvgPool, "batchnorm": BatchNorm,
                 "layernorm": LayerNorm, "dropout": Dropout, "residual": Residual, "embedding": Embedding,
                 "positional_embedding": PositionalEmbedding, "seq_last": SeqLast, "seq_mean": SeqMean,
                 "rnn": RNN, "lstm": LSTM, "gru": GRU,
                 "attention": Attention, "transformer": TransformerBlock}


def build_layer(layer_spec, params: dict, buffers: dict, xp, in_shape):
    """The scratch layer of ``layer_spec``, holding ``params`` and ``buffers`` (its own names)."""
    layer_class = LAYER_CLASSES[layer_spec.kind]
    if getattr(layer_class, "takes_state", False):
        return layer_class.from_spec(layer_spec, params, xp=xp, buffers=buffers, in_shape=in_shape,
                                     build=build_layer)
    return layer_class.from_spec(layer_spec, params, xp=xp)


def _buffer_array(value, dtype, xp):
    """A buffer from host data: running statistics on xp's device; counts (int64 scalars) on the
    host, where they are read to pick dropout's masks (drawn on the host) without a device read."""
    value = np.array(value, dtype=dtype)
    return value if dtype.kind == "i" else xp.asarray(value)


def _by_layer(named: dict, count: int) -> list[dict]:
    """``layers.<i>.<rest>`` -> one dict per layer, keyed by <rest>."""
    out = [{} for _ in range(count)]
    for name, value in named.items():
        _, index, rest = name.split(".", 2)
        out[int(index)][rest] = value
    return out


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
        self.training = True
        self._packed_params = self._packed_grads = None

    @classmethod
    def from_spec(cls, spec, xp=np, params: dict | None = None, buffers: dict | None = None) -> "Network":
        """Build the network the spec describes, with its seeded initial weights (or ``params``) and
        torch's initial buffers (or ``buffers``), in train mode.

        Its parameters, and the gradients backward writes, each live in one buffer (scratch/packed.py),
        so an optimizer updates all of them in one pass.
        """
        params = initial_parameters(spec) if params is None else params
        start = initial_buffers(spec)
        buffers = start if buffers is None else {name: buffers[name] for name in start}
        arrays = {name: xp.asarray(value) for name, value in params.items()}
        packed = len({a.dtype for a in arrays.values()}) == 1
        live = pack(arrays, xp) if packed else {name: a.copy() for name, a in arrays.items()}
        own_buffers = _by_layer({name: _buffer_array(value, start[name].dtype, xp)
                                 for name, value in buffers.items()}, len(spec.layers))
        layers, activations = [], []
        for i, (layer, own, in_shape) in enumerate(zip(spec.layers, _by_layer(live, len(spec.layers)), spec.shapes)):
            layers.append(build_layer(layer, own, own_buffers[i], xp, in_shape))
            if hasattr(layers[-1], "name_stream"):
                layers[-1].name_stream(spec.seed, f"layers.{i}")
            activations.append(make_activation(layer.activation, layer.activation_params, xp=xp,
                                               field=f"layers[{i}].activation"))
        net = cls(layers, activations, xp=xp)
        if packed:
            net._packed_params = live
            net._packed_grads = grads = pack(arrays, xp, copy=False)   # zeros until the first backward
            for name, grad in grads.items():
                _, index, rest = name.split(".", 2)
                bind_gradient(layers[int(index)], rest, grad)
        return net

    def train(self, mode: bool = True) -> "Network":
        """Train mode (``mode`` False: eval mode), as torch's ``Module.train``; returns the network."""
        self.training = mode
        for layer in self.layers:
            set_training(layer, mode)
        return self

    def eval(self) -> "Network":
        return self.train(False)

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
        return {f"layers.{i}.{name}": value for i, layer in enumerate(self.layers)
                for name, value in layer_arrays(layer, prefix).items()}

    def buffers(self) -> dict:
        """Named buffers (the live arrays: running statistics, dropout's draw counts)."""
        return {f"layers.{i}.{name}": value for i, layer in enumerate(self.layers)
                for name, value in layer_buffers(layer).items()}

    def load_buffers(self, buffers: dict) -> None:
        """Copy host values into the live buffers."""
        for name, value in self.buffers().items():
            value[...] = _buffer_array(buffers[name], value.dtype, self.xp)

    def load_parameters(self, params: dict) -> None:
        """Copy values into the live parameters (shapes must match)."""
        for name, value in self.parameters().items():
            value[...] = self.xp.asarray(params[name], dtype=value.dtype)


def _release(layer) -> None:
    release = getattr(layer, "release", None)
    if release is None:   # a user's Dense-like layer keeps its input in x, as Dense
        layer.x = None
    else:
        release()


def build_loss(spec, xp=np) -> Loss:
    return make_loss(spec.loss.name, spec.loss.reduction, xp=xp, ignore_index=spec.loss.ignore_index)
