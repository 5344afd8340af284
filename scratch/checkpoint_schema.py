"""What a checkpoint may hold, checked field by field against the spec inside it before any of it
is used. A checksum proves a file unchanged, not sound: anyone can re-sign a forged one.

- ``meta`` (``parse_meta``, ``check_meta``): UTF-8 JSON, an object of exactly the format's keys,
  nested at most ``MAX_DEPTH`` deep; the spec as strictly as a spec file (scratch.spec.parse_spec);
  the backend and why the run stopped, by name; the position in the spec's batches
  (0 <= batch <= steps per epoch, step = epoch × steps per epoch + batch); the open epoch's
  sums consistent with it; the optimizer's JSON-able state of its kind only (a line search's last
  step, random search's PCG64 generator).
- the members (``member_limits``): named as the format names them, each no larger than the spec
  and the position imply: checked from the zip directory, before a byte of the member is read.
- the arrays (``check_arrays``): the parameters exactly the spec's network, real floats of its
  dtype, of its shapes, finite; the buffers exactly the spec's network's (running means finite,
  running variances finite and >= 0, of its dtype and shapes; counts int64 scalars >= 0); per parameter, either no optimizer state or exactly the keys its
  optimizer keeps (scratch.optimizers' ``state_keys``), moments typed and shaped as their
  parameter and finite (a mean of squares >= 0, +inf where a square overflowed the dtype, as a
  run can write it), step counts int64 scalars from 0 to the steps taken; the history 1-D float64, finite (an
  accuracy in [0, 1], norms and timings >= 0), no longer than the position allows.

Every failure is a CheckpointError: one line naming the file, the field and what would be valid.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np

from scratch.data import batch_order, load_dataset
from scratch.errors import SpecError, shown
from scratch.initializers import initial_buffers
from scratch.loop import accuracy_rule, scored_per_row
from scratch.optimizers import OPTIMIZERS
from scratch.spec import parse_spec

FORMAT = "nnparity-checkpoint"
VERSION = 1
HISTORY_FIELDS = ("step_loss", "epoch_loss", "epoch_accuracy", "grad_norm", "step_seconds")
STEP_FIELDS = ("step_loss", "grad_norm", "step_seconds")      # one value a step; the others one an epoch
META_KEYS = ("format", "version", "backend", "spec", "epoch", "batch", "step", "epoch_sums",
             "optimizer_extra", "stopped")
BACKENDS = ("scratch", "torch", "lightning")
STOPPED = ("epochs", "loss_tol", "grad_tol", "callback")      # or None: the run goes on
SUMS_KEYS = ("loss", "steps", "correct", "scored")
LAST_STEP_KEYS = ("t", "backtracks", "accepted", "loss_before", "loss_after")
# A running mean of squares: >= 0 (its square root is taken), and +inf where a gradient's square
# overflowed the dtype while the gradient did not (the update is then 0), as a run can write it.
SQUARES_STATE = ("exp_avg_sq",)
MAX_DEPTH = 32                   # a checkpoint's own data nests 7 deep (a spec's weight rows)
MAX_META_BYTES = 64 * 2**20      # the spec (inline data included) and the position
NPY_HEADER_BYTES = 4096          # an .npy member's header (NumPy writes 128 bytes)
COUNT_MAX = 2**53                # counts stay exact in a float64 (torch's Adam keeps its step as one)


class CheckpointError(ValueError):
    """A checkpoint that cannot be used (missing, corrupted, truncated, another spec's, unsafe,
    or holding a field its spec rules out); the message names the file and what is wrong."""


def fail(path, field: str, message: str):
    """Raise the one-line CheckpointError for ``field`` of the checkpoint at ``path``."""
    raise CheckpointError(" ".join(f"{path}: {field}: {message}".split()))


@dataclass
class Layout:
    """What the spec inside a checkpoint implies for the rest of it."""

    spec: object                 # scratch.spec.Spec
    dtype: np.dtype              # the parameters' and moments' dtype
    shapes: dict                 # parameter name -> shape, (inputs, units) for weights
    buffers: dict                # buffer name -> its initial array (the dtype and shape it must have)
    state_keys: tuple            # what the optimizer keeps per parameter
    extra_keys: tuple            # what its JSON-able state may hold
    steps_per_epoch: int
    batch_rows: int              # rows of the largest batch
    per_row: int                 # accuracy predictions scored per row (0: no accuracy)


# ------------------------------------------------------------------------------------ meta


def parse_meta(path, raw: np.ndarray) -> dict:
    """The ``meta`` member (UTF-8 JSON bytes) as a dict, nested at most MAX_DEPTH deep."""
    if raw.dtype != np.uint8 or raw.ndim != 1:
        fail(path, "meta", f"expected UTF-8 bytes, got {raw.dtype} of shape {raw.shape}")
    data = raw.tobytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        fail(path, "meta", f"not UTF-8 (byte 0x{data[err.start]:02x} at offset {err.start})")
    try:
        meta = json.loads(text)
    except json.JSONDecodeError as err:
        fail(path, "meta", f"not JSON ({err.msg} at offset {err.pos})")
    except RecursionError:
        fail(path, "meta", f"nested too deeply (at most {MAX_DEPTH} levels)")
    except ValueError:   # an integer of more digits than Python converts
        fail(path, "meta", "an integer of more than 4300 digits")
    if not isinstance(meta, dict):
        fail(path, "meta", f"expected a JSON object, got {type(meta).__name__}")
    check_depth(path, "meta", meta)
    return meta


def check_depth(path, field: str, value, limit: int = MAX_DEPTH) -> None:
    """Containers (dicts, lists, tuples) nested at most ``limit`` deep, counted without recursion."""
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children = node.values()
        elif isinstance(node, (list, tuple)):
            children = node
        else:
            continue
        if depth > limit:
            fail(path, field, f"nested too deeply (at most {limit} levels)")
        stack.extend((child, depth + 1) for child in children)


def check_meta(path, meta: dict) -> Layout:
    """Every field of ``meta`` against the format and the spec it holds; the spec's Layout."""
    missing = [key for key in META_KEYS if key not in meta]
    if missing:
        fail(path, "meta", f"missing {', '.join(missing)}")
    unknown = [key for key in meta if key not in META_KEYS]
    if unknown:
        fail(path, f"meta.{shown(unknown[0], 40)}", f"unknown field; expected {', '.join(META_KEYS)}")
    if meta["format"] != FORMAT or meta["version"] != VERSION or isinstance(meta["version"], bool):
        fail(path, "format", f"{shown(meta['format'])} version {shown(meta['version'])}; expected {FORMAT!r} "
                             f"version {VERSION}")
    _choice(path, "backend", meta["backend"], BACKENDS)
    if meta["stopped"] is not None:
        _choice(path, "stopped", meta["stopped"], STOPPED)
    layout = spec_layout(path, meta["spec"])
    epoch = count(path, "epoch", meta["epoch"])
    batch = count(path, "batch", meta["batch"], maximum=layout.steps_per_epoch)
    step = count(path, "step", meta["step"], maximum=COUNT_MAX)
    if step != epoch * layout.steps_per_epoch + batch:    # one step a batch, every epoch the spec's batches
        fail(path, "step", f"{step} does not match the position: epoch {epoch}, batch {batch}, "
                           f"{layout.steps_per_epoch} steps an epoch make step {epoch * layout.steps_per_epoch + batch}")
    _check_sums(path, meta["epoch_sums"], layout, meta["step"])
    _check_extra(path, meta["optimizer_extra"], layout)
    return layout


