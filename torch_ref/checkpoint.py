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
- ``content_digest``: SHA-256 of a checkpoint dict's content (tensors by bytes), which
  ``AtomicCheckpointIO`` stores in every Lightning checkpoint it writes and checks when it reads one.
"""
from __future__ import annotations

import hashlib
import io
import os
import pickle
import zipfile

import numpy as np
import torch

from scratch import checkpoint as common
from scratch.checkpoint import Checkpoint, CheckpointError
from scratch.spec import parse_spec
from torch_ref.model import (build, load_scratch_parameters, scratch_named_parameters, scratch_to_tensor,
                             tensor_to_scratch, to_scratch)

CHECKSUM_KEY = "nnparity_checksum"


# ------------------------------------------------------------------------------- optimizers


def optimizer_to_common(optimizer: torch.optim.Optimizer, named: dict) -> tuple[dict, dict]:
    """(name -> {key -> array in scratch layout; ``step`` as int64}, JSON-able extras)."""
    state = {}
    for name, p in named.items():
        entries = optimizer.state.get(p, {})
        state[name] = {key: (np.array(int(value.item()) if torch.is_tensor(value) else int(value), dtype=np.int64)
                             if key == "step" else tensor_to_scratch(name, value))
                       for key, value in entries.items() if value is not None}
    extra = {}
    if getattr(optimizer, "last_step", None):
        extra["last_step"] = dict(optimizer.last_step)
    if isinstance(getattr(optimizer, "rng", None), np.random.Generator):
        extra["rng"] = optimizer.rng.bit_generator.state
    return state, extra


def optimizer_from_common(optimizer: torch.optim.Optimizer, named: dict, state: dict, extra: dict) -> None:
    """Load the common per-parameter state into ``optimizer`` (whose parameters are ``named``)."""
    # torch makes Adam's step a float64 tensor when float64 is the default dtype, else float32.
    step_dtype = torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32
    loaded = {}
    for i, (name, p) in enumerate(named.items()):
        entries = state.get(name, {})
        if entries:
            loaded[i] = {key: torch.tensor(float(value), dtype=step_dtype) if key == "step"
                         else scratch_to_tensor(name, value, p) for key, value in entries.items()}
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
    state, extra = optimizer_to_common(run.optimizer, run.named)
    log_state = run.log.get_state()
    return Checkpoint(spec=run.spec.to_dict(), params=to_scratch(run.model), optimizer=state,
                      optimizer_extra=extra, backend="torch", epoch=epoch, batch=batch, step=step,
                      history=log_state.pop("history"), epoch_sums=log_state, stopped=stopped)


def restore(run, ckpt: Checkpoint) -> None:
    """Put a checkpoint's parameters, optimizer state and history into a fresh torch-loop run."""
    for name, p in run.named.items():
        shape = tuple(tensor_to_scratch(name, p).shape)
        if name not in ckpt.params or ckpt.params[name].shape != shape:
            raise CheckpointError(f"param {name}: not in the checkpoint with the spec's shape {shape}")
    load_scratch_parameters(run.model, ckpt.params)
    optimizer_from_common(run.optimizer, run.named, ckpt.optimizer, ckpt.optimizer_extra)
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
    tensors and plain containers is unpickled) and checked against its stored digest, if any."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"{path}: refused: it holds more than tensors and plain data ({first})") from None
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError) as err:
        raise CheckpointError(f"{path}: corrupted or truncated ({str(err).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: expected a dict of state, got {type(data).__name__}")
    stored = data.pop(CHECKSUM_KEY, None)
    if stored is not None and stored != content_digest(data):
        raise CheckpointError(f"{path}: corrupted (checksum mismatch)")
    return data


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


def _torch_pair(spec, params: dict | None = None):
    model = build(spec, params)
    named = scratch_named_parameters(model)
    from torch_ref.optimizers import make_torch_optimizer  # here: optimizers import nothing of this module

    return model, named, make_torch_optimizer(spec.optimizer, list(named.values()), seed=spec.seed)


