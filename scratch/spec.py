"""The network spec: plain dataclasses, TOML/JSON in and out, validated.

One spec builds both networks (scratch.network.Network.from_spec and torch_ref.model.build).
Every validation failure raises SpecError with the dotted path of the field at fault and what
would be valid, e.g. ``layers[1].activation: unknown 'relu6'; expected one of identity, ...``.

Each layer's ``kind`` (default dense) picks its class in scratch.layer_kinds, which declares its
fields and its output-shape rule; every layer's shape is checked here, from ``input_shape`` (or
layers[0].inputs) on. Dense weights use the layout of z = x @ W + b: ``weight`` is (inputs, units),
``bias`` is (units,).
"""
from __future__ import annotations

import dataclasses
import json
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from scratch.activations import check_activation
from scratch.data import DATASETS, check_targets
from scratch.sequence_data import TOKEN_DATASETS, check_tokens
from scratch.device import DEVICES
from scratch.errors import SpecError, shown
from scratch.initializers import INITIALIZERS
from scratch.kind_fields import BOOL, CHOICE, FLOAT, INIT, INT, LAYERS, SCALE, shown_shape
from scratch.layer_kinds import KINDS, LayerSpec, infer_shapes
from scratch.limits import check_memory
from scratch.losses import IGNORE_INDEX, LOSSES
from scratch.optimizers import OPTIMIZERS, check_optimizer_fields

DTYPES = ("float64", "float32")
REDUCTIONS = ("mean", "sum")
# The largest magnitude each dtype holds (numpy.finfo(dtype).max), for range checks without numpy.
DTYPE_MAX = {"float64": 1.7976931348623157e308, "float32": 3.4028234663852886e38}
# Integers must fit a signed 64-bit integer (seeds, sizes, counts go to numpy and torch as int64).
INT_MAX = 2**63 - 1
MAX_LAYERS = 10_000
# A loss on probabilities needs an output activation that gives them; else the fused form on logits.
PROBABILITY_OUTPUTS = {"bce": ("sigmoid", "softmax", "step"), "cce": ("softmax", "sigmoid")}
FUSED_FORM = {"bce": ("sigmoid", "bce_logits"), "cce": ("softmax", "softmax_cce")}


# ----------------------------------------------------------------------------------------- tables


@dataclass
class LossSpec:
    """The loss on the network's output."""

    name: str = "mse"                            # mse, sse, half_sse, bce, bce_logits, cce, softmax_cce, token_cce
    reduction: str | None = None                 # mean | sum; None: the loss's own default
    ignore_index: int | None = None              # token_cce: the target that is no token (None: torch's -100)

    @property
    def ignore(self) -> int:
        """The target value token_cce skips."""
        return IGNORE_INDEX if self.ignore_index is None else self.ignore_index


@dataclass
class OptimizerSpec:
    """The optimizer and its hyperparameters, named as in torch.optim."""

    name: str = "sgd"                            # sgd, adam, adamw, armijo, random_search
    lr: float = 0.1                              # learning rate (initial step for armijo, scale for random_search)
    momentum: float = 0.0                        # SGD: v = momentum * v + (1 - dampening) * g
    dampening: float = 0.0                       # SGD
    nesterov: bool = False                       # SGD: p -= lr * (g + momentum * v)
    weight_decay: float = 0.0                    # coupled L2 (sgd, adam), decoupled (adamw)
    betas: tuple[float, float] = (0.9, 0.999)    # Adam/AdamW moment decay rates
    eps: float = 1e-8                            # Adam/AdamW: added after the square root
    sigma: float = 1e-4                          # Armijo sufficient-decrease constant, in (0, 1)
    beta: float = 0.5                            # Armijo backtracking factor, in (0, 1)
    max_backtracks: int = 30                     # Armijo cap on backtracking steps
    clip_norm: float | None = None               # clip gradients to this global L2 norm
    clip_value: float | None = None              # clip each gradient element to [-v, v]
    seed: int | None = None                      # random_search perturbations (None: the spec's seed)