def spec_layout(path, raw_spec) -> Layout:
    """The spec (validated as a spec file is) and what it implies: shapes, dtype, batches."""
    try:
        spec = parse_spec(raw_spec)
        data = load_dataset(spec)
    except SpecError as err:
        fail(path, "spec", str(err))
    shapes = {f"layers.{i}.{name}": tuple(shape) for i, (layer, in_shape) in enumerate(zip(spec.layers, spec.shapes))
              for name, shape in layer.parameter_shapes(in_shape).items()}
    n = len(data.x_train)
    batches = batch_order(n, spec.train.batch_size, False, spec.seed, 0)
    rule = accuracy_rule(spec, data.y_train)
    optimizer = OPTIMIZERS[spec.optimizer.name]
    return Layout(spec=spec, dtype=np.dtype(spec.dtype), shapes=shapes, buffers=initial_buffers(spec),
                  state_keys=tuple(sorted(optimizer.state_keys(spec.optimizer))),
                  extra_keys=optimizer.extra_keys, steps_per_epoch=len(batches),
                  batch_rows=max(len(b) for b in batches),
                  per_row=scored_per_row(rule, spec.outputs) if rule else 0)


def count(path, field: str, value, minimum: int = 0, maximum: int = COUNT_MAX) -> int:
    """An integer (not a bool, not a float) in [minimum, maximum]."""
    if isinstance(value, bool) or not isinstance(value, int):
        fail(path, field, f"expected an integer, got {shown(value)}")
    if not minimum <= value <= maximum:
        fail(path, field, f"{shown(value, 30)} is out of range; expected {minimum} to {maximum}")
    return value


