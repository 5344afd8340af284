"""The checkpoint format every backend shares: one ``.npz`` file, read with ``allow_pickle=False``.

A checkpoint is a run frozen between two steps (NumPy only; torch_ref/checkpoint.py moves it in
and out of torch and Lightning):

- ``param/<name>``: the parameters in the spec's (scratch's) layout, W as (inputs, units);
- ``optim/<name>/<key>``: per-parameter optimizer state under torch's names (``momentum_buffer``;
  ``step``, ``exp_avg``, ``exp_avg_sq``), arrays in the same layout, ``step`` as an int64;
- ``history/<field>``: the run's History so far (float64 arrays, bit for bit) and step timings;
- ``meta``: UTF-8 JSON: the spec, the backend that wrote it, the position (``epoch``, ``batch``:
  batches of that epoch already done, ``step``: steps done in all), the open epoch's running
  sums, the optimizer's non-array state (random search's generator, the last line search), and
  whether the run had finished (``stopped``);
- ``checksum``: SHA-256 of every other member's name, dtype, shape and bytes.

The batch order needs no generator state: ``scratch.data.batch_order`` draws epoch e's order
from ``default_rng((seed, e))``, a pure function of (seed, epoch), so (epoch, batch) is the
whole position. Writing is atomic (a temporary file in the same directory, fsync, rename, fsync
of the directory): a crash mid-write leaves the previous checkpoint as it was. Loading checks
the checksum and never unpickles: object arrays are refused by NumPy itself.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
from dataclasses import dataclass, field

import numpy as np

from scratch.device import host_copy, to_device
from scratch.signals import DeferredSignals, Interrupted

FORMAT = "nnparity-checkpoint"
VERSION = 1
FILENAME = "checkpoint.npz"          # the name inside a --checkpoint directory (scratch, torch)
# Spec fields a resumed run may change: the epochs to train, and where it trains.
RESUMABLE_CHANGES = ("train.epochs", "device")
HISTORY_FIELDS = ("step_loss", "epoch_loss", "epoch_accuracy", "grad_norm", "step_seconds")


class CheckpointError(ValueError):
    """A checkpoint that cannot be used (missing, corrupted, truncated, another spec's, unsafe);
    the message names the file and what is wrong."""


@dataclass
class Checkpoint:
    """One training run between two steps, in the spec's layout (see the module docstring)."""

    spec: dict                                  # Spec.to_dict()
    params: dict                                # name -> ndarray, (inputs, units)
    optimizer: dict = field(default_factory=dict)       # name -> {key -> ndarray}
    optimizer_extra: dict = field(default_factory=dict)  # JSON-able: rng, last_step
    backend: str = "scratch"
    epoch: int = 0                              # the epoch of the next step
    batch: int = 0                              # batches of that epoch already done
    step: int = 0                               # steps done in all
    history: dict = field(default_factory=lambda: {f: [] for f in HISTORY_FIELDS})
    epoch_sums: dict = field(default_factory=dict)       # RunLog's open-epoch sums
    stopped: str | None = None                  # None: the run goes on; else why it stopped

    def equal(self, other: "Checkpoint") -> bool:
        """Bit for bit: every array np.array_equal (and of one dtype), everything else ==, except
        the step timings and the backend that wrote it."""
        mine, theirs = self._arrays(), other._arrays()
        for arrays in (mine, theirs):
            arrays.pop("history/step_seconds")
        return _same(mine, theirs) and dict(self._meta(), backend="") == dict(other._meta(), backend="")

    # ------------------------------------------------------------------------ serialization

    def _arrays(self) -> dict:
        out = {f"param/{k}": np.asarray(v) for k, v in self.params.items()}
        for name, state in self.optimizer.items():
            out.update({f"optim/{name}/{k}": np.asarray(v) for k, v in state.items()})
        for f in HISTORY_FIELDS:
            out[f"history/{f}"] = np.asarray(self.history.get(f, []), dtype=np.float64)
        return out

    def _meta(self) -> dict:
        return {"format": FORMAT, "version": VERSION, "backend": self.backend, "spec": self.spec,
                "epoch": self.epoch, "batch": self.batch, "step": self.step, "epoch_sums": self.epoch_sums,
                "optimizer_extra": self.optimizer_extra, "stopped": self.stopped}


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(
        a[k].dtype == b[k].dtype and a[k].shape == b[k].shape and np.array_equal(a[k], b[k]) for k in a)


def digest(arrays: dict) -> str:
    """SHA-256 over the arrays' names, dtypes, shapes and bytes, in name order."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}\0{a.dtype.str}\0{a.shape}\0".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _text_array(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-8"), dtype=np.uint8)


def save(ckpt: Checkpoint, path) -> None:
    """Write ``ckpt`` to ``path`` atomically (temporary file, fsync, rename, fsync the directory)."""
    arrays = ckpt._arrays()
    arrays["meta"] = _text_array(json.dumps(ckpt._meta()))
    arrays["checksum"] = _text_array(digest(arrays))
    atomic_write(path, lambda f: np.savez(f, **arrays))


def atomic_write(path, write) -> None:
    """Call ``write(file)`` on a temporary file next to ``path``, then move it over ``path``:
    readers see the old file or the new one, never half of one."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=os.path.basename(path), dir=folder)
    try:
        os.fchmod(fd, umask_mode())   # mkstemp makes it 0600; a written file gets what the umask gives
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)   # the rename itself survives a power cut
    finally:
        os.close(dir_fd)


