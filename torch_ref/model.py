"""build(spec) -> a torch.nn.Module made of torch's own modules, holding scratch's initial weights.

This is the only place that converts between the two weight layouts: scratch keeps a dense W as
(inputs, units) for z = x @ W + b, nn.Linear keeps weight = Wᵀ as (units, inputs). Every other
parameter (a conv2d's (out, in / groups, kh, kw) weight, a layernorm's weight of its normalized
shape, every bias) has the same layout on both sides, so a parameter is transposed exactly when
it is an nn.Linear's weight: the names ``TorchNetwork.transposed`` holds (``dense_weight_names``).
The attention kinds keep their projections as dense weights too: nn.MultiheadAttention's
``in_proj_weight`` (3D, D) is scratch's W_in (D, 3D) transposed, ``out_proj.weight`` likewise, and
nn.TransformerEncoderLayer's ``linear1`` and ``linear2``. Buffers (running statistics, dropout's
draw counts) have the same layout on both sides.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from scratch import user_code
from scratch.activations import resolve_activation
from scratch.errors import SpecError  # a ValueError; the CLI reports it as bad input (exit 2)
from scratch.dropout import keep_mask
from scratch.initializers import initial_parameters
from scratch.losses import IGNORE_INDEX, LOSSES
from scratch.norm_kinds import layer_dense_weights
from scratch.windows import pair

TORCH_DTYPES = {"float64": torch.float64, "float32": torch.float32}


class Heaviside(nn.Module):
    """Binary step via torch.heaviside (1 at z = 0). torch has no gradient for it: the output is
    detached, so no gradient flows through, which is what the scratch derivative (0) says."""

    def forward(self, z):
        return torch.heaviside(z.detach(), torch.ones((), dtype=z.dtype, device=z.device))


TORCH_ACTIVATIONS = {
    "identity": lambda: nn.Identity(),
    "step": lambda: Heaviside(),
    "sigmoid": lambda: nn.Sigmoid(),
    "tanh": lambda: nn.Tanh(),
    "relu": lambda: nn.ReLU(),
    "leaky_relu": lambda negative_slope=0.01: nn.LeakyReLU(negative_slope),
    "elu": lambda alpha=1.0: nn.ELU(alpha),
    "gelu": lambda: nn.GELU(),
    "gelu_tanh": lambda: nn.GELU(approximate="tanh"),
    "softmax": lambda: nn.Softmax(dim=1),
}

# Activations without a torch gradient: parity compares their forward only.
FORWARD_ONLY = {"step"}


class HalfSSELoss(nn.Module):
    """½·Σ(a − t)²: the textbook E, as 0.5 · nn.MSELoss(reduction="sum")."""

    def __init__(self):
        super().__init__()
        self.mse = nn.MSELoss(reduction="sum")

    def forward(self, pred, target):
        return 0.5 * self.mse(pred, target)


class ProbabilityCELoss(nn.Module):
    """Cross-entropy on probabilities, −Σ t log p (÷N for mean), built on nn.KLDivLoss.

    KL(t‖p) = Σ t log t − Σ t log p, so CE = KLDivLoss(log p, t) + H-term of the targets, a
    constant in p: torch's autograd gives the whole gradient. Class indices become one-hot rows.
    Terms with t = 0 are 0 (as in scratch's CCE), also where p = 0.
    """

    def __init__(self, reduction="mean"):
        super().__init__()
        self.kl = nn.KLDivLoss(reduction="batchmean" if reduction == "mean" else "sum")
        self.reduction = reduction

    def forward(self, pred, target):
        if target.dim() == 1:
            target = nn.functional.one_hot(target.long(), pred.shape[1]).to(pred.dtype)
        negentropy = torch.special.xlogy(target, target).sum()
        if self.reduction == "mean":
            negentropy = negentropy / pred.shape[0]
        # Classes with t = 0 contribute 0 even where p = 0 (a softmax that underflowed): log(1) there
        # keeps KLDivLoss and its gradient free of 0 · log 0 = NaN.
        log_pred = torch.log(torch.where(target != 0, pred, torch.ones_like(pred)))
        return self.kl(log_pred, target) - negentropy


class CrossEntropyOnLogits(nn.Module):
    """nn.CrossEntropyLoss, taking (N,) class indices as long and (N, C) targets as probabilities."""

    def __init__(self, reduction="mean"):
        super().__init__()
        self.ce = nn.CrossEntropyLoss(reduction=reduction)

    def forward(self, pred, target):
        return self.ce(pred, target.long() if target.dim() == 1 else target)


class TokenCrossEntropy(nn.Module):
    """nn.CrossEntropyLoss(ignore_index) at every time step: (N, T, V) logits as (N·T, V), (N, T)
    token-id targets as (N·T,) long."""

    def __init__(self, reduction="mean", ignore_index=IGNORE_INDEX):
        super().__init__()
        self.ce = nn.CrossEntropyLoss(ignore_index=ignore_index, reduction=reduction)

    def forward(self, pred, target):
        return self.ce(pred.reshape(-1, pred.shape[-1]), target.long().reshape(-1))


TORCH_LOSSES = {
    "mse": lambda reduction="mean": nn.MSELoss(reduction=reduction),
    "sse": lambda reduction="sum": nn.MSELoss(reduction="sum"),
    "half_sse": lambda reduction="sum": HalfSSELoss(),
    "bce": lambda reduction="mean": nn.BCELoss(reduction=reduction),
    "bce_logits": lambda reduction="mean": nn.BCEWithLogitsLoss(reduction=reduction),
    "cce": lambda reduction="mean": ProbabilityCELoss(reduction),
    "softmax_cce": lambda reduction="mean": CrossEntropyOnLogits(reduction),
    "token_cce": lambda reduction="mean", ignore_index=IGNORE_INDEX: TokenCrossEntropy(reduction, ignore_index),
}


def torch_activation(name: str, params: dict | None = None, field: str = "activation") -> nn.Module:
    """The torch twin of an activation; a user's op ('module:Class') supplies ``torch_module()``
    (run as user code: scratch.user_code)."""
    params = params or {}
    if name in TORCH_ACTIVATIONS:
        return TORCH_ACTIVATIONS[name](**params)

    cls = resolve_activation(name, field)
    factory = getattr(cls, "torch_module", None)
    if factory is None and getattr(cls, "name", None) in TORCH_ACTIVATIONS:
        return TORCH_ACTIVATIONS[cls.name](**params)   # a user subclass of a scratch op: the parent's twin
    if factory is None:
        raise SpecError(field, f"{name}: a user op needs a torch_module() classmethod to be built in torch")
    with user_code.running(f"{name}.torch_module", field):
        module = factory(**params)
    if not isinstance(module, nn.Module):
        raise SpecError(field, f"{name}.torch_module() returned {type(module).__name__}, expected a torch.nn.Module")
    return module


def build_loss(spec) -> nn.Module:
    reduction = spec.loss.reduction or LOSSES[spec.loss.name].reductions[0]
    if spec.loss.name == "token_cce":
        return TokenCrossEntropy(reduction, spec.loss.ignore)
    return TORCH_LOSSES[spec.loss.name](reduction=reduction)


def _conv2d(layer, in_shape, dtype) -> nn.Module:
    return nn.Conv2d(in_shape[0], layer.out_channels, pair(layer.kernel), stride=pair(layer.stride),
                     padding=pair(layer.padding), dilation=pair(layer.dilation), groups=layer.groups,
                     bias=layer.use_bias, dtype=dtype)


def _pool(module):
    def make(layer, in_shape, dtype) -> nn.Module:
        stride = layer.kernel if layer.stride is None else layer.stride
        return module(pair(layer.kernel), stride=pair(stride), padding=pair(layer.padding))
    return make


def _batchnorm(layer, in_shape, dtype) -> nn.Module:
    module = nn.BatchNorm1d if len(in_shape) == 1 else nn.BatchNorm2d
    return module(in_shape[0], eps=layer.eps, momentum=layer.momentum, affine=layer.affine, dtype=dtype)


def _layernorm(layer, in_shape, dtype) -> nn.Module:
    return nn.LayerNorm(layer.normalized_shape(in_shape), eps=layer.eps,
                        elementwise_affine=layer.elementwise_affine, dtype=dtype)


class StreamDropout(nn.Module):
    """Dropout on the shared mask stream (scratch.dropout): in train mode, draw ``draws`` of the
    layer's stream gives keep, and z = x ⊙ noise, noise = keep / (1 − p), computed as ATen's CPU
    dropout computes it (noise.div_(1 − p); input * noise); eval mode: z = x. torch's nn.Dropout
    draws its mask from torch's generator; parity_tests/test_norm_layers.py proves nn.Dropout
    computes exactly this for the mask it drew (read back from its output)."""

    def __init__(self, p: float):
        super().__init__()
        self.p, self.seed, self.stream = p, 0, ""
        self.register_buffer("draws", torch.zeros((), dtype=torch.long))

    def forward(self, x):
        if not self.training:
            return x
        keep = keep_mask(self.seed, self.stream, int(self.draws), tuple(x.shape), self.p)
        self.draws += 1
        noise = torch.as_tensor(keep, device=x.device).to(x.dtype)
        noise.div_(1 - self.p)
        return x * noise


class ResidualBlock(nn.Module):
    """x ↦ body(x) + x, or body(x) + projection(x): ``body`` torch's layer modules, each followed by
    its activation module; ``projection`` an nn.Conv2d(C, O, 1, stride, bias=False) or
    nn.Linear(F, O, bias=False)."""

    def __init__(self, layer, in_shape, dtype):
        super().__init__()
        shapes = layer.body_shapes(in_shape, "")
        self.body = nn.ModuleList(TORCH_LAYERS[inner.kind](inner, shape, dtype)
                                  for inner, shape in zip(layer.body, shapes))
        self.activations = nn.ModuleList(torch_activation(inner.activation, inner.activation_params,
                                                          f"body[{j}].activation")
                                         for j, inner in enumerate(layer.body))
        self.projection = None
        if layer.projection:
            stride = layer.projection_stride(in_shape, shapes[-1], "")
            self.projection = (nn.Linear(in_shape[0], shapes[-1][0], bias=False, dtype=dtype) if stride is None else
                               nn.Conv2d(in_shape[0], shapes[-1][0], 1, stride=stride, bias=False, dtype=dtype))

    def forward(self, x):
        h = x
        for layer, activation in zip(self.body, self.activations):
            h = activation(layer(h))
        return h + (x if self.projection is None else self.projection(x))


class LearnedPositions(nn.Embedding):
    """x + nn.Embedding(max_len, dim) looked up at positions 0 .. T − 1 of a (N, T, dim) sequence."""

    def forward(self, x):
        return x + super().forward(torch.arange(x.shape[1], device=x.device))


class LastStep(nn.Module):
    """x[:, -1]: a (N, T, features) sequence's last time step."""

    def forward(self, x):
        return x[:, -1]


class MeanOverTime(nn.Module):
    """x.mean(dim=1): a (N, T, features) sequence's mean over time."""

    def forward(self, x):
        return x.mean(dim=1)


def _sequence_outputs(module):
    """torch's recurrent module, called for its output alone (every step's hidden state), not the
    (output, final state) pair: its parameters keep torch's names (weight_ih_l0, ...)."""

    class Outputs(module):
        def forward(self, x):
            return super().forward(x)[0]

    Outputs.__name__ = f"{module.__name__}Outputs"

    def make(layer, in_shape, dtype) -> nn.Module:
        extra = {"nonlinearity": layer.nonlinearity} if layer.kind == "rnn" else {}
        return Outputs(in_shape[1], layer.hidden, num_layers=layer.num_layers, batch_first=True,
                       bidirectional=layer.bidirectional, dtype=dtype, **extra)
    return make


def _embedding(layer, in_shape, dtype) -> nn.Module:
    return nn.Embedding(layer.vocab, layer.dim, padding_idx=layer.padding_index, dtype=dtype)


def causal_mask(x) -> torch.Tensor:
    """torch's own causal mask for x's T steps: 0 where step s <= t, −inf above the diagonal."""
    return nn.Transformer.generate_square_subsequent_mask(x.shape[1], device=x.device, dtype=x.dtype)


class SelfAttention(nn.MultiheadAttention):
    """nn.MultiheadAttention(D, heads, batch_first=True) on x alone: query = key = value = x,
    need_weights=False, and torch's causal mask when causal; its parameters keep torch's names."""

    def __init__(self, layer, in_shape, dtype):
        super().__init__(in_shape[1], layer.heads, batch_first=True, dtype=dtype)
        self.causal = layer.causal

    def forward(self, x):
        mask = causal_mask(x) if self.causal else None
        return super().forward(x, x, x, need_weights=False, attn_mask=mask)[0]


class TransformerBlock(nn.TransformerEncoderLayer):
    """nn.TransformerEncoderLayer(D, heads, mlp_units, dropout=0, activation=nn.GELU(), layer_norm_eps,
    batch_first=True, norm_first=True): x + self_attn(norm1(x)), then h + linear2(gelu(linear1(norm2(h)))),
    with torch's causal mask when causal. The GELU is the module (torch's exact GELU, as activation="gelu"
    gives it), so that hooks reach it like the block's other layers."""

    def __init__(self, layer, in_shape, dtype):
        super().__init__(in_shape[1], layer.heads, layer.hidden(in_shape), dropout=0.0, activation=nn.GELU(),
                         layer_norm_eps=layer.eps, batch_first=True, norm_first=True, dtype=dtype)
        self.causal = layer.causal

    def forward(self, x):
        return super().forward(x, src_mask=causal_mask(x) if self.causal else None)


# The torch twin of each layer kind (scratch.layer_kinds.KINDS): (layer spec, input shape, dtype) -> module.
TORCH_LAYERS = {
    "dense": lambda layer, in_shape, dtype: nn.Linear(layer.inputs, layer.units, bias=layer.use_bias, dtype=dtype),
    "conv2d": _conv2d,
    "maxpool2d": _pool(nn.MaxPool2d),
    "avgpool2d": _pool(nn.AvgPool2d),    # count_include_pad=True, torch's default
    "flatten": lambda layer, in_shape, dtype: nn.Flatten(),
    "global_avgpool": lambda layer, in_shape, dtype: nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten()),
    "batchnorm": _batchnorm,
    "layernorm": _layernorm,
    "dropout": lambda layer, in_shape, dtype: StreamDropout(layer.p),
    "residual": ResidualBlock,
    "attention": SelfAttention,
    "transformer": TransformerBlock,
    "embedding": _embedding,
    "positional_embedding": lambda layer, in_shape, dtype: LearnedPositions(layer.max_len, in_shape[1], dtype=dtype),
    "seq_last": lambda layer, in_shape, dtype: LastStep(),
    "seq_mean": lambda layer, in_shape, dtype: MeanOverTime(),
    "rnn": _sequence_outputs(nn.RNN),
    "lstm": _sequence_outputs(nn.LSTM),
    "gru": _sequence_outputs(nn.GRU),
}