@dataclass
class DataSpec:
    """Where the data comes from: a built-in dataset by name, or inline x and y."""

    name: str | None = None                      # xor, linear, square, moons, circles, digits
    x: list | None = None                        # inline inputs, (N, inputs)
    y: list | None = None                        # inline targets, (N, units) or (N,) class indices
    samples: int | None = None                   # size of a generated dataset (None: its default)
    noise: float | None = None                   # noise of a generated dataset (None: its default)
    test_fraction: float = 0.0                   # held-out share for the test split
    scale: str = "none"                          # none | standard | minmax (fit on train only)


@dataclass
class TrainSpec:
    """The training loop."""

    epochs: int = 100                            # max epochs
    batch_size: int | None = None                # None: full batch
    shuffle: bool = False                        # seeded batch order, shared by both sides
    loss_tol: float | None = None                # stop when the epoch loss falls to this
    grad_tol: float | None = None                # stop when the global gradient norm falls to this


@dataclass
class Spec:
    """A whole network spec (its TOML form: the README's "Check a spec" and the files in specs/)."""

    layers: list                                 # at least one: LayerSpec (dense) or another kind's spec
    seed: int = 0                                # seeds initializers, random batches and batch order
    dtype: str = "float64"                       # float64 | float32
    device: str = "cpu"                          # cpu | cuda (scratch on CuPy, torch on CUDA); whether
    #                                              it is there is checked when a command runs
    loss: LossSpec = field(default_factory=LossSpec)
    optimizer: OptimizerSpec = field(default_factory=OptimizerSpec)
    data: DataSpec = field(default_factory=DataSpec)
    train: TrainSpec = field(default_factory=TrainSpec)
    input_shape: list[int] | None = None         # [C, H, W], [T, D] or [features]; None: layers[0].inputs

    # -------------------------------------------------------------------------------- derived

    @property
    def shapes(self) -> list[tuple]:
        """The shape of one example at the input and after each layer: (features,) or (C, H, W)."""
        start = (self.layers[0].inputs,) if self.input_shape is None else tuple(self.input_shape)
        return infer_shapes(start, self.layers)

    @property
    def inputs(self) -> int:
        """The width of one example's input, flattened (C·H·W for images)."""
        if self.input_shape is None:
            return self.layers[0].inputs
        return math.prod(self.input_shape)

    @property
    def outputs(self) -> int:
        """The width of the output (its classes, per time step for a sequence output)."""
        last = self.layers[-1]
        return last.units if last.kind == "dense" else self.shapes[-1][-1]

    @property
    def vocab(self) -> int | None:
        """The vocabulary size of a network on token ids (an embedding as layers[0]), else None."""
        return self.layers[0].vocab if self.layers[0].kind == "embedding" else None

    # ---------------------------------------------------------------------------- in and out

    @classmethod
    def from_dict(cls, raw: dict) -> "Spec":
        """Build and validate a spec from plain data (as parsed from TOML or JSON)."""
        return parse_spec(raw)

    def to_dict(self) -> dict:
        """Plain data, without None fields: what TOML and JSON hold (``kind`` only where not dense)."""
        raw = _drop_none(dataclasses.asdict(self))
        raw["layers"] = [_layer_to_dict(layer) for layer in self.layers]
        return raw

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def to_toml(self) -> str:
        import tomli_w

        return tomli_w.dumps(self.to_dict())

    def replace(self, **changes) -> "Spec":
        """A validated copy with top-level fields changed (the original is left as it was)."""
        raw = self.to_dict()
        raw.update({k: (dataclasses.asdict(v) if dataclasses.is_dataclass(v) else v) for k, v in changes.items()})
        return parse_spec(_drop_none(raw))


def load_spec(path: str | Path) -> Spec:
    """Read a spec from a .toml or .json file (UTF-8, a BOM allowed). Every failure is a SpecError."""
    path = Path(path)
    return spec_from_bytes(_read_bytes(path), path.suffix, str(path))


def spec_from_bytes(data: bytes, suffix: str, name: str = "spec") -> Spec:
    """A spec from a file's bytes: ``suffix`` (.toml or .json) picks the format, ``name`` is what
    messages call it. Every failure is a SpecError."""
    shown_name = shown(name)
    if suffix not in (".json", ".toml"):
        raise SpecError("spec", f"{shown_name}: unknown format {shown(suffix)}; expected .toml or .json")
    text = _decode(data, shown_name)
    try:
        raw = json.loads(text) if suffix == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as err:
        raise SpecError("spec", f"{shown_name}: cannot parse: {err}") from None
    except RecursionError:
        raise SpecError("spec", f"{shown_name}: nested too deeply to parse") from None
    except ValueError:  # an integer of more digits than Python converts (4,300)
        raise SpecError("spec", f"{shown_name}: cannot parse: an integer of more than 4300 digits") from None
    return parse_spec(raw)