def umask_mode() -> int:
    """The permissions a new file gets under the process's umask: 0666 & ~umask."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def load(path) -> Checkpoint:
    """Read and check a checkpoint; CheckpointError (naming the file) if it is not a sound one."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}   # reading checks each member's CRC
    except ValueError as err:
        if "allow_pickle" in str(err) or "pickled" in str(err):
            raise CheckpointError(f"{path}: holds pickled objects; refused (a checkpoint holds plain "
                                  f"arrays only)") from None
        raise CheckpointError(f"{path}: corrupted or truncated ({err})") from None
    except (zipfile.BadZipFile, OSError, EOFError, KeyError) as err:
        raise CheckpointError(f"{path}: corrupted or truncated ({type(err).__name__}: {err})") from None
    return _from_arrays(path, arrays)


def _from_arrays(path: str, arrays: dict) -> Checkpoint:
    if "checksum" not in arrays or "meta" not in arrays:
        raise CheckpointError(f"{path}: not an nnparity checkpoint (no meta or checksum)")
    stored = arrays.pop("checksum").tobytes().decode("ascii", "replace")
    if digest(arrays) != stored:
        raise CheckpointError(f"{path}: corrupted (checksum mismatch)")
    meta = json.loads(arrays.pop("meta").tobytes().decode("utf-8"))
    if meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise CheckpointError(f"{path}: format {meta.get('format')!r} version {meta.get('version')!r}; "
                              f"expected {FORMAT!r} version {VERSION}")
    ckpt = Checkpoint(spec=meta["spec"], params={}, backend=meta["backend"], epoch=meta["epoch"],
                      batch=meta["batch"], step=meta["step"], epoch_sums=meta["epoch_sums"],
                      optimizer_extra=meta["optimizer_extra"], stopped=meta["stopped"], history={})
    for key, value in arrays.items():
        kind, _, rest = key.partition("/")
        if kind == "param":
            ckpt.params[rest] = value
        elif kind == "optim":
            name, _, entry = rest.rpartition("/")
            ckpt.optimizer.setdefault(name, {})[entry] = value
        elif kind == "history":
            ckpt.history[rest] = value.tolist()
    return ckpt


