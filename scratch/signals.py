"""The process's signal handlers, one home for all: what a stop signal becomes (``Interrupted``),
stop signals held until a step ends (``DeferredSignals``), and a repeating alarm (``alarm``).

Handlers can be set only from the main thread: elsewhere ``install`` sets nothing, and ``alarm``
arms no timer. Every user puts back the handlers it found, so they nest: the command line's
(nnparity.interrupts), a checkpointing run's inside it, verify's time limit
(nnparity.verify.time_limit) inside either.
Standard library only.
"""
from __future__ import annotations

import signal
import threading
from contextlib import contextmanager

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(BaseException):
    """SIGINT or SIGTERM stopped the work. ``signum``: the signal; ``path``: the checkpoint written
    after the step in progress before the run stopped (None when none was).

    A BaseException that is not a KeyboardInterrupt: libraries that swallow KeyboardInterrupt
    (Lightning's Trainer exits 1 on it) let it through, and ``with`` blocks unwind on the way out.
    """

    def __init__(self, signum: int, path: str | None = None):
        self.signum, self.path = signum, path
        name = signal.Signals(signum).name
        super().__init__(name if path is None else f"{name}; checkpoint written to {path}")


def on_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def install(handlers: dict) -> dict:
    """Set ``{signum: handler}``; return the handlers they replaced (empty off the main thread,
    where nothing is set)."""
    if not on_main_thread():
        return {}
    return {s: signal.signal(s, handler) for s, handler in handlers.items()}


def restore(previous: dict) -> None:
    """Put back what ``install`` returned."""
    for s, handler in previous.items():
        signal.signal(s, handler)


@contextmanager
def handlers(new: dict):
    """``new`` ({signum: handler}) inside the block, the previous handlers after it. Yields whether
    they were set (False off the main thread)."""
    previous = install(new)
    try:
        yield bool(previous)
    finally:
        restore(previous)


class DeferredSignals:
    """While active (``with``), SIGINT and SIGTERM are only noted (``pending``), so that the step in
    progress ends and a checkpoint is written before the run stops (with Interrupted); the handlers
    that were there before are put back on exit. Off the main thread it does nothing."""

    def __init__(self):
        self.pending: int | None = None
        self._before: dict = {}

    def _note(self, signum, frame):
        self.pending = signum

    def __enter__(self):
        self._before = install(dict.fromkeys(STOP_SIGNALS, self._note))
        return self

    def reclaim(self) -> None:
        """Put the noting handlers back after a library replaced them (Lightning's Trainer installs
        its own SIGTERM handler when fit starts, which ends the run with exit 0 between steps)."""
        if self._before:
            install(dict.fromkeys(STOP_SIGNALS, self._note))

    def __exit__(self, *exc):
        restore(self._before)
        self._before = {}
        return False


def rearm(seconds: float, repeat: float) -> None:
    """From inside ``alarm``'s handler: the next alarm in ``seconds``, then every ``repeat``."""
    signal.setitimer(signal.ITIMER_REAL, seconds, repeat)


def timer_available() -> bool:
    """Whether ``alarm`` can arm a timer here: a Unix interval timer, on the main thread."""
    return hasattr(signal, "setitimer") and on_main_thread()


@contextmanager
def alarm(seconds: float, on_alarm, repeat: float):
    """``on_alarm(signum, frame)`` runs once the block has run ``seconds``, then every ``repeat``
    seconds until it ends (SIGALRM: it interrupts pure-Python loops and returns from long NumPy
    calls). Yields whether a timer was armed (False where ``timer_available()`` is not)."""
    if not timer_available():
        yield False
        return
    with handlers({signal.SIGALRM: on_alarm}):
        try:    # armed inside the try: an alarm due at once may raise before the next line
            signal.setitimer(signal.ITIMER_REAL, seconds, repeat)
            yield True
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