def number(path, field: str, value, minimum: float | None = None) -> float:
    """A finite real number (an int or a float, not a bool), at least ``minimum`` if given."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        fail(path, field, f"expected a number, got {shown(value)}")
    try:
        value = float(value)
    except OverflowError:
        fail(path, field, f"{shown(value, 30)} is beyond the float range")
    if not math.isfinite(value) or (minimum is not None and value < minimum):
        fail(path, field, f"{value} is out of range; expected a finite number"
                          f"{'' if minimum is None else f' >= {minimum:g}'}")
    return value


def _choice(path, field: str, value, choices) -> None:
    if not isinstance(value, str) or value not in choices:
        fail(path, field, f"unknown {shown(value)}; expected one of {', '.join(choices)}")


def _table(path, field: str, value, keys, exact: bool) -> dict:
    if not isinstance(value, dict):
        fail(path, field, f"expected a table, got {type(value).__name__}")
    unknown = [k for k in value if k not in keys]
    missing = [k for k in keys if k not in value] if exact else []
    if unknown or missing:
        what = f"unknown {shown(unknown[0], 40)}" if unknown else f"missing {', '.join(missing)}"
        fail(path, field, f"{what}; expected {', '.join(keys) if keys else 'nothing'}")
    return value


def _check_sums(path, sums, layout: Layout, step: int) -> None:
    """The open epoch's running sums: its loss, steps, and the predictions counted right of those scored."""
    _table(path, "epoch_sums", sums, SUMS_KEYS, exact=True)
    number(path, "epoch_sums.loss", sums["loss"])
    steps = count(path, "epoch_sums.steps", sums["steps"], maximum=min(layout.steps_per_epoch, step))
    most = steps * layout.batch_rows * layout.per_row
    scored = count(path, "epoch_sums.scored", sums["scored"], minimum=1 if most else 0, maximum=most)
    count(path, "epoch_sums.correct", sums["correct"], maximum=scored)


def _check_extra(path, extra, layout: Layout) -> None:
    """The optimizer's JSON-able state: only what its kind keeps."""
    name = layout.spec.optimizer.name
    _table(path, f"optimizer_extra (optimizer {name})", extra, layout.extra_keys, exact=False)
    if "last_step" in extra:
        last = _table(path, "optimizer_extra.last_step", extra["last_step"], LAST_STEP_KEYS, exact=False)
        for key, value in last.items():
            where = f"optimizer_extra.last_step.{key}"
            if key == "accepted":
                if not isinstance(value, bool):
                    fail(path, where, f"expected true or false, got {shown(value)}")
            elif key == "backtracks":
                count(path, where, value)
            else:
                number(path, where, value, minimum=0.0 if key == "t" else None)
    if "rng" in extra:
        rng = _table(path, "optimizer_extra.rng", extra["rng"], ("bit_generator", "state", "has_uint32", "uinteger"),
                     exact=True)
        if rng["bit_generator"] != "PCG64":
            fail(path, "optimizer_extra.rng.bit_generator", f"{shown(rng['bit_generator'])}; expected 'PCG64'")
        state = _table(path, "optimizer_extra.rng.state", rng["state"], ("state", "inc"), exact=True)
        for key in ("state", "inc"):
            count(path, f"optimizer_extra.rng.state.{key}", state[key], maximum=2**128 - 1)
        count(path, "optimizer_extra.rng.has_uint32", rng["has_uint32"], maximum=1)
        count(path, "optimizer_extra.rng.uinteger", rng["uinteger"], maximum=2**32 - 1)


