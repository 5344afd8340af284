"""A command run in a forked child process, so that user code cannot end it with a status of its own.

A spec's user op runs inside check, train, compare and convert (its import, ``__init__``,
``forward``, ...). scratch.user_code catches ``sys.exit`` and ``os._exit`` there, but
``posix._exit``, a signal the process sends itself or a crash end a process before anything in it
can answer. So the command line runs these commands in a forked child: the child does the whole
command, sends its exit status through a pipe as its last act, and ends. The parent returns that
status; a child that ended without sending one is reported in one line, exit 2, naming the user
code that was running (scratch.user_code.watched_by), never passed through as the tool's verdict.

Signals: SIGINT or SIGTERM sent to the parent (``kill PID``) is passed on to the child, which stops
as every command does (one line, 130 or 143) and sends that status; a second one ends the child
at once (SIGKILL) and the parent prints the line. One the child sent its parent (user code
signalling nnparity) ends the child and is user code's doing: one line, exit 2. The child is ended by the kernel if the parent
dies (SIGKILL included), so no orphan trains on. Linux only (the parent-death signal); elsewhere
the command runs in its own process.
"""
from __future__ import annotations

import ctypes
import mmap
import os
import select
import signal
import sys
import traceback

from nnparity import interrupts
from scratch import user_code
from scratch.signals import STOP_SIGNALS, Interrupted

COMMANDS = ("check", "train", "compare", "convert")   # the commands that run a spec's user code
PR_SET_PDEATHSIG = 1
NAME_BYTES = 400
POLL_S = 0.05      # how often the waiting parent looks for a stop signal
STOPPED = tuple(128 + signum for signum in STOP_SIGNALS)    # the status of a command a stop signal ended


def available() -> bool:
    return sys.platform.startswith("linux") and hasattr(os, "fork")


def exit_status(run, command: str) -> int:
    """``run()`` (the command: its exit status) in a forked child; the status it sent back."""
    in_progress = (ctypes.c_char * NAME_BYTES).from_buffer(mmap.mmap(-1, NAME_BYTES))   # shared, anonymous
    receive, send = os.pipe()
    for stream in (sys.stdout, sys.stderr):   # nothing buffered here is written twice
        stream.flush()
    parent = os.getpid()
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)   # none lands between fork and forwarding
    try:
        pid = os.fork()
    except OSError:     # no process to spare (a process limit): the command runs here
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        return run()
    if pid == 0:
        os.close(receive)
        _child(run, command, send, in_progress, parent, blocked)
    os.close(send)
    sent, wait_status, signals = _wait(pid, receive, blocked)
    during = in_progress.value.decode(errors="replace")
    by_child = [signum for signum, sender in signals if sender == pid]
    if by_child:
        print(f"nnparity {command}: user code{f' in {during}' if during else ''} sent "
              f"{_signal_name(by_child[0])} to nnparity's own process; user code does not decide the exit status",
              file=sys.stderr)
        return 2
    if sent in STOPPED and not signals and during:   # a stop signal none was sent to nnparity: user code's own
        print(f"nnparity {command}: the signal came from user code in {during} (it signalled its own process); "
              f"user code does not decide the exit status", file=sys.stderr)
        return 2
    if sent is not None:
        return sent
    if signals:
        print(interrupts.message(command, Interrupted(signals[0][0])), file=sys.stderr)
        return interrupts.exit_code(Interrupted(signals[0][0]))
    print(f"nnparity {command}: {_ended(wait_status, in_progress.value)}", file=sys.stderr)
    return 2


def _child(run, command: str, send: int, in_progress, parent: int, blocked) -> None:
    """The command, then its status on the pipe; never returns."""
    _die_with(parent)
    user_code.watched_by(in_progress)
    user_code.note_unraisable()
    user_code.guard_shared()
    _command_output_apart()
    signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
    try:
        status = run()
    except BaseException:    # noqa: B036 — ours, a bug: shown as the interpreter would show it
        traceback.print_exc()
        status = 1
    ignored = user_code.unraisable_message()
    if ignored is not None:
        print(f"nnparity {command}: {ignored}", file=sys.stderr)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):   # a stdout already reported as unwritable
            pass
    os.write(send, f"{status}\n".encode())
    os._exit(status)


def _command_output_apart() -> None:
    """The command's own output (sys.stdout) keeps the real standard output; descriptor 1 itself
    points at stderr, so that user code writing to it directly (``os.write(1, ...)``, a C
    library's printf) cannot put a line into a ``--json`` object."""
    try:
        sys.stdout.flush()
        command_out = os.dup(sys.stdout.fileno())
        os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    except (AttributeError, OSError, ValueError):   # streams without a descriptor (a test's capture)
        return
    line_buffered = getattr(sys.stdout, "line_buffering", False)
    sys.stdout = open(command_out, "w", buffering=1 if line_buffered else -1, encoding=sys.stdout.encoding,
                      errors=sys.stdout.errors)


def _die_with(parent: int) -> None:
    """Have the kernel end this process (SIGKILL) when its parent dies; end now if it already has."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:
        os._exit(1)


def _wait(pid: int, receive: int, blocked) -> tuple[int | None, int, list[tuple[int, int]]]:
    """(the status the child sent, or None; its wait status; the stop signals the parent received
    meanwhile, as (signal, sender's pid)).

    Stop signals stay blocked here and are taken with sigtimedwait, which tells who sent each: one
    the child sent (user code signalling its parent) ends the child at once; any other is passed
    on, and a second one ends the child."""
    received: list[tuple[int, int]] = []
    sent = b""
    while not sent.endswith(b"\n"):   # the status line, or the end of the pipe
        for info in _pending():
            received.append((info.si_signo, info.si_pid))
            ours = info.si_pid != pid and len(received) == 1
            os.kill(pid, info.si_signo if ours else signal.SIGKILL)
        if select.select([receive], [], [], POLL_S)[0]:
            chunk = os.read(receive, 64)
            if not chunk:
                break
            sent += chunk
    os.close(receive)
    _, wait_status = os.waitpid(pid, 0)
    for _ in _pending():    # a signal once the child has ended changes nothing
        pass
    signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
    text = sent.decode(errors="replace").strip()
    return (int(text) if text.isdigit() else None), wait_status, received


def _pending():
    """The stop signals pending (blocked) for this process, each taken off as it is yielded."""
    while (info := signal.sigtimedwait(STOP_SIGNALS, 0)) is not None:
        yield info


def _ended(wait_status: int, where: bytes) -> str:
    code = os.waitstatus_to_exitcode(wait_status)
    how = f"exit status {code}" if code >= 0 else f"signal {_signal_name(-code)}"
    during = where.decode(errors="replace")
    if during:
        return (f"user code ended the run with {how} in {during}, before it had a result; user code does not "
                f"decide the exit status")
    return (f"the run ended with {how} before it had a result (posix._exit in user code, a signal or a crash); "
            f"user code does not decide the exit status")


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return str(signum)