def spec_difference(saved: dict, current: dict) -> str | None:
    """The first field where two specs (as dicts) differ, as 'field: saved X, given Y'; None if equal.
    ``train.epochs`` may differ (a resumed run can be given more or fewer epochs), and so may
    ``device`` (a checkpoint holds host arrays: a run saved on a GPU continues on the CPU)."""
    def walk(a, b, where):
        if isinstance(a, dict) and isinstance(b, dict):
            for key in sorted(set(a) | set(b)):
                if f"{where}{key}" in RESUMABLE_CHANGES:
                    continue
                found = walk(a.get(key), b.get(key), f"{where}{key}.")
                if found:
                    return found
            return None
        if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
            return next((d for i, (x, y) in enumerate(zip(a, b)) if (d := walk(x, y, f"{where[:-1]}[{i}]."))),
                        None)
        return None if a == b else f"{where[:-1]}: the checkpoint's is {a!r}, the spec's {b!r}"
    return walk(saved, current, "")


# ----------------------------------------------------------------------- the scratch side


def capture(run, epoch: int, batch: int, step: int, stopped: str | None = None,
            backend: str = "scratch") -> Checkpoint:
    """A scratch run's state (scratch.training's _Run) at position (epoch, batch), ``step`` steps done."""
    state, extra = run.optimizer.get_state()
    log_state = run.log.get_state()
    return Checkpoint(spec=run.spec.to_dict(), params={k: host_copy(p, run.xp) for k, p in run.params.items()},
                      optimizer=state, optimizer_extra=extra, backend=backend, epoch=epoch, batch=batch,
                      step=step, history=log_state.pop("history"), epoch_sums=log_state, stopped=stopped)


def restore(run, ckpt: Checkpoint) -> None:
    """Put a checkpoint's parameters, optimizer state and history into a fresh scratch run."""
    params = run.params
    for name, p in params.items():
        value = ckpt.params[name]
        if value.shape != p.shape:
            raise CheckpointError(f"param {name}: shape {value.shape} in the checkpoint, {p.shape} in the spec")
        p[...] = to_device(value, run.xp)
    run.optimizer.set_state(ckpt.optimizer, ckpt.optimizer_extra)
    run.log.set_state(dict(ckpt.epoch_sums, history=ckpt.history))


# ------------------------------------------------------------------- writing during a run


def default_every(steps_per_epoch: int) -> int:
    """Steps between checkpoints when --every is not given: once per epoch, or every few epochs
    when an epoch has fewer than 100 steps (an fsync per step would dominate a tiny run)."""
    return steps_per_epoch * -(-100 // steps_per_epoch)


class Checkpointer:
    """Where a run writes its checkpoints (``path``), how often (every ``every`` steps; None: only
    when it ends or is interrupted), and the checkpoint it resumes from (``resume``, or None)."""

    def __init__(self, path, every: int | None = None, resume: Checkpoint | None = None):
        self.path, self.every, self.resume = os.fspath(path), every, resume
        self.signals = DeferredSignals()

    def after_step(self, step: int, make) -> None:
        """Write ``make()`` when ``step`` is a multiple of ``every`` or a signal came; after a
        signal, raise Interrupted (the checkpoint is on disk by then)."""
        pending = self.signals.pending
        if pending is None and not (self.every and step % self.every == 0):
            return
        save(make(), self.path)
        if pending is not None:
            raise Interrupted(pending, self.path)

    def finish(self, ckpt: Checkpoint) -> None:
        """The run ended: its last checkpoint, with ``stopped`` set. A signal that came after the
        last step still stops the command as an interruption (the checkpoint is on disk)."""
        save(ckpt, self.path)
        if self.signals.pending is not None:
            raise Interrupted(self.signals.pending, self.path)

    def start(self, epochs: int) -> tuple[int, int, int, bool]:
        """(epoch, batch, step) to start from, and whether there is anything left to train."""
        ck = self.resume
        if ck is None:
            return 0, 0, 0, True
        more = ck.stopped is None or (ck.stopped == "epochs" and ck.epoch < epochs)
        return ck.epoch, ck.batch, ck.step, more and ck.epoch < epochs