# ---------------------------------------------------------------------------------- members


def member_limits(layout: Layout, meta: dict, memory: int) -> dict:
    """Member name -> the most data bytes it may hold (its header aside): a parameter's and its
    moments' size by the spec, a history's by the position (and ``memory``, the memory limit)."""
    item = layout.dtype.itemsize
    out = {}
    for name, shape in layout.shapes.items():
        size = math.prod(shape) * item
        out[f"param/{name}"] = size
        for key in layout.state_keys:
            out[f"optim/{name}/{key}"] = 8 if key == "step" else size
    for name, start in layout.buffers.items():
        out[f"buffer/{name}"] = start.nbytes
    for field in HISTORY_FIELDS:
        length = meta["step"] if field in STEP_FIELDS else meta["epoch"] + 1
        out[f"history/{field}"] = min(memory, 8 * length)
    return out


def unexpected_member(path, key: str, layout: Layout):
    """Refuse a member the spec's checkpoint has no place for, saying what would be there."""
    kind, _, rest = key.partition("/")
    if kind == "optim":
        name, _, entry = rest.rpartition("/")
        if name in layout.shapes:
            keys = ", ".join(layout.state_keys) or "nothing"
            fail(path, key, f"unknown state {shown(entry, 40)}; optimizer {layout.spec.optimizer.name} "
                            f"keeps {keys} per parameter")
    if kind in ("param", "optim"):
        fail(path, key, f"no such parameter in the spec's network ({', '.join(layout.shapes)})")
    if kind == "buffer":
        fail(path, key, f"no such buffer in the spec's network ({', '.join(layout.buffers) or 'it has none'})")
    if kind == "history":
        fail(path, key, f"unknown history field; expected {', '.join(HISTORY_FIELDS)}")
    fail(path, key, "not a member of the format (param/, optim/, buffer/, history/, meta, checksum)")


# ----------------------------------------------------------------------------------- arrays


def check_arrays(path, layout: Layout, meta: dict, arrays: dict) -> tuple[dict, dict, dict, dict]:
    """(params, optimizer state, history, buffers) from the arrays, each checked against the layout."""
    params, optimizer, history, buffers = {}, {}, {}, {}
    for name, shape in layout.shapes.items():
        if f"param/{name}" not in arrays:
            fail(path, f"param/{name}", f"missing; the spec's network has it, shape {shape}")
    for name, start in layout.buffers.items():
        if f"buffer/{name}" not in arrays:
            fail(path, f"buffer/{name}", f"missing; the spec's network has it, {start.dtype} of shape {start.shape}")
    for key, value in arrays.items():
        kind, _, rest = key.partition("/")
        name, _, entry = rest.rpartition("/")
        if kind == "param" and rest in layout.shapes:
            params[rest] = _floats(path, key, value, layout.dtype, layout.shapes[rest])
        elif kind == "optim" and name in layout.shapes and entry in layout.state_keys:
            optimizer.setdefault(name, {})[entry] = (
                _step(path, key, value, meta["step"]) if entry == "step" else
                _floats(path, key, value, layout.dtype, layout.shapes[name], entry in SQUARES_STATE))
        elif kind == "history" and rest in HISTORY_FIELDS:
            history[rest] = _history(path, key, value)
        elif kind == "buffer" and rest in layout.buffers:
            buffers[rest] = _buffer(path, key, value, layout.buffers[rest])
        else:
            unexpected_member(path, key, layout)
    for name, entries in optimizer.items():
        missing = [k for k in layout.state_keys if k not in entries]
        if missing:
            fail(path, f"optim/{name}", f"missing {', '.join(missing)}; optimizer {layout.spec.optimizer.name} "
                                        f"keeps {', '.join(layout.state_keys)} per parameter")
    _check_history(path, history, meta)
    return params, optimizer, history, buffers


