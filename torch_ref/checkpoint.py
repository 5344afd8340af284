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
        shape = tuple(p.shape)[::-1] if name.endswith(".weight") else tuple(p.shape)
        if name not in ckpt.params or ckpt.params[name].shape != shape:
            raise CheckpointError(f"param {name}: not in the checkpoint with the spec's shape {shape}")
    load_scratch_parameters(run.model, ckpt.params)
    optimizer_from_common(run.optimizer, run.named, ckpt.optimizer, ckpt.optimizer_extra)
    run.log.set_state(dict(ckpt.epoch_sums, history=ckpt.history))
