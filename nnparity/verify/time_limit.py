"""A time limit on each call into user code, so a derivative that never returns cannot hang verify.

A repeating alarm (scratch.signals.alarm, SIGALRM) interrupts pure-Python loops and returns from
long NumPy calls; it re-fires every half second, so user code that swallows the first
interruption is stopped by the next. Where no timer is available (another thread than the main
one, or no SIGALRM on the platform), the alarm is not armed.

Inside a verification run in its own process (nnparity.verify.child), each limited call also
posts its deadline and its name to the parent (``Watch``), which ends the child from outside once
the deadline has passed by ``GRACE_S``: user code that ignores SIGALRM, resets the timer or
catches the timeout in a loop cannot hang verify.

The limit counts the time the call could run: time its process spent ready but waiting for a CPU
(Linux's /proc/PID/schedstat), a busy machine's doing and not the call's, is added to the deadline,
up to ``MAX_STRETCH`` times the limit, on both sides. So a verdict does not depend on the machine
being idle. Where the kernel keeps no such count the limit is wall-clock time.
"""
from __future__ import annotations

import math
import time
from contextlib import contextmanager

from nnparity.verify.errors import OpError
from scratch.signals import alarm, rearm

PROBE_TIME_LIMIT = 5.0     # seconds per call on one probe group: generous for 6×5 arrays
MAX_TIME_LIMIT = 3600.0    # the largest limit a caller may ask for (None: no limit at all)
REFIRE_SECONDS = 0.5       # after the limit, the alarm again this often (user code may swallow one)
GRACE_S = 1.0              # past the deadline, the parent ends a child the alarm did not stop
SPEC_TIME_LIMIT = 60.0     # seconds for the whole check of a spec's network (verify --spec): its user ops included
MAX_STRETCH = 10.0         # a busy machine lengthens a call's wall-clock allowance to at most this many limits
MIN_OWED_S = 0.01          # waiting shorter than this is not worth another alarm


_CONFIGURED = [PROBE_TIME_LIMIT]    # the limit of calls made while a form is read (set by `configured`)


def checked_limit(seconds, name: str = "time_limit_s") -> float | None:
    """``seconds`` if it is None (no limit) or a number in (0, MAX_TIME_LIMIT]; ValueError naming
    ``name`` otherwise."""
    if seconds is None:
        return None
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise TypeError(f"{name}: expected seconds as a number (or None for no limit), got {seconds!r}")
    if not (math.isfinite(seconds) and 0 < seconds <= MAX_TIME_LIMIT):
        raise ValueError(f"{name}: must be more than 0 and at most {MAX_TIME_LIMIT:g} seconds "
                         f"(None: no limit), got {seconds!r}")
    return float(seconds)


def current_limit() -> float | None:
    return _CONFIGURED[-1]


@contextmanager
def configured(seconds: float | None):
    """Calls that take no explicit limit use ``seconds`` inside the block."""
    _CONFIGURED.append(seconds)
    try:
        yield
    finally:
        _CONFIGURED.pop()


def waited_s(pid: int | str = "self") -> float:
    """Seconds the process's main thread has been ready to run but waiting for a CPU (the second
    field of /proc/PID/schedstat); 0.0 where the kernel keeps no such count."""
    try:
        with open(f"/proc/{pid}/schedstat") as f:
            return int(f.read().split()[1]) / 1e9
    except (OSError, ValueError, IndexError):
        return 0.0


def allowance(seconds: float, waited: float) -> float:
    """The wall-clock seconds a call limited to ``seconds`` gets after waiting ``waited`` for a CPU."""
    return seconds + min(waited, (MAX_STRETCH - 1) * seconds)


class ProbeTimeout(OpError):
    """User code ran past the time limit on one probe: bad input (exit 2), not a wrong derivative."""


def timeout_message(what: str, seconds: float) -> str:
    return f"{what} ran for more than {seconds:g} s on one probe (an endless loop?); each call gets {seconds:g} s"


class Watch:
    """The call into user code in progress, shared with a parent process: its deadline
    (time.monotonic, inf: none), its limit, the child's ``waited_s`` when it started, and its name.
    Set by ``time_limit`` in a child; the parent adds the child's waiting since to the deadline."""

    active: "Watch | None" = None     # the one a child process posts to (None elsewhere)

    def __init__(self, numbers, name):
        self.numbers, self.name = numbers, name      # shared ctypes arrays: c_double x 3, c_char x N

    def post(self, deadline: float, seconds: float, waited: float, what: str) -> tuple:
        before = (*self.numbers[:3], self.name.value)
        self.numbers[0], self.numbers[1], self.numbers[2] = deadline, seconds, waited
        self.name.value = what.encode("utf-8", "replace")[:len(self.name) - 1]
        return before

    def restore(self, before: tuple) -> None:
        self.numbers[0], self.numbers[1], self.numbers[2], self.name.value = before

    def overdue(self, pid: int, now: float) -> bool:
        """Whether the call in progress in process ``pid`` has run ``GRACE_S`` past its deadline,
        its waiting for a CPU since it started added."""
        deadline, seconds, waited = self.numbers[0], self.numbers[1], self.numbers[2]
        if now <= deadline + GRACE_S:
            return False
        start = deadline - seconds
        return now > start + allowance(seconds, waited_s(pid) - waited) + GRACE_S

    @property
    def what(self) -> str:
        return self.name.value.decode("utf-8", "replace")


@contextmanager
def time_limit(seconds: float | None, what: str):
    """Raise ProbeTimeout inside the block once it has run ``seconds`` (None: no limit)."""
    watch = Watch.active
    before = None
    started, waited = time.monotonic(), waited_s()
    if watch is not None:
        deadline = math.inf if seconds is None else started + seconds
        before = watch.post(deadline, math.inf if seconds is None else seconds, waited, what)
    try:
        if seconds is None:
            yield
            return

        def stop(signum, frame):
            owed = started + allowance(seconds, waited_s() - waited) - time.monotonic()
            if owed >= MIN_OWED_S:      # it waited for a CPU: the time it could run is not up yet
                rearm(owed, REFIRE_SECONDS)
                return
            raise ProbeTimeout(timeout_message(what, seconds))

        with alarm(seconds, stop, repeat=REFIRE_SECONDS):
            yield
    finally:
        if before is not None:
            watch.restore(before)