def dense_weight_names(spec) -> frozenset[str]:
    """The parameters kept as (inputs, units) in scratch and as nn.Linear's (units, inputs) in torch."""
    return frozenset(f"layers.{i}.{name}" for i, (layer, shape) in enumerate(zip(spec.layers, spec.shapes))
                     for name in layer_dense_weights(layer, shape))


class TorchNetwork(nn.Module):
    """The spec's network from torch's layer modules (nn.Linear, nn.Conv2d, pooling, nn.Flatten,
    normalization, dropout on the shared stream, residual blocks) and its activation modules.
    ``linears`` holds the layer modules, whatever their kind (the name the state_dicts of dense
    networks have always used); ``transposed`` the parameter names whose layouts differ."""

    def __init__(self, spec):
        super().__init__()
        dtype = TORCH_DTYPES[spec.dtype]
        self.transposed = dense_weight_names(spec)
        self.linears = nn.ModuleList(TORCH_LAYERS[layer.kind](layer, in_shape, dtype)
                                     for layer, in_shape in zip(spec.layers, spec.shapes))
        for name, module in self.linears.named_modules():
            if isinstance(module, StreamDropout):
                module.seed, module.stream = spec.seed, f"layers.{name}"
        self.activations = nn.ModuleList(
            torch_activation(layer.activation, layer.activation_params, f"layers[{i}].activation")
            for i, layer in enumerate(spec.layers))
        # a user's op ('module:Class') runs as user code: its forward, and its torch_module()'s
        self._user_ops = {i: layer.activation for i, layer in enumerate(spec.layers)
                          if layer.activation not in TORCH_ACTIVATIONS}

    def forward_trace(self, x):
        """The output and every layer's activation (the last is the output)."""
        trace = []
        for i, (linear, activation) in enumerate(zip(self.linears, self.activations)):
            x = self._activate(i, activation, linear(x))
            trace.append(x)
        return x, trace

    def forward(self, x):
        for i, (linear, activation) in enumerate(zip(self.linears, self.activations)):
            x = self._activate(i, activation, linear(x))
        return x

    def _activate(self, i: int, activation: nn.Module, z):
        if i not in self._user_ops:
            return activation(z)
        where, field = f"{self._user_ops[i]}.torch_module().forward", f"layers[{i}].activation"
        with user_code.running(where, field):
            a = activation(z)
        if not (torch.is_tensor(a) and a.is_floating_point() and a.shape == z.shape):
            what = (f"a {a.dtype} tensor of shape {tuple(a.shape)}" if torch.is_tensor(a) else type(a).__name__)
            raise user_code.UserCodeError(field, f"{where} returned {what}; expected real floats shaped as its "
                                                 f"argument, {tuple(z.shape)}")
        return a


