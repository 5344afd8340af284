"""Calls into a user's code: each argument a fresh copy, each array returned copied before the
next call (user code may write into its input, np.tanh(z, out=z), or return a buffer it reuses),
within the time limit, and a user's SystemExit or other BaseException turned into one line of bad
input (OpError) that names the call. ``call`` is the guarded call used while a form is read."""
from __future__ import annotations

import warnings

import numpy as np

from nnparity.verify.derivatives import DerivativeShapeError
from nnparity.verify.errors import OpError
from nnparity.verify.time_limit import current_limit, time_limit
from scratch.signals import Interrupted
from scratch.user_code import ProcessExit     # os._exit while a spec's user op runs

PASSED_THROUGH = (KeyboardInterrupt, Interrupted)   # a real Ctrl-C or stop signal: the command's, not user code's


def fresh(value):
    """A copy of an array for user code, which may write into its argument (a tensor keeps its
    graph); anything else as it is."""
    if isinstance(value, np.ndarray):
        return value.copy()
    if callable(getattr(value, "clone", None)) and hasattr(value, "requires_grad"):
        return value.clone()
    return value


def owned(value, what: str = "your code"):
    """What user code returned, its arrays copied as plain arrays (in a tuple or list too): a buffer
    the code reuses cannot change a value already read, and a subclass (np.matrix, a masked array,
    one of the user's) compares as its numbers. OpError for complex values (an imaginary part is
    never dropped) and masked entries (no number to compare)."""
    if isinstance(value, np.ma.MaskedArray) and np.ma.count_masked(value):
        raise OpError(f"{what} returned a masked array with {np.ma.count_masked(value)} masked entries; expected "
                      f"numbers everywhere (a masked entry has no value to check)")
    if isinstance(value, (np.ndarray, np.generic, complex)) and np.iscomplexobj(value):
        raise OpError(f"{what} returned complex values; expected real numbers (the imaginary part is not dropped)")
    if isinstance(value, np.ndarray):
        return np.array(value, subok=False)
    if type(value) in (tuple, list):
        return type(value)(owned(v, what) for v in value)
    return value


def run_user(what: str, fn, *args, **kwargs):
    """fn on fresh copies of its arguments, its arrays copied; a user's SystemExit or other
    BaseException (GeneratorExit, its own) as OpError naming ``what``."""
    try:
        return owned(fn(*(fresh(a) for a in args), **{k: fresh(v) for k, v in kwargs.items()}), what)
    except SystemExit as err:      # user code never decides the exit status
        raise OpError(f"{what} called {exit_call(err)}({err.code!r}); a function under test must return its value") from None
    except (Exception, *PASSED_THROUGH):
        raise
    except BaseException as err:
        raise OpError(f"{what} raised {type(err).__name__}: {first_line(err)} (a BaseException; a function under "
                      f"test must return its value)") from None


def exit_call(err: SystemExit) -> str:
    return "os._exit" if isinstance(err, ProcessExit) else "sys.exit"


def first_line(err: BaseException) -> str:
    try:
        text = str(err)
    except Exception:        # a __str__ that raises too
        return f"<{type(err).__name__}>"
    return text.splitlines()[0] if text else ""


def call(what: str, fn, *args, **kwargs):
    """fn(*args, **kwargs) within the configured time limit; OpError "what raised ...: message"."""
    try:
        with time_limit(current_limit(), what), warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            return run_user(what, fn, *args, **kwargs)
    except OpError:
        raise
    except DerivativeShapeError as err:    # our reading of what it returned: no exception name to show
        raise OpError(f"{what}: {err}") from None
    except Exception as err:
        raise OpError(f"{what} raised {type(err).__name__}: {first_line(err)}") from None


def array(what: str, value, shape=None) -> np.ndarray:
    """value as a float64 array of ``shape`` with some finite entry; OpError otherwise."""
    if value is None:
        raise OpError(f"{what} returned None")
    if np.iscomplexobj(value):
        raise OpError(f"{what} returned complex values; expected real numbers (the imaginary part is not dropped)")
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise OpError(f"{what} returned {type(value).__name__}, not an array ({err})") from None
    if shape is not None and arr.shape != tuple(shape):
        raise OpError(f"{what} returned shape {arr.shape}, expected {tuple(shape)}")
    if arr.size and not np.isfinite(arr).any():
        raise OpError(f"{what} returned NaN or inf everywhere: nothing can be checked")
    return arr
