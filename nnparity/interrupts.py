"""Ctrl-C and SIGTERM for every command: one line on stderr, exit 130 (SIGINT) or 143 (SIGTERM).

``caught()`` turns both signals into scratch.signals' ``Interrupted`` (the one type every signal
user raises, the checkpointing loops too), so ``with`` blocks unwind, child processes are ended
and temporary folders removed on the way out. A command names what it has finished with
``finished(...)``; the one line says so. Nothing here is specific to one command.

A signal that comes while a module is being imported is held until the import has finished: an
exception thrown into the middle of an import can leave a C extension (torch's C++ half) half
initialized, and a command stopped that way was seen to end in SIGABRT instead of the line.
"""
from __future__ import annotations

import contextlib
import signal
import subprocess
import sys

from scratch.signals import STOP_SIGNALS, Interrupted, handlers, install

SIGNALS = STOP_SIGNALS
_finished: dict[str, str] = {}


def exit_code(err: Interrupted) -> int:
    """The exit status of a command a signal stopped: 128 + its number (130 SIGINT, 143 SIGTERM)."""
    return 128 + err.signum


def _importing(frame) -> bool:
    """Whether ``frame`` is importlib's own (a module is being found, loaded or run for an import)."""
    return frame.f_code.co_filename.startswith("<frozen importlib._bootstrap")


def _in_import(frame) -> bool:
    """Whether ``frame`` or a caller of it is importing a module."""
    while frame is not None:
        if _importing(frame):
            return True
        frame = frame.f_back
    return False


_held: list[int] = []  # the signal held until the import in progress has finished (at most one)
_profile_before: list = []  # the profile function the watch replaced, put back when it ends


def _watch_import_end(frame, event, arg):
    """A profile function (main thread, only while a signal is held): when the outermost import
    frame returns, the held signal is acted on. Interrupted comes out of the import statement,
    with the module imported whole."""
    if event == "return" and _importing(frame) and not _in_import(frame.f_back):
        sys.setprofile(_profile_before.pop() if _profile_before else None)
        _interrupt(_held.pop())


def _interrupt(signum: int):
    install(dict.fromkeys(SIGNALS, signal.SIG_IGN))  # a second Ctrl-C must not cut the clean-up short
    raise Interrupted(signum)


def _raise(signum, frame):
    if _in_import(frame):
        if not _held:  # a second Ctrl-C meanwhile changes nothing
            _held.append(signum)
            _profile_before.append(sys.getprofile())
            sys.setprofile(_watch_import_end)
        return
    _interrupt(signum)


@contextlib.contextmanager
def caught():
    """SIGINT and SIGTERM raise Interrupted inside the block (main thread only; elsewhere a no-op)."""
    with handlers(dict.fromkeys(SIGNALS, _raise)) as installed:
        if not installed:
            yield
            return
        _finished.clear()
        try:
            yield
        finally:
            _drop_held()


def _drop_held() -> None:
    """Forget a held signal, and stop watching for its import's end."""
    if _held and sys.getprofile() is _watch_import_end:  # the block ended inside the import
        sys.setprofile(_profile_before.pop() if _profile_before else None)
    _held.clear()
    _profile_before.clear()


def finished(what: str, key: str | None = None) -> None:
    """Record a finished piece of work for the interrupted line ("scratch trained", say); a later
    call with the same ``key`` replaces it ("3 of 10 epochs", then "4 of 10 epochs")."""
    _finished[key or what] = what


def message(command: str, err: Interrupted) -> str:
    """The one line an interrupted command prints."""
    done = f"; finished before it: {', '.join(_finished.values())}" if _finished else "; nothing had finished"
    return f"nnparity {command}: interrupted by {err}{done}"


def end_child(child: subprocess.Popen, grace: float = 5.0) -> None:
    """Stop a child process: SIGTERM, then SIGKILL after ``grace`` seconds; wait for it."""
    if child.poll() is not None:
        return
    child.terminate()
    try:
        child.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()


def quiet_exit_on_signals() -> None:
    """For a child process (compare's worker): a signal ends it with 128 + signum and no traceback,
    its parent reports. Installed for the child's whole life."""
    install(dict.fromkeys(SIGNALS, _raise))
