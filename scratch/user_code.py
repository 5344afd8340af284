"""Running a user's code (a spec's 'module:Class' op: its import, __init__, forward, backward,
torch_module()): whatever it prints goes to stderr, never into the command's output (a --json
object); ending the process or raising is reported as bad input, one line, never as a verdict.

``sys.exit(N)`` (SystemExit) and ``os._exit(N)`` called by that name are caught while the user's
code runs; a process ended by other means (``posix._exit``, a signal sent to itself) cannot be
seen from inside it and ends with the status it chose.
"""
from __future__ import annotations

import contextlib
import os
import sys

from scratch.errors import SpecError, shown


class UserCodeError(SpecError):
    """The user's code ended the process or raised; the message names where."""


class _ProcessExit(BaseException):
    """os._exit(N) while the user's code runs: a BaseException, so ``except Exception`` keeps it."""

    def __init__(self, code):
        super().__init__(code)
        self.code = code


def _exit_refused(code):
    raise _ProcessExit(code)


@contextlib.contextmanager
def running(where: str, field: str = "", exceptions: bool = True):
    """The block runs the user's code at ``where`` (e.g. 'ops:Cube.forward'); ``field`` is the spec
    field that named it. Raises UserCodeError for SystemExit, os._exit, or (``exceptions``) an
    exception; with ``exceptions=False`` the caller words those."""
    real_exit = os._exit
    os._exit = _exit_refused
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    except (SystemExit, _ProcessExit) as err:
        call = "sys.exit" if isinstance(err, SystemExit) else "os._exit"
        raise UserCodeError(field, f"user code called {call}({shown(err.code)}) in {where}") from None
    except (SpecError, MemoryError):
        raise
    except Exception as err:
        if not exceptions:
            raise
        raise UserCodeError(field, f"user code raised {type(err).__name__} in {where}: {_first_line(err)}") from None
    finally:
        os._exit = real_exit


def exit_message(err: SystemExit) -> str:
    """What a SystemExit that no ``running`` block saw says: the call, and the innermost frame it
    passed through (module.function)."""
    tb = err.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    where = "?" if tb is None else f"{tb.tb_frame.f_globals.get('__name__', '?')}.{tb.tb_frame.f_code.co_qualname}"
    return f"user code called sys.exit({shown(err.code)}) in {where}"


def _first_line(err: Exception) -> str:
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
            return self._op.forward(z)

    def backward(self, grad_out):
        with running(f"{self._where}.backward", self._field):
            return self._op.backward(grad_out)

    def __getattr__(self, name):
        return getattr(self._op, name)

    def __setattr__(self, name, value):
        setattr(self._op, name, value)
