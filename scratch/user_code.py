"""Running a user's code (a spec's 'module:Class' op: its import, __init__, forward, backward,
torch_module()): whatever it prints goes to stderr, never into the command's output (a --json
object); ending the process or raising is reported as bad input, one line, never as a verdict.

``sys.exit(N)`` (SystemExit) is caught; so is ``os._exit(N)``, by that name, while the user's code
runs (or through a reference to it taken then). A process ended by other means (``posix._exit``,
a signal sent to itself) cannot be seen from inside it: a parent process that runs the command
(nnparity.forked) reports it, naming the user code in progress from ``watched_by``'s buffer.
"""
from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading

import numpy as np

from scratch.errors import SpecError, shown
from scratch.signals import Interrupted


class UserCodeError(SpecError):
    """The user's code ended the process or raised; the message names where."""


class ProcessExit(SystemExit):
    """os._exit(N) called while the user's code runs (or later, through a reference the user's
    import took then): a SystemExit, so ``except Exception`` keeps it and the CLI reports it."""


_thread_exits: list = []   # os._exit codes called from a thread other than the main one


def _exit_refused(code):
    if threading.current_thread() is not threading.main_thread():
        _thread_exits.append(code)
        raise SystemExit(code)    # ends that thread; threading ignores a plain SystemExit silently
    raise ProcessExit(code)


_watch: list = []   # [a shared char buffer] where the user code in progress is named, for a watching parent


def watched_by(buffer) -> None:
    """From now on, name the user code in progress in ``buffer`` (a ctypes char array shared with
    the parent process, which reads it if this process ends without a result)."""
    _watch[:] = [buffer]


def _name_in_progress(where: str) -> str:
    """Write ``where`` into the watched buffer; return what it held."""
    if not _watch:
        return ""
    buffer = _watch[0]
    before = buffer.value.decode(errors="replace")
    buffer.value = where.encode(errors="replace")[:len(buffer) - 1]
    return before


@contextlib.contextmanager
def running(where: str, field: str = "", exceptions: bool = True):
    """The block runs the user's code at ``where`` (e.g. 'ops:Cube.forward'); ``field`` is the spec
    field that named it. Raises UserCodeError for SystemExit, os._exit, or (``exceptions``) an
    exception; with ``exceptions=False`` the caller words those."""
    real_exit = os._exit
    os._exit = _exit_refused
    outer = _name_in_progress(where)
    stopped = False
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
        if _thread_exits:
            raise UserCodeError(field, f"user code called os._exit({shown(_thread_exits[0])}) in a thread it "
                                       f"started in {where}")
        changed = tampered()
        if changed is not None:
            raise UserCodeError(field, tampered_message(changed, where))
    except SystemExit as err:
        raise UserCodeError(field, f"user code called {_call(err)}({shown(err.code)}) in {where}") from None
    except (SpecError, MemoryError):
        raise
    except Interrupted:   # a stop signal: the parent process (nnparity.forked) tells whose it was by the name left
        stopped = True
        raise
    except Exception as err:
        if not exceptions:
            raise
        raise UserCodeError(field, f"user code raised {type(err).__name__} in {where}: {_first_line(err)}") from None
    except BaseException as err:
        if not _raised_by_user(err):
            raise
        raise UserCodeError(field, f"user code raised {type(err).__name__} (a BaseException) in "
                                   f"{where}{_colon_first_line(err)}") from None
    finally:
        os._exit = real_exit
        _thread_exits.clear()
        if not stopped:
            _name_in_progress(outer)


def _raised_by_user(err: BaseException) -> bool:
    """Whether a BaseException that is neither SystemExit nor a stop signal came from user code: all
    do, but a KeyboardInterrupt where SIGINT still raises it (no command's handler installed) may
    be a real Ctrl-C."""
    return not isinstance(err, KeyboardInterrupt) or signal.getsignal(signal.SIGINT) is not signal.default_int_handler


_unraisable: list = []   # the first exception Python could not raise (a __del__'s), as (exception, where)


def note_unraisable() -> None:
    """From now on, an exception Python ignores (raised in a ``__del__``, a weakref callback) is
    kept, not printed as a traceback; ``unraisable_message`` words it."""
    def keep(unraisable):
        if not _unraisable:
            where = getattr(unraisable.object, "__qualname__", None) or type(unraisable.object).__name__
            _unraisable.append((unraisable.exc_value, f"{getattr(unraisable.object, '__module__', '?')}.{where}"))
    sys.unraisablehook = keep


def unraisable_message() -> str | None:
    """The line for the first exception Python ignored, or None when there was none. Python goes
    on after it (a ``sys.exit`` in a ``__del__`` ends nothing), so the result stands."""
    if not _unraisable:
        return None
    err, where = _unraisable[0]
    what = f"called {_call(err)}({shown(err.code)})" if isinstance(err, SystemExit) else \
        f"raised {type(err).__name__}{_colon_first_line(err)}"
    return f"user code {what} in {where}, which Python ignores there (it ends nothing); the result stands"


