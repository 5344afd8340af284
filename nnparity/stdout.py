"""The command's standard output, for every command at once: a write that fails (a full disk,
``> /dev/full``, a reader that went away) ends the command as one known exit status, not a
traceback, and not an error again when the interpreter flushes at exit.

Exit status: a closed pipe (``nnparity ... | head``) 141, as a process ended by SIGPIPE, without
a message (the reader left on purpose); any other failed write 2, with one line on stderr. Where
standard output is a regular file (``> out.json`` on a full disk), a failed write cuts the file back
to the size it had when the command started: no half a JSON object, and what ``>>`` appended to is kept.
"""
from __future__ import annotations

import contextlib
import errno
import os
import stat
import sys

BROKEN_PIPE_EXIT = 128 + 13   # 128 + SIGPIPE: what a shell shows for a writer killed by a closed pipe


class StdoutError(Exception):
    """Writing or flushing standard output failed; ``os_error`` is why."""

    def __init__(self, os_error: OSError):
        super().__init__(os_error.strerror or str(os_error))
        self.os_error = os_error

    @property
    def broken_pipe(self) -> bool:
        return isinstance(self.os_error, BrokenPipeError) or self.os_error.errno == errno.EPIPE


class _Guarded:
    """``stream`` whose write and flush raise StdoutError instead of OSError."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, text):
        try:
            return self._stream.write(text)
        except OSError as err:
            raise StdoutError(err) from None

    def flush(self):
        try:
            return self._stream.flush()
        except OSError as err:
            raise StdoutError(err) from None

    def __getattr__(self, name):
        return getattr(self._stream, name)


@contextlib.contextmanager
def guarded():
    """Within the block, a failed write to sys.stdout raises StdoutError; the output is flushed
    before the block ends. After a failure the stream's descriptor points at /dev/null, so what is
    still buffered cannot fail a second time at exit."""
    stream = sys.stdout
    size = _file_size(stream)
    sys.stdout = _Guarded(stream)
    try:
        yield
        sys.stdout.flush()
    except StdoutError:
        _drop(stream, size)
        raise
    finally:
        sys.stdout = stream


def exit_status(err: StdoutError, prog: str) -> int:
    """The exit status of a failed write to stdout, with its one line on stderr (none for a closed pipe)."""
    if err.broken_pipe:   # `nnparity ... | head`: the reader left on purpose
        return BROKEN_PIPE_EXIT
    print(f"{prog}: cannot write the output to stdout: {err}", file=sys.stderr)
    return 2


def _fileno(stream) -> int | None:
    try:
        return stream.fileno()
    except (OSError, ValueError, AttributeError):   # pytest's capture, a StringIO: no descriptor
        return None


def _file_size(stream) -> int | None:
    """The size of the regular file stdout writes to (None: a terminal, a pipe, a device)."""
    fd = _fileno(stream)
    try:
        info = None if fd is None else os.fstat(fd)
    except OSError:
        return None
    return info.st_size if info is not None and stat.S_ISREG(info.st_mode) else None


def _drop(stream, size: int | None) -> None:
    fd = _fileno(stream)
    if fd is None:
        return
    if size is not None:
        with contextlib.suppress(OSError):   # what this command wrote, cut off: the file as it was
            if os.fstat(fd).st_size > size:
                os.ftruncate(fd, size)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)