def _read_bytes(path: Path) -> bytes:
    try:
        if not path.is_file():
            raise SpecError("spec", f"no such file: {shown(str(path))}")
        return path.read_bytes()
    except (OSError, ValueError) as err:  # unreadable, a NUL in the name
        raise SpecError("spec", f"cannot read {shown(str(path))}: {getattr(err, 'strerror', None) or err}") from None


def _decode(data: bytes, name: str) -> str:
    """The text, decoded as UTF-8; a BOM is dropped."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise SpecError("spec", f"{name}: UTF-16 text; save the spec as UTF-8")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise SpecError("spec", f"{name}: not UTF-8 (byte 0x{data[err.start]:02x} at offset "
                                f"{err.start}); save the spec as UTF-8") from None


def dump_spec(spec: Spec, path: str | Path) -> None:
    path = Path(path)
    path.write_text(spec.to_json() if path.suffix == ".json" else spec.to_toml())


# ------------------------------------------------------------------------------------- parsing


def _drop_none(value):
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [_drop_none(v) for v in value]
    return value


def _layer_to_dict(layer) -> dict:
    """A layer as plain data: ``kind`` where not dense, a residual's body layers alike."""
    raw = _drop_none(dataclasses.asdict(layer))
    if hasattr(layer, "body"):
        raw["body"] = [_layer_to_dict(inner) for inner in layer.body]
    return raw if layer.kind == "dense" else {"kind": layer.kind, **raw}


def _known_fields(cls) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(cls)}


def _check_keys(raw, cls, where: str) -> None:
    if not isinstance(raw, dict):
        raise SpecError(where, f"expected a table, got {type(raw).__name__}")
    known = _known_fields(cls)
    for key in raw:
        if key not in known:
            name = key if isinstance(key, str) else shown(key)   # a dict from Python may have any key
            raise SpecError(f"{where}.{name}" if where else name,
                            f"unknown field; expected one of {', '.join(known)}")


def _int(value, where: str, minimum: int | None = 1, maximum: int = INT_MAX) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(where, f"expected an integer, got {shown(value)}")
    if minimum is not None and value < minimum:
        raise SpecError(where, f"must be >= {minimum}, got {shown(value)}")
    if value > maximum:
        raise SpecError(where, f"must be <= {maximum}, got {shown(value)}")
    return value


