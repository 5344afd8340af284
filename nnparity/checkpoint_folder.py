"""The ``--checkpoint DIR`` of `nnparity train`: made if missing, held by one live run at a time.

The hold is an flock on ``DIR/.nnparity-lock``, taken before anything in DIR is looked at and kept
until the run ends (the kernel releases it when the process dies, SIGKILL included): a second
run into DIR is refused with one line naming it, instead of writing over the first one's
checkpoint. The lock file stays (empty); removing it would let a waiting run lock a file no
other run sees.
"""
from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager

from nnparity.usage import UsageError

LOCK_FILE = ".nnparity-lock"
BUSY = "busy"


@contextmanager
def held(folder: str):
    """DIR made if missing and locked for the ``with`` block; UsageError naming it if it cannot
    be made or another live run holds it."""
    _make(folder)
    try:
        fd = os.open(os.path.join(folder, LOCK_FILE), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    except OSError as err:
        raise UsageError(f"--checkpoint: cannot use {folder}: {err.strerror or err}") from None
    try:
        refused = _lock(fd)
        if refused == BUSY:
            raise UsageError(f"--checkpoint: {folder} is in use by another run (it holds {LOCK_FILE}); "
                             f"wait for it to end, or name another directory")
        if refused is not None:
            raise UsageError(f"--checkpoint: cannot lock {folder}: {refused}")
        yield
    finally:
        os.close(fd)


@contextmanager
def free(folder: str, flag: str):
    """For the ``with`` block, hold ``folder`` if it is a run's checkpoint folder (it has a lock
    file), so that no live run's checkpoint is written over (``convert ... DIR/checkpoint.npz``);
    UsageError naming ``flag`` if a live run holds it. A folder without a lock file is left as it is."""
    try:
        fd = os.open(os.path.join(folder, LOCK_FILE), os.O_RDONLY | os.O_CLOEXEC)
    except OSError:   # no lock file: not a run's folder
        yield
        return
    try:
        if _lock(fd) == BUSY:    # another failure (a file system without locks): as without a lock file
            raise UsageError(f"{flag}: {folder} is in use by a live run (it holds {LOCK_FILE}); wait for it "
                             f"to end, or write elsewhere")
        yield
    finally:
        os.close(fd)


def _lock(fd: int) -> str | None:
    """Lock ``fd`` (exclusive, not waiting): None once locked, BUSY if a live run holds it, else why not."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return BUSY
    except OSError as err:
        return err.strerror or str(err)
    return None


def _make(folder: str) -> None:
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise UsageError(f"--checkpoint: {folder} is a file; expected a directory (made if missing)")
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as err:
        raise UsageError(f"--checkpoint: cannot make the directory {folder}: {err.strerror or err}") from None
