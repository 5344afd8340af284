"""Checkpoints in and out of torch: the torch loop's runs, torch state_dicts and Lightning ``.ckpt``
files, all as scratch.checkpoint's common format (parameters and optimizer state in the spec's
layout; torch_ref.model converts the layouts).

- ``capture`` / ``restore``: a torch-loop run (torch_ref.training) to and from a Checkpoint.
- ``optimizer_to_common`` / ``optimizer_from_common``: a torch optimizer's state (SGD's
  ``momentum_buffer``, Adam's ``step``, ``exp_avg``, ``exp_avg_sq``, Armijo's last step, random
  search's NumPy generator) to and from the common per-parameter arrays.
- ``read_torch`` / ``write_torch``: a ``.pt`` file ``{"model": state_dict, "optimizer": state_dict,
  "nnparity": {...}}``; ``read_lightning``: a Lightning ``.ckpt``. Both read with
  ``torch.load(weights_only=True)``: nothing is unpickled beyond tensors and plain containers.
  Every container's type is checked before it is used (state_dicts of real float tensors of the
  spec's dtype; optimizer state keyed by parameter index, moments shaped as their parameter;
  nnparity's record a table nested at most scratch.checkpoint_schema.MAX_DEPTH deep), then the
  common checkpoint as an ``.npz`` is checked (scratch.checkpoint.check).
- ``content_digest``: SHA-256 of a checkpoint dict's content (tensors by bytes), which
  ``AtomicCheckpointIO`` stores in every Lightning checkpoint it writes and checks when it reads one.
"""
from __future__ import annotations

import hashlib
import io
import os
import pickle

import numpy as np
import torch

from scratch import checkpoint as common
from scratch.checkpoint import Checkpoint, CheckpointError
from scratch.checkpoint_schema import check_depth, count, fail, spec_layout
from scratch.errors import SpecError, shown
from scratch.spec import parse_spec
from torch_ref.model import (buffers_to_scratch, build, load_scratch_buffers, load_scratch_parameters,
                             scratch_named_buffers, scratch_named_parameters, scratch_to_tensor, tensor_to_scratch,
                             to_scratch)

CHECKSUM_KEY = "nnparity_checksum"


# ------------------------------------------------------------------------------- optimizers


def optimizer_to_common(optimizer: torch.optim.Optimizer, named: dict, transposed: frozenset) -> tuple[dict, dict]:
    """(name -> {key -> array in scratch layout; ``step`` as int64}, JSON-able extras)."""
    state = {}
    for name, p in named.items():
        entries = optimizer.state.get(p, {})
        state[name] = {key: (np.array(int(value.item()) if torch.is_tensor(value) else int(value), dtype=np.int64)
                             if key == "step" else tensor_to_scratch(name, value, transposed))
                       for key, value in entries.items() if value is not None}
    extra = {}
    if getattr(optimizer, "last_step", None):
        extra["last_step"] = dict(optimizer.last_step)
    if isinstance(getattr(optimizer, "rng", None), np.random.Generator):
        extra["rng"] = optimizer.rng.bit_generator.state
    return state, extra


def optimizer_from_common(optimizer: torch.optim.Optimizer, named: dict, state: dict, extra: dict,
                          transposed: frozenset) -> None:
    """Load the common per-parameter state into ``optimizer`` (whose parameters are ``named``)."""
    # torch makes Adam's step a float64 tensor when float64 is the default dtype, else float32.
    step_dtype = torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32
    loaded = {}
    for i, (name, p) in enumerate(named.items()):
        entries = state.get(name, {})
        if entries:
            loaded[i] = {key: torch.tensor(float(value), dtype=step_dtype) if key == "step"
                         else scratch_to_tensor(name, value, p, transposed) for key, value in entries.items()}
    groups = optimizer.state_dict()["param_groups"]
    optimizer.load_state_dict({"state": loaded, "param_groups": groups})
    optimizer_from_common_extra(optimizer, extra)