def to_torch(ckpt: Checkpoint) -> tuple[dict, dict]:
    """(model state_dict, optimizer state_dict) of the spec's torch twin holding the checkpoint."""
    model, named, optimizer = _torch_pair(parse_spec(ckpt.spec), ckpt.params)
    optimizer_from_common(optimizer, named, ckpt.optimizer, ckpt.optimizer_extra)
    return model.state_dict(), optimizer.state_dict()


def from_torch(model_state: dict, optimizer_state: dict | None, record: dict) -> Checkpoint:
    """A Checkpoint from a torch state_dict of the spec's model (keys ``linears.<i>.weight``), an
    optimizer state_dict (or None) and nnparity's record (spec, position, history; at least the spec)."""
    spec = parse_spec(record["spec"])
    model, named, optimizer = _torch_pair(spec)
    try:
        model.load_state_dict(model_state)
        if optimizer_state is not None:
            optimizer.load_state_dict(optimizer_state)
    except (RuntimeError, ValueError, KeyError) as err:
        raise CheckpointError(f"the state does not fit the spec's model: {str(err).splitlines()[0]}") from None
    state, extra = optimizer_to_common(optimizer, named)
    extra.update(record.get("optimizer_extra", {}))
    sums = record.get("epoch_sums") or {"loss": 0.0, "steps": 0, "correct": 0, "scored": 0}
    history = record.get("history") or {f: [] for f in common.HISTORY_FIELDS}
    return Checkpoint(spec=record["spec"], params=to_scratch(model), optimizer=state, optimizer_extra=extra,
                      backend=record.get("backend", "torch"), epoch=record.get("epoch", 0),
                      batch=record.get("batch", 0), step=record.get("step", 0), history=history,
                      epoch_sums=sums, stopped=record.get("stopped"))


def write_torch(ckpt: Checkpoint, path) -> None:
    """A ``.pt`` file: {"model": state_dict, "optimizer": state_dict, "nnparity": record}."""
    model_state, optimizer_state = to_torch(ckpt)
    save_checked({"model": model_state, "optimizer": optimizer_state, "nnparity": _record(ckpt)}, path)


def read_torch(path, spec: dict | None = None) -> Checkpoint:
    """A ``.pt`` file (write_torch's, or a user's {"model", "optimizer"} dict; then ``spec`` is needed)."""
    data = read_checked(path)
    if "model" not in data:
        raise CheckpointError(f"{path}: expected a dict with 'model' (a state_dict) and 'optimizer'")
    return _with_spec(path, data, lambda record: from_torch(data["model"], data.get("optimizer"), record), spec)


def read_lightning(path, spec: dict | None = None) -> Checkpoint:
    """A Lightning ``.ckpt`` of torch_ref.lightning.SpecModule: its ``state_dict`` (keys
    ``model.linears.<i>.weight``), its first ``optimizer_states`` entry and nnparity's record (which
    SpecModule adds; without it, ``spec`` is needed and the position comes from Lightning's epoch
    and global_step, the history empty)."""
    data = read_checked(path)
    if "state_dict" not in data:
        raise CheckpointError(f"{path}: not a Lightning checkpoint (no state_dict)")
    model_state = {k[len("model."):]: v for k, v in data["state_dict"].items() if k.startswith("model.")}
    optimizers = data.get("optimizer_states") or [None]

    def convert(record):
        if "step" not in record:
            record = dict(record, epoch=int(data.get("epoch", 0)), step=int(data.get("global_step", 0)))
        return from_torch(model_state, optimizers[0], dict(record, backend="lightning"))
    return _with_spec(path, data, convert, spec)


def _with_spec(path, data: dict, convert, spec: dict | None) -> Checkpoint:
    record = dict(data.get("nnparity") or {})
    if spec is not None:
        record["spec"] = spec
    if "spec" not in record:
        raise CheckpointError(f"{path}: holds no spec; name the spec it was trained from")
    try:
        return convert(record)
    except CheckpointError as err:
        raise CheckpointError(f"{path}: {err}") from None
