"""The network spec: plain dataclasses, TOML/JSON in and out, validated.

One spec builds both networks (scratch.network.Network.from_spec and torch_ref.model.build).
Every validation failure raises SpecError with the dotted path of the field at fault and what
would be valid, e.g. ``layers[1].activation: unknown 'relu6'; expected one of identity, ...``.

Weights use the layout of z = x @ W + b: ``weight`` is (inputs, units), ``bias`` is (units,).
"""
from __future__ import annotations

import dataclasses
import json
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scratch.activations import check_activation
from scratch.data import DATASETS, check_targets
from scratch.errors import SpecError
from scratch.initializers import INITIALIZERS
from scratch.losses import LOSSES
from scratch.optimizers import OPTIMIZERS, check_optimizer_fields

DTYPES = ("float64", "float32")
REDUCTIONS = ("mean", "sum")


# ----------------------------------------------------------------------------------------- tables


@dataclass
class LayerSpec:
    """One Dense layer followed by its activation: z = a_prev @ W + b ; a = activation(z)."""

    units: int                                   # width of this layer's output
    inputs: int | None = None                    # width of its input; required on layer 0, else inferred
    activation: str = "identity"                 # registry name, or "module:Class" for a user's op
    activation_params: dict[str, float] = field(default_factory=dict)  # negative_slope (leaky_relu), alpha (elu)
    use_bias: bool = True                        # False: z = a_prev @ W
    init: str = "xavier_uniform"                 # initializer name (scratch.initializers.INITIALIZERS)
    init_scale: float | None = None              # std for "normal", bound for "uniform"
    weight: list | None = None                   # explicit (inputs, units) values; overrides init
    bias: list | None = None                     # explicit (units,) values; overrides the bias init


@dataclass
class LossSpec:
    """The loss on the network's output."""

    name: str = "mse"                            # mse, sse, half_sse, bce, bce_logits, cce, softmax_cce
    reduction: str | None = None                 # mean | sum; None: the loss's own default


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

    layers: list[LayerSpec]                      # at least one
    seed: int = 0                                # seeds initializers, random batches and batch order
    dtype: str = "float64"                       # float64 | float32
    loss: LossSpec = field(default_factory=LossSpec)
    optimizer: OptimizerSpec = field(default_factory=OptimizerSpec)
    data: DataSpec = field(default_factory=DataSpec)
    train: TrainSpec = field(default_factory=TrainSpec)

    # -------------------------------------------------------------------------------- derived

    @property
    def inputs(self) -> int:
        return self.layers[0].inputs

    @property
    def outputs(self) -> int:
        return self.layers[-1].units

    # ---------------------------------------------------------------------------- in and out

    @classmethod
    def from_dict(cls, raw: dict) -> "Spec":
        """Build and validate a spec from plain data (as parsed from TOML or JSON)."""
        return parse_spec(raw)

    def to_dict(self) -> dict:
        """Plain data, without None fields: what TOML and JSON hold."""
        return _drop_none(dataclasses.asdict(self))

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
    """Read a spec from a .toml or .json file."""
    path = Path(path)
    if not path.is_file():
        raise SpecError("spec", f"no such file: {path}")
    text = path.read_text()
    try:
        if path.suffix == ".json":
            raw = json.loads(text)
        elif path.suffix == ".toml":
            raw = tomllib.loads(text)
        else:
            raise SpecError("spec", f"{path}: unknown format {path.suffix!r}; expected .toml or .json")
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as err:
        raise SpecError("spec", f"{path}: cannot parse: {err}") from None
    return parse_spec(raw)


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


def _known_fields(cls) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(cls)}


def _check_keys(raw, cls, where: str) -> None:
    if not isinstance(raw, dict):
        raise SpecError(where, f"expected a table, got {type(raw).__name__}")
    known = _known_fields(cls)
    for key in raw:
        if key not in known:
            raise SpecError(f"{where}.{key}" if where else key,
                            f"unknown field; expected one of {', '.join(known)}")