def optimizer_from_common_extra(optimizer: torch.optim.Optimizer, extra: dict) -> None:
    """The state a torch state_dict does not hold: the last line search, random search's generator."""
    if "last_step" in extra:
        optimizer.last_step = dict(extra["last_step"])
    if "rng" in extra:
        optimizer.rng.bit_generator.state = extra["rng"]


# ---------------------------------------------------------------------------- torch-loop runs


def capture(run, epoch: int, batch: int, step: int, stopped: str | None = None) -> Checkpoint:
    """A torch-loop run (torch_ref.training's _Run) at position (epoch, batch), ``step`` steps done."""
    state, extra = optimizer_to_common(run.optimizer, run.named, run.model.transposed)
    log_state = run.log.get_state()
    return Checkpoint(spec=run.spec.to_dict(), params=to_scratch(run.model), optimizer=state,
                      optimizer_extra=extra, backend="torch", epoch=epoch, batch=batch, step=step,
                      history=log_state.pop("history"), epoch_sums=log_state, stopped=stopped,
                      buffers=buffers_to_scratch(run.model))


def restore(run, ckpt: Checkpoint) -> None:
    """Put a checkpoint's parameters, buffers, optimizer state and history into a fresh torch-loop run."""
    for name, p in run.named.items():
        shape = tuple(tensor_to_scratch(name, p, run.model.transposed).shape)
        if name not in ckpt.params or ckpt.params[name].shape != shape:
            raise CheckpointError(f"param {name}: not in the checkpoint with the spec's shape {shape}")
    load_scratch_parameters(run.model, ckpt.params)
    for name, b in scratch_named_buffers(run.model).items():
        if name not in ckpt.buffers or tuple(ckpt.buffers[name].shape) != tuple(b.shape):
            raise CheckpointError(f"buffer {name}: not in the checkpoint with the spec's shape {tuple(b.shape)}")
    load_scratch_buffers(run.model, ckpt.buffers)
    optimizer_from_common(run.optimizer, run.named, ckpt.optimizer, ckpt.optimizer_extra, run.model.transposed)
    run.log.set_state(dict(ckpt.epoch_sums, history=ckpt.history))


# ------------------------------------------------------------------------------- torch files


def content_digest(obj) -> str:
    """SHA-256 of a checkpoint dict's content: dict keys in order of their repr, tensors and arrays
    by dtype, shape and bytes, other values by repr."""
    h = hashlib.sha256()
    _feed(h, obj)
    return h.hexdigest()


def _feed(h, obj) -> None:
    if isinstance(obj, dict):
        h.update(b"{")
        for key in sorted(obj, key=repr):
            h.update(repr(key).encode() + b":")
            _feed(h, obj[key])
        h.update(b"}")
    elif isinstance(obj, (list, tuple)):
        h.update(b"[")
        for item in obj:
            _feed(h, item)
        h.update(b"]")
    elif torch.is_tensor(obj) or isinstance(obj, np.ndarray):
        a = obj.detach().cpu().contiguous().numpy() if torch.is_tensor(obj) else np.ascontiguousarray(obj)
        h.update(f"<{a.dtype.str}{a.shape}>".encode() + a.tobytes())
    else:
        h.update(repr(obj).encode())