def build(spec, params: dict | None = None, buffers: dict | None = None) -> TorchNetwork:
    """The torch twin of ``spec``, holding scratch's seeded initial weights (or ``params``) and
    torch's initial buffers (or ``buffers``), in train mode."""
    model = TorchNetwork(spec)
    load_scratch_parameters(model, initial_parameters(spec) if params is None else params)
    if buffers is not None:
        load_scratch_buffers(model, buffers)
    return model


def load_scratch_parameters(model: TorchNetwork, params: dict) -> None:
    """Copy scratch-layout parameters (W as (inputs, units)) into the torch model."""
    with torch.no_grad():
        for name, tensor in scratch_named_parameters(model).items():
            value = torch.as_tensor(np.asarray(params[name]), dtype=tensor.dtype)
            tensor.copy_(value.T if name in model.transposed else value)


def scratch_named_parameters(model: TorchNetwork) -> dict[str, torch.Tensor]:
    """The model's parameter tensors under scratch's names (torch layout, live)."""
    return {f"layers.{i}.{name}": tensor for i, module in enumerate(model.linears)
            for name, tensor in module.named_parameters()}


def scratch_named_buffers(model: TorchNetwork) -> dict[str, torch.Tensor]:
    """The model's buffers (running statistics, draw counts) under scratch's names (live)."""
    return {f"layers.{i}.{name}": tensor for i, module in enumerate(model.linears)
            for name, tensor in module.named_buffers()}