def _int(value, where: str, minimum: int | None = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(where, f"expected an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise SpecError(where, f"must be >= {minimum}, got {value}")
    return value


def _float(value, where: str, low: float | None = None, high: float | None = None,
           low_open: bool = False, high_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SpecError(where, f"expected a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise SpecError(where, f"must be finite, got {value}")
    if low is not None and (value < low or (low_open and value == low)):
        raise SpecError(where, f"must be {'>' if low_open else '>='} {low}, got {value}")
    if high is not None and (value > high or (high_open and value == high)):
        raise SpecError(where, f"must be {'<' if high_open else '<='} {high}, got {value}")
    return value


def _bool(value, where: str) -> bool:
    if not isinstance(value, bool):
        raise SpecError(where, f"expected true or false, got {value!r}")
    return value


def _choice(value, choices, where: str) -> str:
    if not isinstance(value, str) or value not in choices:
        raise SpecError(where, f"unknown {value!r}; expected one of {', '.join(choices)}")
    return value


def _matrix(value, rows: int | None, cols: int, where: str) -> list:
    """Check a nested list of finite numbers of shape (rows, cols); rows=None: any count >= 1."""
    import numpy as np

    try:
        arr = np.asarray(value, dtype=float)
    except (ValueError, TypeError):
        raise SpecError(where, "expected a rectangular list of numbers") from None
    if arr.ndim != 2 or arr.shape[1] != cols or (rows is not None and arr.shape[0] != rows) or arr.shape[0] == 0:
        want = f"({rows if rows is not None else 'N'}, {cols})"
        raise SpecError(where, f"expected shape {want}, got {tuple(arr.shape)}")
    if not np.all(np.isfinite(arr)):
        raise SpecError(where, "contains NaN or inf")
    return arr.tolist()


def _vector(value, length: int, where: str) -> list:
    import numpy as np

    try:
        arr = np.asarray(value, dtype=float)
    except (ValueError, TypeError):
        raise SpecError(where, "expected a list of numbers") from None
    if arr.shape != (length,):
        raise SpecError(where, f"expected shape ({length},), got {tuple(arr.shape)}")
    if not np.all(np.isfinite(arr)):
        raise SpecError(where, "contains NaN or inf")
    return arr.tolist()


def _parse_layer(raw: dict, index: int, prev_units: int | None) -> LayerSpec:
    where = f"layers[{index}]"
    _check_keys(raw, LayerSpec, where)
    if "units" not in raw:
        raise SpecError(f"{where}.units", "missing; every layer needs its output width")
    units = _int(raw["units"], f"{where}.units")
    inputs = raw.get("inputs")
    if inputs is None:
        if prev_units is None:
            raise SpecError(f"{where}.inputs", "missing; the first layer needs its input width")
        inputs = prev_units
    else:
        inputs = _int(inputs, f"{where}.inputs")
        if prev_units is not None and inputs != prev_units:
            raise SpecError(f"{where}.inputs",
                            f"{inputs} does not match layers[{index - 1}].units = {prev_units}")
    activation = raw.get("activation", "identity")
    if not isinstance(activation, str):
        raise SpecError(f"{where}.activation", f"expected a name, got {activation!r}")
    params = raw.get("activation_params", {}) or {}
    if not isinstance(params, dict):
        raise SpecError(f"{where}.activation_params", "expected a table of numbers")
    params = {k: _float(v, f"{where}.activation_params.{k}") for k, v in params.items()}
    check_activation(activation, params, where)
    use_bias = _bool(raw.get("use_bias", True), f"{where}.use_bias")
    init = _choice(raw.get("init", "xavier_uniform"), tuple(INITIALIZERS), f"{where}.init")
    init_scale = raw.get("init_scale")
    if init_scale is not None:
        init_scale = _float(init_scale, f"{where}.init_scale", low=0.0)
    weight = raw.get("weight")
    if weight is not None:
        weight = _matrix(weight, inputs, units, f"{where}.weight")
    bias = raw.get("bias")
    if bias is not None:
        if not use_bias:
            raise SpecError(f"{where}.bias", "given, but use_bias = false")
        bias = _vector(bias, units, f"{where}.bias")
    return LayerSpec(units=units, inputs=inputs, activation=activation, activation_params=params,
                     use_bias=use_bias, init=init, init_scale=init_scale, weight=weight, bias=bias)


def _parse_loss(raw: dict) -> LossSpec:
    _check_keys(raw, LossSpec, "loss")
    name = _choice(raw.get("name", "mse"), tuple(LOSSES), "loss.name")
    allowed = LOSSES[name].reductions
    reduction = raw.get("reduction")
    if reduction is not None:
        reduction = _choice(reduction, allowed, "loss.reduction")
    return LossSpec(name=name, reduction=reduction)


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
        raise SpecError("optimizer.betas", f"expected two numbers [beta1, beta2], got {betas!r}")
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


def _parse_data(raw: dict, spec_inputs: int, spec_outputs: int, loss: LossSpec) -> DataSpec:
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
        out.name = _choice(name, tuple(DATASETS), "data.name")
    if raw.get("samples") is not None:
        out.samples = _int(raw["samples"], "data.samples")
    if raw.get("noise") is not None:
        out.noise = _float(raw["noise"], "data.noise", low=0.0)
    if has_inline:
        if raw.get("x") is None or raw.get("y") is None:
            raise SpecError("data.y" if raw.get("y") is None else "data.x", "missing; inline data needs x and y")
        out.x = _matrix(raw["x"], None, spec_inputs, "data.x")
        out.y = check_targets(raw["y"], len(out.x), spec_outputs, loss.name, "data.y").tolist()
    return out


def parse_spec(raw: Any) -> Spec:
    """Validate plain data and build a Spec. Raises SpecError naming the field at fault."""
    if not isinstance(raw, dict):
        raise SpecError("spec", f"expected a table of fields ({', '.join(_known_fields(Spec))}), "
                                f"got {type(raw).__name__}")
    _check_keys(raw, Spec, "")
    seed = _int(raw.get("seed", 0), "seed", minimum=0)
    dtype = _choice(raw.get("dtype", "float64"), DTYPES, "dtype")
    layers_raw = raw.get("layers")
    if not isinstance(layers_raw, list) or not layers_raw:
        raise SpecError("layers", "expected a non-empty list of layer tables ([[layers]] in TOML)")
    layers: list[LayerSpec] = []
    for i, layer_raw in enumerate(layers_raw):
        layers.append(_parse_layer(layer_raw, i, layers[-1].units if layers else None))
    loss = _parse_loss(raw.get("loss", {}))
    optimizer = _parse_optimizer(raw.get("optimizer", {}))
    data = _parse_data(raw.get("data", {}), layers[0].inputs, layers[-1].units, loss)
    train_raw = raw.get("train", {})
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
    return Spec(layers=layers, seed=seed, dtype=dtype, loss=loss, optimizer=optimizer, data=data, train=train)