def read_checked(path) -> dict:
    """A torch or Lightning checkpoint file as a dict, read with ``weights_only=True`` (nothing but
    tensors and plain containers is unpickled), nested at most MAX_DEPTH deep and checked against
    its stored digest, if any."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: no such checkpoint file")
    if os.path.getsize(path) == 0:
        raise CheckpointError(f"{path}: an empty file (0 bytes), not a checkpoint")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(f"{path}: refused: it holds more than tensors and plain data ({_first_line(err)})") from None
    except RecursionError:
        raise CheckpointError(f"{path}: nested too deeply to read") from None
    except Exception as err:   # torch's reader on bytes that are no checkpoint: whatever it raises
        raise CheckpointError(f"{path}: corrupted or truncated ({_first_line(err)})") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: expected a dict of state, got {type(data).__name__}")
    check_depth(path, "the file's data", data)
    stored = data.pop(CHECKSUM_KEY, None)
    if stored is not None and stored != content_digest(data):
        raise CheckpointError(f"{path}: corrupted (checksum mismatch)")
    return data


def _first_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return " ".join(lines[0].split())[:200] if lines else type(err).__name__


def save_checked(data: dict, path) -> None:
    """torch.save ``data`` with its content digest, atomically (scratch.checkpoint.atomic_write)."""
    data = dict(data)
    data[CHECKSUM_KEY] = content_digest(data)
    buffer = io.BytesIO()
    torch.save(data, buffer)
    common.atomic_write(path, lambda f: f.write(buffer.getvalue()))


def _record(ckpt: Checkpoint) -> dict:
    """Everything but the arrays torch keeps itself: spec, position, history, optimizer extras."""
    return {"spec": ckpt.spec, "epoch": ckpt.epoch, "batch": ckpt.batch, "step": ckpt.step,
            "history": ckpt.history, "epoch_sums": ckpt.epoch_sums, "optimizer_extra": ckpt.optimizer_extra,
            "stopped": ckpt.stopped}


def _torch_pair(spec, params: dict | None = None, buffers: dict | None = None):
    model = build(spec, params, buffers)
    named = scratch_named_parameters(model)
    from torch_ref.optimizers import make_torch_optimizer  # here: optimizers import nothing of this module

    return model, named, make_torch_optimizer(spec.optimizer, list(named.values()), seed=spec.seed,
                                              transposed=[name in model.transposed for name in named])


def to_torch(ckpt: Checkpoint) -> tuple[dict, dict]:
    """(model state_dict, optimizer state_dict) of the spec's torch twin holding the checkpoint."""
    model, named, optimizer = _torch_pair(parse_spec(ckpt.spec), ckpt.params, ckpt.buffers or None)
    optimizer_from_common(optimizer, named, ckpt.optimizer, ckpt.optimizer_extra, model.transposed)
    return model.state_dict(), optimizer.state_dict()


def from_torch(model_state: dict, optimizer_state: dict | None, record: dict) -> Checkpoint:
    """A Checkpoint from a torch state_dict of the spec's model (keys ``linears.<i>.weight``), an
    optimizer state_dict (or None) and nnparity's record (spec, position, history; at least the
    spec), each checked before it is used (CheckpointError naming the field)."""
    try:
        spec = parse_spec(record["spec"])
    except SpecError as err:
        raise CheckpointError(f"spec: {err}") from None
    model, named, optimizer = _torch_pair(spec)
    _check_tensors("model", model_state, model.state_dict())
    if optimizer_state is not None:
        _check_optimizer_state(optimizer_state, list(named.values()))
    try:
        model.load_state_dict(model_state)
        if optimizer_state is not None:
            optimizer.load_state_dict(optimizer_state)
    except (RuntimeError, ValueError, KeyError, TypeError, IndexError) as err:
        raise CheckpointError(f"the state does not fit the spec's model: {_first_line(err)}") from None
    state, extra = optimizer_to_common(optimizer, named, model.transposed)
    for key in ("optimizer_extra", "epoch_sums", "history"):
        if record.get(key) is not None and not isinstance(record[key], dict):
            raise CheckpointError(f"nnparity.{key}: expected a table, got {type(record[key]).__name__}")
    extra.update(record.get("optimizer_extra") or {})
    sums = record.get("epoch_sums") or {"loss": 0.0, "steps": 0, "correct": 0, "scored": 0}
    history = record.get("history") or {f: [] for f in common.HISTORY_FIELDS}
    return Checkpoint(spec=record["spec"], params=to_scratch(model), buffers=buffers_to_scratch(model),
                      optimizer=state, optimizer_extra=extra,
                      backend=record.get("backend", "torch"), epoch=record.get("epoch", 0),
                      batch=record.get("batch", 0), step=record.get("step", 0), history=history,
                      epoch_sums=sums, stopped=record.get("stopped"))