def _float(value, where: str, low: float | None = None, high: float | None = None,
           low_open: bool = False, high_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SpecError(where, f"expected a number, got {shown(value)}")
    try:
        value = float(value) + 0.0  # + 0.0: -0.0 is 0
    except OverflowError:  # an integer past the float range
        raise SpecError(where, f"beyond the float range (|v| <= {DTYPE_MAX['float64']:.4g}), "
                               f"got {shown(value)}") from None
    if not math.isfinite(value):
        raise SpecError(where, f"must be finite, got {value}")
    if low is not None and (value < low or (low_open and value == low)):
        raise SpecError(where, f"must be {'>' if low_open else '>='} {low:g}, got {_beside(value, low)}")
    if high is not None and (value > high or (high_open and value == high)):
        raise SpecError(where, f"must be {'<' if high_open else '<='} {high:g}, got {_beside(value, high)}")
    return value


def _beside(value: float, bound: float) -> str:
    """``value`` as %g, or with every digit where %g would print it as the bound (1.0000001 past 1)."""
    return f"{value:g}" if f"{value:g}" != f"{bound:g}" or value == bound else repr(value)


def _bool(value, where: str) -> bool:
    if not isinstance(value, bool):
        raise SpecError(where, f"expected true or false, got {shown(value)}")
    return value


def _choice(value, choices, where: str) -> str:
    if not isinstance(value, str) or value not in choices:
        raise SpecError(where, f"unknown {shown(value)}; expected one of {', '.join(choices)}")
    return value


def _numbers(value, depth: int, where: str, dtype: str):
    """A list (depth 1) or list of rows (depth 2) of plain numbers, rectangular, finite and within
    the dtype's range, as a float64 array. Nothing but int and float is a number here (no strings,
    no booleans), so nothing is converted behind the user's back."""
    if not isinstance(value, list) or not value:
        raise SpecError(where, f"expected a non-empty list{' of rows' if depth == 2 else ''} of numbers, "
                               f"got {shown(value)}")
    rows = value if depth == 2 else [value]
    for i, row in enumerate(rows):
        if not isinstance(row, list):
            raise SpecError(where, f"expected a row (a list of numbers) at [{i}], got {shown(row)}")
        if len(row) != len(rows[0]):
            raise SpecError(where, f"not rectangular: row {i} has {len(row)} values, row 0 has {len(rows[0])}")
        for j, v in enumerate(row):
            at = f"[{i}][{j}]" if depth == 2 else f"[{j}]"
            if type(v) is not float and type(v) is not int:  # type(): bool is not a number here
                raise SpecError(where, f"expected a number at {at}, got {shown(v)}")
            if type(v) is int and not -DTYPE_MAX["float64"] <= v <= DTYPE_MAX["float64"]:
                raise SpecError(where, f"{shown(v, 30)} at {at} is beyond the float range")
    arr = np.array(value, dtype=np.float64)
    finite = np.isfinite(arr)
    bad = ~finite | (np.abs(np.where(finite, arr, 0)) > DTYPE_MAX[dtype])
    if np.any(bad):
        i = tuple(int(k) for k in np.argwhere(bad)[0])
        at = "".join(f"[{k}]" for k in i)
        if not finite[i]:
            raise SpecError(where, f"contains NaN or inf (at {at}); expected finite numbers")
        raise SpecError(where, f"{arr[i]:.4g} at {at} is beyond the {dtype} range (|v| <= "
                               f"{DTYPE_MAX[dtype]:.4g}); use dtype float64")
    return arr


def _matrix(value, rows: int | None, cols: int, where: str, dtype: str = "float64") -> list:
    """Check a nested list of finite numbers of shape (rows, cols); rows=None: any count >= 1."""
    arr = _numbers(value, 2, where, dtype)
    if arr.shape[1] != cols or (rows is not None and arr.shape[0] != rows):
        raise SpecError(where, f"expected shape ({rows if rows is not None else 'N'}, {cols}), got {arr.shape}")
    return arr.tolist()


def _vector(value, length: int, where: str, dtype: str = "float64") -> list:
    arr = _numbers(value, 1, where, dtype)
    if arr.shape != (length,):
        raise SpecError(where, f"expected shape ({length},), got {arr.shape}")
    return arr.tolist()


def _parse_layer(raw, index: int, in_shape: tuple | None, came_from: str, dtype: str, where: str | None = None):
    """One layer of any kind, its fields read; a dense layer's input width taken from ``in_shape``,
    the shape ``came_from`` gives (None: layer 0 of a spec without input_shape, which must say its
    inputs). parse_spec checks each layer's output shape. ``where``: the layer's path (default
    ``layers[index]``; a residual's body layers are ``layers[i].body[j]``)."""
    where = f"layers[{index}]" if where is None else where
    if not isinstance(raw, dict):
        raise SpecError(where, f"expected a table, got {type(raw).__name__}")
    kind = _choice(raw.get("kind", "dense"), tuple(KINDS), f"{where}.kind")
    fields = {key: value for key, value in raw.items() if key != "kind"}
    if kind == "dense":
        return _parse_dense(fields, index, in_shape, came_from, dtype, where)
    if in_shape is None:
        raise SpecError("input_shape", f"missing; {where} ({kind}) needs the input's shape, e.g. "
                                       f"input_shape = [1, 8, 8] (channels, height, width)")
    cls = KINDS[kind]
    _check_keys(fields, cls, where)
    required = {f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING
                and f.default_factory is dataclasses.MISSING}
    values = {}
    for name, (kind_of_field, minimum) in cls.FIELDS.items():
        if kind_of_field == LAYERS:
            values[name] = _parse_body(fields.get(name), in_shape, f"{where}.{name}", dtype)
        elif fields.get(name) is not None:
            values[name] = _kind_field(fields[name], kind_of_field, minimum, f"{where}.{name}", dtype)
        elif name in required:
            raise SpecError(f"{where}.{name}", f"missing; {kind} needs it")
    values["activation"], values["activation_params"] = _parse_activation(fields, where, dtype)
    return cls(**values)


def _parse_body(raw, in_shape: tuple, where: str, dtype: str) -> list:
    """A residual block's body: a non-empty list of layer tables, each shape checked in turn."""
    if not isinstance(raw, list) or not raw:
        raise SpecError(where, "expected a non-empty list of layer tables ([[layers.body]] in TOML)")
    if len(raw) > MAX_LAYERS:
        raise SpecError(where, f"{len(raw)} layers; at most {MAX_LAYERS}")
    layers, shape = [], tuple(in_shape)
    for j, layer_raw in enumerate(raw):
        came_from = "the block's input" if j == 0 else f"{where}[{j - 1}] ({layers[-1].kind})"
        layers.append(_parse_layer(layer_raw, j + 1, shape, came_from, dtype, f"{where}[{j}]"))
        shape = tuple(layers[-1].output_shape(shape, f"{where}[{j}]", came_from))
    return layers


def _kind_field(value, kind_of_field: str, minimum, where: str, dtype: str):
    """One field of a layer kind, read by the type its class declares (``minimum``: an int's least
    value, a FLOAT's Bounds)."""
    if kind_of_field == FLOAT:
        value = _float(value, where, minimum.low, minimum.high, minimum.low_open, minimum.high_open)
        return _open_in_dtype(value, minimum, where, dtype)
    if kind_of_field == INT:
        return _int(value, where, minimum=minimum)
    if kind_of_field == BOOL:
        return _bool(value, where)
    if kind_of_field == INIT:
        return _choice(value, tuple(INITIALIZERS), where)
    if kind_of_field == CHOICE:
        return _choice(value, minimum, where)
    if kind_of_field == SCALE:
        # a hundredth of the dtype's range: draws of a few standard deviations still fit it
        return _float(value, where, low=0.0, high=DTYPE_MAX[dtype] / 100)
    if isinstance(value, list):   # PAIR: an int, or [h, w]
        if len(value) != 2:
            raise SpecError(where, f"expected an integer or [height, width], got {shown(value)}")
        return [_int(v, f"{where}[{i}]", minimum=minimum) for i, v in enumerate(value)]
    return _int(value, where, minimum=minimum)


def _open_in_dtype(value: float, bounds, where: str, dtype: str) -> float:
    """``value`` when it fits ``dtype`` and an open bound still holds once it is a ``dtype`` number, as the layer computes
    with it (an eps of 1e-300 is 0 in float32, and x̂ = 0/0 where a channel is constant)."""
    if abs(value) > DTYPE_MAX[dtype]:
        raise SpecError(where, f"{value:.4g} is beyond the {dtype} range (|v| <= {DTYPE_MAX[dtype]:.4g}); "
                               f"use dtype float64")
    stored = float(np.array(value, dtype=dtype))
    for bound, is_open, word in ((bounds.low, bounds.low_open, ">"), (bounds.high, bounds.high_open, "<")):
        if is_open and stored == bound:
            raise SpecError(where, f"{value!r} is {bound:g} in {dtype}; must be {word} {bound:g} as a {dtype} "
                                   f"number (or use dtype float64)")
    return value


def _parse_activation(raw: dict, where: str, dtype: str) -> tuple[str, dict]:
    activation = raw.get("activation", "identity")
    if not isinstance(activation, str) or len(activation) > 200:
        raise SpecError(f"{where}.activation", f"expected a name, got {shown(activation)}")
    params = raw.get("activation_params", {}) or {}
    if not isinstance(params, dict):
        raise SpecError(f"{where}.activation_params", "expected a table of numbers")
    limit = DTYPE_MAX[dtype]
    params = {k: _float(v, f"{where}.activation_params.{k}", -limit, limit) for k, v in params.items()}
    check_activation(activation, params, where)
    return activation, params


def _parse_dense(raw: dict, index: int, in_shape: tuple | None, came_from: str, dtype: str,
                 where: str) -> LayerSpec:
    _check_keys(raw, LayerSpec, where)
    if "units" not in raw:
        raise SpecError(f"{where}.units", "missing; every layer needs its output width")
    units = _int(raw["units"], f"{where}.units")
    inputs = raw.get("inputs")
    if inputs is None:
        if in_shape is None:
            raise SpecError(f"{where}.inputs", "missing; the first layer needs its input width")
    else:
        inputs = _int(inputs, f"{where}.inputs")
    if in_shape is not None:
        LayerSpec(units).output_shape(in_shape, where, came_from)   # a [features] input, or the flatten hint
        if inputs is not None and inputs != in_shape[-1]:
            top = where == f"layers[{index}]"
            gives = (f"input_shape = {shown_shape(in_shape)}" if index == 0 else
                     f"layers[{index - 1}].units = {in_shape[-1]}" if top and came_from.endswith("(dense)") else
                     f"the {in_shape[-1]} features of {came_from}")
            raise SpecError(f"{where}.inputs", f"{inputs} does not match {gives}")
        inputs = in_shape[-1]
    activation, params = _parse_activation(raw, where, dtype)
    use_bias = _bool(raw.get("use_bias", True), f"{where}.use_bias")
    init = _choice(raw.get("init", "xavier_uniform"), tuple(INITIALIZERS), f"{where}.init")
    init_scale = raw.get("init_scale")
    if init_scale is not None:
        init_scale = _kind_field(init_scale, SCALE, None, f"{where}.init_scale", dtype)
    weight = raw.get("weight")
    if weight is not None:
        weight = _matrix(weight, inputs, units, f"{where}.weight", dtype)
    bias = raw.get("bias")
    if bias is not None:
        if not use_bias:
            raise SpecError(f"{where}.bias", "given, but use_bias = false")
        bias = _vector(bias, units, f"{where}.bias", dtype)
    return LayerSpec(units=units, inputs=inputs, activation=activation, activation_params=params,
                     use_bias=use_bias, init=init, init_scale=init_scale, weight=weight, bias=bias)


def _parse_input_shape(raw) -> tuple | None:
    if raw is None:
        return None
    if not isinstance(raw, list) or len(raw) not in (1, 2, 3):
        raise SpecError("input_shape", f"expected [features] ([T] token ids before an embedding), [time, features] "
                                       f"or [channels, height, width], got {shown(raw)}")
    return tuple(_int(n, f"input_shape[{i}]") for i, n in enumerate(raw))


def _parse_loss(raw: dict) -> LossSpec:
    _check_keys(raw, LossSpec, "loss")
    name = _choice(raw.get("name", "mse"), tuple(LOSSES), "loss.name")
    allowed = LOSSES[name].reductions
    reduction = raw.get("reduction")
    if reduction is not None:
        reduction = _choice(reduction, allowed, "loss.reduction")
    ignore_index = raw.get("ignore_index")
    if ignore_index is not None:
        if name != "token_cce":
            raise SpecError("loss.ignore_index", f"only token_cce skips targets; loss {name!r} takes none")
        ignore_index = _int(ignore_index, "loss.ignore_index", minimum=-INT_MAX)
    return LossSpec(name=name, reduction=reduction, ignore_index=ignore_index)


def _check_output_shape(shape: tuple, count: int, loss: LossSpec) -> None:
    """A loss takes [features]; token_cce a [time, classes] sequence, and nothing else."""
    where = f"layers[{count - 1}].kind"
    if loss.name == "token_cce" and len(shape) != 2:
        raise SpecError("loss.name", f"token_cce scores a [time, classes] sequence, the network's output is "
                                     f"{shown_shape(shape)}; end with a dense layer on the sequence")
    if len(shape) == 2 and loss.name != "token_cce":
        raise SpecError(where, f"the network's output is the sequence {shown_shape(shape)}; loss {loss.name!r} "
                               f"needs [features]: end with seq_last or seq_mean (and a dense layer), or use "
                               f"loss token_cce (one class per time step)")
    if len(shape) == 3:
        raise SpecError(where, f"the network's output is {shown_shape(shape)}; a loss needs [features]: "
                               f"end with a flatten (or global_avgpool) and a dense layer")


def _parse_optimizer(raw: dict) -> OptimizerSpec:
    _check_keys(raw, OptimizerSpec, "optimizer")
    names = tuple(OPTIMIZERS)
    d = OptimizerSpec()
    out = OptimizerSpec(
        name=_choice(raw.get("name", d.name), names, "optimizer.name"),
        lr=_float(raw.get("lr", d.lr), "optimizer.lr", low=0.0, low_open=True),
        momentum=_float(raw.get("momentum", d.momentum), "optimizer.momentum", low=0.0),
        dampening=_float(raw.get("dampening", d.dampening), "optimizer.dampening", low=0.0, high=1.0),
        nesterov=_bool(raw.get("nesterov", d.nesterov), "optimizer.nesterov"),
        weight_decay=_float(raw.get("weight_decay", d.weight_decay), "optimizer.weight_decay", low=0.0),
        eps=_float(raw.get("eps", d.eps), "optimizer.eps", low=0.0),
        sigma=_float(raw.get("sigma", d.sigma), "optimizer.sigma", 0.0, 1.0, True, True),
        beta=_float(raw.get("beta", d.beta), "optimizer.beta", 0.0, 1.0, True, True),
        max_backtracks=_int(raw.get("max_backtracks", d.max_backtracks), "optimizer.max_backtracks"),
    )
    betas = raw.get("betas", d.betas)
    if not isinstance(betas, (list, tuple)) or len(betas) != 2:
        raise SpecError("optimizer.betas", f"expected two numbers [beta1, beta2], got {shown(betas)}")
    out.betas = tuple(_float(b, f"optimizer.betas[{i}]", 0.0, 1.0, high_open=True) for i, b in enumerate(betas))
    if out.nesterov and (out.momentum <= 0 or out.dampening != 0):
        raise SpecError("optimizer.nesterov", "needs momentum > 0 and dampening = 0 (as torch.optim.SGD)")
    for key in ("clip_norm", "clip_value"):
        if raw.get(key) is not None:
            setattr(out, key, _float(raw[key], f"optimizer.{key}", low=0.0, low_open=True))
    if raw.get("seed") is not None:
        out.seed = _int(raw["seed"], "optimizer.seed", minimum=0)
    check_optimizer_fields(out)
    return out


def _parse_data(raw: dict, input_shape: tuple, spec_outputs: int, loss: LossSpec, dtype: str,
                vocab: int | None) -> DataSpec:
    _check_keys(raw, DataSpec, "data")
    d = DataSpec()
    out = DataSpec(
        test_fraction=_float(raw.get("test_fraction", d.test_fraction), "data.test_fraction", 0.0, 1.0,
                             high_open=True),
        scale=_choice(raw.get("scale", d.scale), ("none", "standard", "minmax"), "data.scale"),
    )
    name = raw.get("name")
    has_inline = raw.get("x") is not None or raw.get("y") is not None
    if name is not None and has_inline:
        raise SpecError("data", "give either name or inline x and y, not both")
    if name is not None:
        out.name = _choice(name, (*DATASETS, *TOKEN_DATASETS), "data.name")
    if raw.get("samples") is not None:
        out.samples = _int(raw["samples"], "data.samples")
    if raw.get("noise") is not None:
        out.noise = _float(raw["noise"], "data.noise", low=0.0)
    if has_inline:
        if raw.get("x") is None or raw.get("y") is None:
            raise SpecError("data.y" if raw.get("y") is None else "data.x", "missing; inline data needs x and y")
        y = raw["y"]
        if vocab is not None:   # token ids, one row per sequence
            out.x = check_tokens(raw["x"], input_shape[0], vocab, "data.x").tolist()
        else:
            out.x = _matrix(raw["x"], None, math.prod(input_shape), "data.x", dtype)
            _numbers(y, 2 if isinstance(y, list) and y and isinstance(y[0], list) else 1, "data.y", dtype)
        out.y = check_targets(y, len(out.x), spec_outputs, loss.name, "data.y", dtype, loss.ignore).tolist()
    return out


def parse_spec(raw: Any) -> Spec:
    """Validate plain data and build a Spec. Raises SpecError naming the field at fault."""
    if not isinstance(raw, dict):
        raise SpecError("spec", f"expected a table of fields ({', '.join(_known_fields(Spec))}), "
                                f"got {type(raw).__name__}")
    _check_keys(raw, Spec, "")
    seed = _int(raw.get("seed", 0), "seed", minimum=0)
    dtype = _choice(raw.get("dtype", "float64"), DTYPES, "dtype")
    device = _choice(raw.get("device", "cpu"), DEVICES, "device")
    layers_raw = raw.get("layers")
    if not isinstance(layers_raw, list) or not layers_raw:
        raise SpecError("layers", "expected a non-empty list of layer tables ([[layers]] in TOML)")
    if len(layers_raw) > MAX_LAYERS:
        raise SpecError("layers", f"{len(layers_raw)} layers; at most {MAX_LAYERS}")
    input_shape = _parse_input_shape(raw.get("input_shape"))
    layers, shapes = [], [input_shape]
    for i, layer_raw in enumerate(layers_raw):
        came_from = "the input" if i == 0 else f"layers[{i - 1}] ({layers[i - 1].kind})"
        layers.append(_parse_layer(layer_raw, i, shapes[-1], came_from, dtype))
        if shapes[-1] is None:
            shapes[-1] = (layers[0].inputs,)
        shapes.append(tuple(layers[-1].output_shape(shapes[-1], f"layers[{i}]", came_from)))
        if len(shapes[-1]) == 2 and layers[-1].activation == "softmax":
            raise SpecError(f"layers[{i}].activation", f"softmax normalizes axis 1, the time axis of the sequence "
                                                       f"{shown_shape(shapes[-1])}; end with identity logits and "
                                                       f"loss token_cce (its softmax is per time step)")
    loss = _parse_loss(raw.get("loss", {}))
    _check_output_shape(shapes[-1], len(layers), loss)
    _check_output_fits_loss(layers, loss)
    optimizer = _parse_optimizer(raw.get("optimizer", {}))
    vocab = layers[0].vocab if layers[0].kind == "embedding" else None
    data = _parse_data(raw.get("data", {}), shapes[0], shapes[-1][-1], loss, dtype, vocab)
    spec = Spec(layers=layers, seed=seed, dtype=dtype, device=device, loss=loss, optimizer=optimizer, data=data,
                train=_parse_train(raw.get("train", {})),
                input_shape=None if input_shape is None else list(input_shape))
    _check_dtype_range(spec)
    check_memory(spec)
    return spec


def _parse_train(train_raw) -> TrainSpec:
    _check_keys(train_raw, TrainSpec, "train")
    t = TrainSpec()
    train = TrainSpec(
        epochs=_int(train_raw.get("epochs", t.epochs), "train.epochs"),
        shuffle=_bool(train_raw.get("shuffle", t.shuffle), "train.shuffle"),
    )
    if train_raw.get("batch_size") is not None:
        train.batch_size = _int(train_raw["batch_size"], "train.batch_size")
    for key in ("loss_tol", "grad_tol"):
        if train_raw.get(key) is not None:
            setattr(train, key, _float(train_raw[key], f"train.{key}", low=0.0))
    return train


def _check_output_fits_loss(layers: list, loss: LossSpec) -> None:
    """A loss on probabilities after an output that gives any real number is refused, with the
    two ways out: a probability output, or the fused loss on logits. A user's op ('module:Class')
    is taken on trust: its range is not known here."""
    allowed = PROBABILITY_OUTPUTS.get(loss.name)
    output = layers[-1].activation
    if allowed is None or output in allowed or ":" in output:
        return
    where = f"layers[{len(layers) - 1}].activation"
    probability, fused = FUSED_FORM[loss.name]
    raise SpecError(where, f"{output!r} does not output probabilities, which loss {loss.name!r} needs; "
                           f"use activation {probability!r} (or {' or '.join(repr(a) for a in allowed if a != probability)}), "
                           f"or loss {fused!r} on an identity output (the fused, stable form on logits)")


def _check_dtype_range(spec: Spec) -> None:
    """Every number a float32 spec carries into float32 tensors fits float32 (else it would be inf)."""
    limit = DTYPE_MAX[spec.dtype]
    o, t, d = spec.optimizer, spec.train, spec.data
    fields = {"optimizer.lr": o.lr, "optimizer.momentum": o.momentum, "optimizer.weight_decay": o.weight_decay,
              "optimizer.eps": o.eps, "optimizer.clip_norm": o.clip_norm, "optimizer.clip_value": o.clip_value,
              "train.loss_tol": t.loss_tol, "train.grad_tol": t.grad_tol, "data.noise": d.noise}
    for where, value in fields.items():
        if value is not None and abs(value) > limit:
            raise SpecError(where, f"{value:.4g} is beyond the {spec.dtype} range (|v| <= {limit:.4g}); "
                                   f"use dtype float64")