def buffers_to_scratch(model: TorchNetwork) -> dict[str, np.ndarray]:
    """The model's buffers as NumPy arrays (counts as int64 scalars)."""
    return {name: t.detach().cpu().numpy().copy() for name, t in scratch_named_buffers(model).items()}


def load_scratch_buffers(model: TorchNetwork, buffers: dict) -> None:
    """Copy scratch's buffers into the torch model."""
    with torch.no_grad():
        for name, tensor in scratch_named_buffers(model).items():
            tensor.copy_(torch.as_tensor(np.asarray(buffers[name]), dtype=tensor.dtype))


def to_scratch(model: TorchNetwork) -> dict[str, np.ndarray]:
    """The model's parameters as NumPy arrays in scratch's layout."""
    return {name: _to_layout(name, t.detach(), model.transposed) for name, t in scratch_named_parameters(model).items()}


def gradients_to_scratch(model: TorchNetwork) -> dict[str, np.ndarray]:
    """The parameters' .grad in scratch's layout (zeros where torch left None: no gradient flowed)."""
    out = {}
    for name, t in scratch_named_parameters(model).items():
        grad = t.grad if t.grad is not None else torch.zeros_like(t)
        out[name] = _to_layout(name, grad, model.transposed)
    return out


def named_to_scratch(named: dict, transposed: frozenset, grads: bool = False) -> dict[str, np.ndarray]:
    """Named tensors (scratch_named_parameters), or their .grad (those not None), as NumPy arrays
    in scratch's layout (``transposed``: the model's): what TrainingDiverged.diagnose looks at."""
    out = {}
    for name, t in named.items():
        value = t.grad if grads else t
        if value is not None:
            out[name] = _to_layout(name, value.detach(), transposed)
    return out


def tensor_to_scratch(name: str, tensor: torch.Tensor, transposed: frozenset) -> np.ndarray:
    """One tensor stored under parameter ``name`` (a parameter, its gradient, an optimizer buffer)
    as a NumPy array in scratch's layout (``transposed``: the model's)."""
    return _to_layout(name, tensor.detach(), transposed)


def scratch_to_tensor(name: str, value, like: torch.Tensor, transposed: frozenset) -> torch.Tensor:
    """A scratch-layout array stored under parameter ``name`` as a tensor in torch's layout, with
    the dtype and device of ``like`` (the parameter)."""
    value = torch.tensor(np.asarray(value), dtype=like.dtype)   # a copy: never the array's memory
    return (value.T if name in transposed else value).contiguous().to(like.device)


def _to_layout(name: str, tensor: torch.Tensor, transposed: frozenset) -> np.ndarray:
    tensor = tensor.cpu()
    return (tensor.T if name in transposed else tensor).numpy().copy()