def _check_tensors(where: str, given, expected: dict) -> None:
    """``given``: a state_dict of the names in ``expected``, each a tensor of its dtype and shape."""
    if not isinstance(given, dict):
        raise CheckpointError(f"{where}: expected a state_dict (names -> tensors), got {type(given).__name__}")
    for name, value in given.items():
        like = expected.get(name)
        if like is None:
            raise CheckpointError(f"{where}: {shown(name, 40)}: not in the spec's model ({', '.join(expected)})")
        _check_like(f"{where}: {name}", value, like)


def _check_like(where: str, value, like: torch.Tensor) -> None:
    if not torch.is_tensor(value) or value.dtype != like.dtype or tuple(value.shape) != tuple(like.shape):
        got = f"{value.dtype} of shape {tuple(value.shape)}" if torch.is_tensor(value) else type(value).__name__
        raise CheckpointError(f"{where}: expected a {like.dtype} tensor of shape {tuple(like.shape)}, got {got}")


def _check_optimizer_state(state, params: list) -> None:
    """A torch optimizer state_dict for ``params``: {"state": {index: {key: tensor}}, "param_groups":
    [{"params": [indices], ...}]}, moments of their parameter's dtype and shape, steps counts."""
    if not isinstance(state, dict) or not isinstance(state.get("state"), dict) \
            or not isinstance(state.get("param_groups"), list):
        raise CheckpointError(f"optimizer: expected a state_dict {{'state': {{...}}, 'param_groups': [...]}}, "
                              f"got {shown(state, 40) if not isinstance(state, dict) else sorted(map(str, state))}")
    for group in state["param_groups"]:
        if not isinstance(group, dict) or not isinstance(group.get("params"), list):
            raise CheckpointError("optimizer: param_groups: expected tables with a 'params' list")
    for index, entries in state["state"].items():
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(params):
            raise CheckpointError(f"optimizer: state: {shown(index, 40)}: expected a parameter index 0 to "
                                  f"{len(params) - 1}")
        if not isinstance(entries, dict):
            raise CheckpointError(f"optimizer: state[{index}]: expected a table, got {type(entries).__name__}")
        for key, value in entries.items():
            where = f"optimizer: state[{index}].{shown(key, 40)}"
            if key == "step":
                _check_step(where, value)
            else:
                _check_like(where, value, params[index])


def _check_step(where: str, value) -> None:
    if torch.is_tensor(value):
        if value.numel() != 1 or value.is_complex():
            raise CheckpointError(f"{where}: expected one step count, got a tensor of shape {tuple(value.shape)}")
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    count("optimizer", where.split(": ", 1)[1], value)


def write_torch(ckpt: Checkpoint, path) -> None:
    """A ``.pt`` file: {"model": state_dict, "optimizer": state_dict, "nnparity": record}."""
    model_state, optimizer_state = to_torch(ckpt)
    save_checked({"model": model_state, "optimizer": optimizer_state, "nnparity": _record(ckpt)}, path)


def read_torch(path, spec: dict | None = None) -> Checkpoint:
    """A ``.pt`` file (write_torch's, or a user's {"model", "optimizer"} dict; then ``spec`` is needed)."""
    data = read_checked(path)
    if "model" not in data:
        raise CheckpointError(f"{path}: expected a dict with 'model' (a state_dict) and 'optimizer'")

    def convert(record):
        if "step" not in record:
            record = dict(record, **_torch_position(path, record, data.get("optimizer")))
        return from_torch(data["model"], data.get("optimizer"), record)
    return _with_spec(path, data, convert, spec)


