"""A time limit on each call into user code, so a derivative that never returns cannot hang verify.

A repeating alarm (scratch.signals.alarm, SIGALRM) interrupts pure-Python loops and returns from
long NumPy calls; it re-fires every half second, so user code that swallows the first
interruption is stopped by the next. Where no timer is available (another thread than the main
one, or no SIGALRM on the platform), calls run unlimited.
"""
from __future__ import annotations

from contextlib import contextmanager

from nnparity.verify.load import OpError
from scratch.signals import alarm

PROBE_TIME_LIMIT = 5.0     # seconds per call on one probe group: generous for 6×5 arrays
REFIRE_SECONDS = 0.5       # after the limit, the alarm again this often (user code may swallow one)


_CONFIGURED = [PROBE_TIME_LIMIT]    # the limit of calls made while a form is read (set by `configured`)


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


class ProbeTimeout(OpError):
    """User code ran past the time limit on one probe: bad input (exit 2), not a wrong derivative."""


@contextmanager
def time_limit(seconds: float | None, what: str):
    """Raise ProbeTimeout inside the block once it has run ``seconds`` (None: no limit)."""
    if seconds is None:
        yield
        return

    def stop(signum, frame):
        raise ProbeTimeout(f"{what} ran for more than {seconds:g} s on one probe (an endless loop?); "
                           f"each call gets {seconds:g} s")

    with alarm(seconds, stop, repeat=REFIRE_SECONDS):
        yield