def _buffer(path, key: str, value: np.ndarray, start: np.ndarray) -> np.ndarray:
    """A buffer: a count (an int64 scalar >= 0), or running statistics as a float parameter is
    checked (a variance >= 0)."""
    if start.dtype.kind == "f":
        return _floats(path, key, value, start.dtype, start.shape, squares=key.endswith("running_var"))
    if value.dtype != start.dtype or value.shape != start.shape:
        fail(path, key, f"expected an {start.dtype} scalar (a count), got {value.dtype} of shape {value.shape}")
    count(path, key, int(value))
    return value


def _floats(path, key: str, value: np.ndarray, dtype: np.dtype, shape: tuple,
            squares: bool = False) -> np.ndarray:
    if value.dtype != dtype:
        fail(path, key, f"expected {dtype} values (the spec's dtype), got {value.dtype}")
    if value.shape != tuple(shape):
        fail(path, key, f"shape {value.shape}; the spec's network has {tuple(shape)}")
    if squares:
        if np.isnan(value).any() or (value < 0).any():
            fail(path, key, "holds NaN or a negative value; expected values >= 0 (a mean of squares)")
    elif not np.isfinite(value).all():
        fail(path, key, "holds NaN or inf; a checkpoint holds finite values")
    return value


def _step(path, key: str, value: np.ndarray, steps_taken: int) -> np.ndarray:
    """A parameter's step count: no more than the steps the run has taken."""
    if value.dtype != np.int64 or value.shape != ():
        fail(path, key, f"expected an int64 scalar (a step count), got {value.dtype} of shape {value.shape}")
    count(path, key, int(value), maximum=min(COUNT_MAX, steps_taken))
    return value


def _history(path, key: str, value: np.ndarray) -> list:
    if value.dtype != np.float64 or value.ndim != 1:
        fail(path, key, f"expected a 1-D float64 array, got {value.dtype} of shape {value.shape}")
    field = key.partition("/")[2]
    low, high = {"epoch_accuracy": (0.0, 1.0), "grad_norm": (0.0, np.inf), "step_seconds": (0.0, np.inf)}.get(
        field, (-np.inf, np.inf))
    ok = np.isfinite(value) & (value >= low) & (value <= high)
    if not ok.all():
        at = int(np.argmin(ok))
        fail(path, key, f"{value[at]} at [{at}]; expected finite values in [{low:g}, {high:g}]")
    return value.tolist()


def _check_history(path, history: dict, meta: dict) -> None:
    missing = [f for f in HISTORY_FIELDS if f not in history]
    if missing:
        fail(path, f"history/{missing[0]}", "missing")
    steps = len(history["step_loss"])
    limits = {"step_loss": meta["step"], "grad_norm": steps, "step_seconds": steps,
              "epoch_loss": meta["epoch"] + 1, "epoch_accuracy": len(history["epoch_loss"])}
    for field, most in limits.items():
        if len(history[field]) > most:
            fail(path, f"history/{field}", f"{len(history[field])} values; the position (epoch {meta['epoch']}, "
                                           f"step {meta['step']}) allows at most {most}")
    sums = meta["epoch_sums"]
    if sums["steps"] > steps:
        fail(path, "epoch_sums.steps", f"{sums['steps']} steps in the open epoch; the history holds {steps}")
    # The open epoch's loss is the sum of its steps' losses, the history's last ones.
    bound = math.fsum(abs(v) for v in history["step_loss"][steps - sums["steps"]:])
    if abs(sums["loss"]) > bound * (1 + 1e-9):
        fail(path, "epoch_sums.loss", f"{sums['loss']:g}; the open epoch's {sums['steps']} step losses "
                                      f"sum to at most {bound:g} in magnitude")