SHARED = ("builtins", "math", "operator", "numpy", "numpy.linalg", "numpy.ma")   # not torch: its own lazy
# imports rebind some of its names (torch._dynamo wraps torch.manual_seed)
OWN = ("scratch", "nnparity", "torch_ref")      # the tool's own modules: every one loaded
_seen = [0]     # how many modules were loaded when the snapshot was last extended
_snapshot: dict = {}    # module name -> its attributes when first seen (before user code ran, where it could)


def tampered_message(changed: str, where: str) -> str:
    return (f"user code replaced {changed} in {where}; the tool computes and compares with it, so user code must "
            f"leave NumPy, builtins and the tool's own modules as they are")


def guard_shared() -> None:
    """Remember the attributes of the modules the tool computes and compares with (NumPy, torch,
    builtins, its own), so that ``tampered`` can tell when user code replaced one."""
    for name, module in list(sys.modules.items()):
        if module is not None and (name in SHARED or name.split(".")[0] in OWN):
            _snapshot.setdefault(name, dict(vars(module)))
    _seen[0] = len(sys.modules)


def tampered() -> str | None:
    """The first attribute of a guarded module that is no longer what it was (``numpy.max``), or
    None; a module loaded since the last call is remembered from now on."""
    for name, attributes in _snapshot.items():
        module = sys.modules.get(name)
        current = vars(module) if module is not None else {}
        for key, value in attributes.items():
            if current.get(key, _snapshot) is not value:
                return f"{name}.{key}"
    if _snapshot and len(sys.modules) != _seen[0]:
        guard_shared()
    return None


def exit_message(err: SystemExit) -> str:
    """What a SystemExit that no ``running`` block saw says: the call, and the innermost frame it
    passed through (module.function)."""
    where, tb = "?", err.__traceback__
    while tb is not None:
        module = tb.tb_frame.f_globals.get("__name__", "?")
        if module != __name__:   # not _exit_refused, the os._exit stand-in
            where = f"{module}.{tb.tb_frame.f_code.co_qualname}"
        tb = tb.tb_next
    return f"user code called {_call(err)}({shown(err.code)}) in {where}"


def _call(err: SystemExit) -> str:
    return "os._exit" if isinstance(err, ProcessExit) else "sys.exit"


def _colon_first_line(err: BaseException) -> str:
    line = _first_line(err)
    return f": {line}" if line else ""


def _first_line(err: BaseException) -> str:
    try:
        return str(err).split("\n")[0]
    except Exception:  # a __str__ that raises too
        return f"<{type(err).__name__}>"


class UserActivation:
    """A user's activation op, each call run under ``running``: the op itself, otherwise unchanged
    (attributes read through)."""

    def __init__(self, op, where: str, field: str = ""):
        self.__dict__["_op"], self.__dict__["_where"], self.__dict__["_field"] = op, where, field

    def forward(self, z):
        with running(f"{self._where}.forward", self._field):
            a = self._op.forward(z)
        return _array_like(a, z, f"{self._where}.forward", self._field)

    def backward(self, grad_out):
        with running(f"{self._where}.backward", self._field):
            grad_in = self._op.backward(grad_out)
        return _array_like(grad_in, grad_out, f"{self._where}.backward", self._field)

    def __getattr__(self, name):
        return getattr(self._op, name)

    def __setattr__(self, name, value):
        setattr(self._op, name, value)


def _array_like(value, given, where: str, field: str):
    """What an activation's forward or backward returned, if it is an array of real floats shaped as
    its argument (a subclass, np.matrix say, as a plain array); UserCodeError otherwise: a string, a
    list, None, complex values (never cast to real), masked entries, another shape."""
    if isinstance(value, np.ma.MaskedArray) and np.ma.count_masked(value):
        raise UserCodeError(field, f"{where} returned a masked array with {np.ma.count_masked(value)} masked "
                                   f"entries; expected numbers everywhere")
    if isinstance(value, np.ndarray) and type(value) is not np.ndarray:
        value = np.asarray(value)
    dtype, shape = getattr(value, "dtype", None), getattr(value, "shape", None)
    if dtype is None or shape is None or isinstance(value, type):
        raise UserCodeError(field, f"{where} returned {type(value).__name__}; expected an array shaped as its "
                                   f"argument, {tuple(given.shape)}")
    if getattr(dtype, "kind", None) != "f":
        raise UserCodeError(field, f"{where} returned {dtype} values; expected real floats (an imaginary part is "
                                   f"never dropped)" if getattr(dtype, "kind", None) == "c" else
                            f"{where} returned {dtype} values; expected real floats")
    if tuple(shape) != tuple(given.shape):
        raise UserCodeError(field, f"{where} returned shape {tuple(shape)}; expected its argument's, "
                                   f"{tuple(given.shape)}")
    return value
