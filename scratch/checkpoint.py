"""The checkpoint format every backend shares: one ``.npz`` file, read with ``allow_pickle=False``.

A checkpoint is a run frozen between two steps (NumPy only; torch_ref/checkpoint.py moves it in
and out of torch and Lightning):

- ``param/<name>``: the parameters in the spec's (scratch's) layout, W as (inputs, units);
- ``buffer/<name>``: the network's buffers (batch normalization's running_mean, running_var and
  num_batches_tracked, dropout's draws: the mask stream's position), as torch names them;
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
of the directory): a crash mid-write leaves the previous checkpoint as it was, and the temporary
files a killed writer left are removed by the next write. A write that fails (a full disk) is a
CheckpointError. Loading never unpickles (a member's dtype holding objects is refused from its
header), checks every member's declared size from the zip directory before reading it, the
checksum, and every field against its spec (scratch.checkpoint_schema).
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import re
import tempfile
import time
import zipfile
from dataclasses import dataclass, field

import numpy as np

from scratch import checkpoint_schema as schema
from scratch.checkpoint_schema import FORMAT, HISTORY_FIELDS, VERSION, CheckpointError  # noqa: F401
from scratch.device import host_copy, to_device
from scratch.errors import shown
from scratch.limits import memory_limit
from scratch.signals import DeferredSignals, Interrupted

FILENAME = "checkpoint.npz"          # the name inside a --checkpoint directory (scratch, torch)
# Spec fields a resumed run may change: the epochs to train, and where it trains.
RESUMABLE_CHANGES = ("train.epochs", "device")
# A temporary file older than this process is no write of its own: a killed writer's, if its name
# is the writer's pattern (".tmp-", mkstemp's 8 characters, the checkpoint's name).
PROCESS_START = time.time()


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
    buffers: dict = field(default_factory=dict)          # name -> ndarray: running statistics, draw counts

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
        out.update({f"buffer/{k}": np.asarray(v) for k, v in self.buffers.items()})
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
    readers see the old file or the new one, never half of one. A failed write (a full disk, a
    folder gone) leaves ``path`` as it was and no temporary file, and is a CheckpointError."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    try:
        remove_stale_temporaries(folder, os.path.basename(path))
        _write_via_temporary(path, folder, write)
    except OSError as err:
        raise CheckpointError(f"{path}: cannot write the checkpoint ({err.strerror or err}); "
                              f"the previous one, if any, is as it was") from None


def _write_via_temporary(path: str, folder: str, write) -> None:
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


def remove_stale_temporaries(folder: str, name: str) -> None:
    """Remove the temporary files a killed writer of ``name`` left in ``folder``: only names of the
    writer's own pattern, and only those last written before this process started."""
    pattern = re.compile(r"\.tmp-[a-z0-9_]{8}" + re.escape(name))
    for entry in os.scandir(folder):
        if pattern.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
            try:
                if entry.stat(follow_symlinks=False).st_mtime < PROCESS_START:
                    os.remove(entry.path)
            except FileNotFoundError:   # another process removed it first
                pass


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
        with zipfile.ZipFile(path) as zf:
            meta, layout, arrays = _read_members(path, zf)
    except CheckpointError:
        raise
    except zipfile.BadZipFile as err:
        raise CheckpointError(f"{path}: corrupted or truncated (not a zip of arrays: {err})") from None
    except (OSError, EOFError, ValueError, KeyError, NotImplementedError, RuntimeError, OverflowError) as err:
        raise CheckpointError(f"{path}: corrupted or truncated ({type(err).__name__}: "
                              f"{' '.join(str(err).split())[:200]})") from None
    params, optimizer, history, buffers = schema.check_arrays(path, layout, meta, arrays)
    return Checkpoint(spec=meta["spec"], params=params, optimizer=optimizer, optimizer_extra=meta["optimizer_extra"],
                      backend=meta["backend"], epoch=meta["epoch"], batch=meta["batch"], step=meta["step"],
                      history=history, epoch_sums=meta["epoch_sums"], stopped=meta["stopped"], buffers=buffers)


