"""Output paths (a plot, a JSON file, a checkpoint folder), checked before any work starts.

A run that trains for minutes and then cannot write its plot throws the work away; a file that
already exists is the user's and is not replaced unless they say so (``--force``). Results are
printed before a plot is drawn, and a file is written to a temporary name beside it and then
renamed, so an interrupted write never leaves half a file in its place.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from nnparity.usage import UsageError
from scratch.checkpoint import umask_mode


def check_output_file(path: str, flag: str, force: bool = False, suffix: str | None = None,
                      replaceable: bool = False) -> str:
    """Refuse (UsageError naming ``flag``) a path that cannot be written, or that exists while
    neither ``force`` nor ``replaceable`` (a default name the command owns) allows replacing it."""
    p = Path(path)
    if suffix is not None and p.suffix.lower() != suffix:
        raise UsageError(f"{flag}: expected a {suffix} file name, got {path!r}")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise UsageError(f"{flag}: no such directory: {str(parent)!r}; create it first")
    if p.is_dir():
        raise UsageError(f"{flag}: {path!r} is a directory; name a file in it, e.g. {str(p / ('out' + (suffix or '')))!r}")
    if p.exists() and not (force or replaceable):
        raise UsageError(f"{flag}: {path!r} exists; pass --force to overwrite it, or name another file")
    if not os.access(parent, os.W_OK) or (p.exists() and not os.access(p, os.W_OK)):
        raise UsageError(f"{flag}: cannot write {path!r} (permission denied)")
    return path


def check_output_dir(path: str, flag: str, force: bool = False) -> str:
    """Refuse a folder that cannot be made, or a non-empty one unless ``force`` (checkpoints)."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise UsageError(f"{flag}: {path!r} is a file, not a folder")
    if p.is_dir() and any(p.iterdir()) and not force:
        raise UsageError(f"{flag}: {path!r} is not empty; pass --force to write into it, or name another folder")
    parent = p if p.is_dir() else p.parent
    if not parent.is_dir():
        raise UsageError(f"{flag}: no such directory: {str(parent)!r}; create it first")
    if not os.access(parent, os.W_OK):
        raise UsageError(f"{flag}: cannot write in {str(parent)!r} (permission denied)")
    return path


def write_via_temp(path: str, write, flag: str) -> None:
    """``write(tmp_path)`` to a temporary file beside ``path``, then rename it into place."""
    p = Path(path)
    try:   # a folder where no file can be made (a read-only file system, /proc) fails here
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=p.suffix, dir=str(p.parent) if str(p.parent) else ".")
    except OSError as err:
        raise UsageError(f"{flag}: cannot write {path}: {err.strerror or err}") from None
    try:
        os.fchmod(fd, umask_mode())   # mkstemp makes it 0600; the file gets what the umask gives
        os.close(fd)
        write(tmp)
        os.replace(tmp, path)
    except OSError as err:
        raise UsageError(f"{flag}: cannot write {path}: {err.strerror or err}") from None
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