def _torch_position(path, record: dict, optimizer_state) -> dict:
    """The position of a user's torch checkpoint (no nnparity record): the steps its optimizer
    counted (Adam's ``step``), as whole epochs of the spec's batches and the batch past them;
    without a count, the start."""
    try:
        counts = {float(state["step"]) for state in _states(optimizer_state)
                  if isinstance(state, dict) and "step" in state and not isinstance(state["step"], (bool, str))}
    except (TypeError, ValueError, RuntimeError):   # no count here: the checks of from_torch say what it is
        return {}
    step = counts.pop() if len(counts) == 1 else 0.0
    if not (step.is_integer() and 0 < step <= 2**53):
        return {}
    step = int(step)
    epoch, batch = divmod(step, spec_layout(path, record["spec"]).steps_per_epoch)
    return {"epoch": epoch, "batch": batch, "step": step}


def _states(optimizer_state) -> list:
    state = optimizer_state.get("state") if isinstance(optimizer_state, dict) else None
    return list(state.values()) if isinstance(state, dict) else []


def read_lightning(path, spec: dict | None = None) -> Checkpoint:
    """A Lightning ``.ckpt`` of torch_ref.lightning.SpecModule: its ``state_dict`` (keys
    ``model.linears.<i>.weight``), its first ``optimizer_states`` entry and nnparity's record (which
    SpecModule adds; without it, ``spec`` is needed and the position comes from Lightning's epoch
    and global_step, the history empty)."""
    data = read_checked(path)
    if "state_dict" not in data:
        raise CheckpointError(f"{path}: not a Lightning checkpoint (no state_dict)")
    if not isinstance(data["state_dict"], dict):
        fail(path, "state_dict", f"expected a state_dict (names -> tensors), got {type(data['state_dict']).__name__}")
    optimizers = data.get("optimizer_states") or [None]
    if not isinstance(optimizers, list):
        fail(path, "optimizer_states", f"expected a list of optimizer state_dicts, got {type(optimizers).__name__}")
    for key in ("epoch", "global_step"):
        count(path, key, data.get(key, 0))
    model_state = {k[len("model."):]: v for k, v in data["state_dict"].items()
                   if isinstance(k, str) and k.startswith("model.")}

    def convert(record):
        if "step" not in record:
            record = dict(record, **_lightning_position(path, record, data.get("epoch", 0), data.get("global_step", 0)))
        return from_torch(model_state, optimizers[0], dict(record, backend="lightning"))
    return _with_spec(path, data, convert, spec)


def _lightning_position(path, record: dict, epoch: int, global_step: int) -> dict:
    """The position of a checkpoint Lightning wrote itself (no nnparity record): its epoch in
    progress and its global step; the batch within the epoch is what the steps leave past the
    epoch's start (the spec's batches an epoch: a save at an epoch's end is that epoch's last batch)."""
    per_epoch = spec_layout(path, record["spec"]).steps_per_epoch
    batch = global_step - epoch * per_epoch
    return {"epoch": epoch, "step": global_step, "batch": batch if 0 <= batch <= per_epoch else 0}


def _with_spec(path, data: dict, convert, spec: dict | None) -> Checkpoint:
    """The checkpoint ``convert(record)`` makes of nnparity's record (the spec given, if any),
    checked as an .npz is (scratch.checkpoint.check)."""
    record = data.get("nnparity")
    if record is not None and not isinstance(record, dict):
        fail(path, "nnparity", f"expected a table (nnparity's record), got {type(record).__name__}")
    record = dict(record or {})
    if spec is not None:
        record["spec"] = spec
    if "spec" not in record:
        raise CheckpointError(f"{path}: holds no spec; name the spec it was trained from")
    try:
        ckpt = convert(record)
    except CheckpointError as err:
        raise CheckpointError(f"{path}: {err}") from None
    common.check(ckpt, path)
    return ckpt