def _read_members(path: str, zf: zipfile.ZipFile) -> tuple[dict, "schema.Layout", dict]:
    """(meta, its layout, the other arrays): meta read and checked first, then every other member's
    declared size checked against what the spec allows, then the members read and the checksum
    compared."""
    infos = {}
    for info in zf.infolist():
        key = info.filename[:-len(".npy")]
        if not info.filename.endswith(".npy") or key in infos:
            schema.fail(path, shown(info.filename), "not an array member of the format, or twice")
        infos[key] = info
    for key in ("meta", "checksum"):
        if key not in infos:
            raise CheckpointError(f"{path}: not an nnparity checkpoint (no {key})")
    _check_declared(path, "meta", infos["meta"], min(schema.MAX_META_BYTES, memory_limit()))
    _check_declared(path, "checksum", infos["checksum"], 64)
    meta = schema.parse_meta(path, _read_array(path, zf, infos["meta"]))
    layout = schema.check_meta(path, meta)
    limits = schema.member_limits(layout, meta, memory_limit())
    for key, info in infos.items():
        if key not in ("meta", "checksum"):
            if key not in limits:
                schema.unexpected_member(path, key, layout)
            _check_declared(path, key, info, limits[key])
    arrays = {key: _read_array(path, zf, info) for key, info in infos.items()}
    stored = arrays.pop("checksum").tobytes().decode("ascii", "replace")
    if digest(arrays) != stored:
        raise CheckpointError(f"{path}: corrupted (checksum mismatch)")
    del arrays["meta"]
    return meta, layout, arrays


def _check_declared(path: str, key: str, info: zipfile.ZipInfo, most: int) -> None:
    """The member's size as the zip directory declares it, before any of it is read."""
    if info.file_size > most + schema.NPY_HEADER_BYTES:
        schema.fail(path, key, f"declares {info.file_size} bytes; the spec allows at most {most} "
                               f"(and a {schema.NPY_HEADER_BYTES}-byte header)")


def _read_array(path: str, zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> np.ndarray:
    """One .npy member, its header parsed and checked before its data is read: no object dtype
    (nothing is unpickled), and exactly the bytes the header's shape needs."""
    key = info.filename[:-len(".npy")]
    with zf.open(info) as f:
        version = np.lib.format.read_magic(f)
        if version not in ((1, 0), (2, 0)):
            schema.fail(path, key, f".npy format version {version}; expected 1.0 or 2.0")
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran_order, dtype = read_header(f, max_header_size=schema.NPY_HEADER_BYTES)
        if dtype.hasobject:
            raise CheckpointError(f"{path}: holds pickled objects; refused (a checkpoint holds plain arrays only)")
        if dtype.itemsize == 0:
            schema.fail(path, key, f"dtype {dtype} holds no bytes")
        data = f.read(info.file_size)   # no more than the directory declared (checked before)
    expected = math.prod(shape) * dtype.itemsize
    if len(data) != expected:
        schema.fail(path, key, f"holds {len(data)} bytes of data; its header's shape {shape} needs {expected}")
    array = np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran_order else "C")
    return array.copy()


def check(ckpt: Checkpoint, path) -> None:
    """Check a checkpoint made from another format (a torch or Lightning file) as load checks an
    .npz: every field against the spec it holds. CheckpointError naming ``path`` if it is unsound."""
    try:
        meta = json.loads(json.dumps(ckpt._meta()))
    except (TypeError, ValueError, RecursionError) as err:
        raise CheckpointError(f"{path}: nnparity's record holds more than numbers, names and lists "
                              f"({' '.join(str(err).split())[:120]})") from None
    schema.check_depth(path, "nnparity's record", meta)
    layout = schema.check_meta(path, meta)
    if not isinstance(ckpt.history, dict):
        schema.fail(path, "history", f"expected a table of lists, got {type(ckpt.history).__name__}")
    for name in HISTORY_FIELDS:
        try:
            np.asarray(ckpt.history.get(name, []), dtype=np.float64)
        except (TypeError, ValueError, OverflowError) as err:
            schema.fail(path, f"history/{name}", f"expected a list of numbers ({' '.join(str(err).split())[:80]})")
    schema.check_arrays(path, layout, meta, ckpt._arrays())


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
                      step=step, history=log_state.pop("history"), epoch_sums=log_state, stopped=stopped,
                      buffers={k: host_copy(b, run.xp) for k, b in run.net.buffers().items()})


def restore(run, ckpt: Checkpoint) -> None:
    """Put a checkpoint's parameters, buffers, optimizer state and history into a fresh scratch run."""
    params = run.params
    for name, p in params.items():
        value = ckpt.params[name]
        if value.shape != p.shape:
            raise CheckpointError(f"param {name}: shape {value.shape} in the checkpoint, {p.shape} in the spec")
        p[...] = to_device(value, run.xp)
    for name, b in run.net.buffers().items():
        if name not in ckpt.buffers or ckpt.buffers[name].shape != b.shape:
            raise CheckpointError(f"buffer {name}: not in the checkpoint with the spec's shape {b.shape}")
    run.net.load_buffers(ckpt.buffers)
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
