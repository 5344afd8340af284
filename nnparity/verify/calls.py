"""One call into a user's function while reading its form: time-limited, warnings silenced, and
any exception turned into one line of bad input (OpError) that names the function and the call."""
from __future__ import annotations

import warnings

import numpy as np

from nnparity.verify.derivatives import DerivativeShapeError
from nnparity.verify.load import OpError
from nnparity.verify.time_limit import current_limit, time_limit


def call(what: str, fn, *args, **kwargs):
    """fn(*args, **kwargs) within the configured time limit; OpError "what raised ...: message"."""
    try:
        with time_limit(current_limit(), what), warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            return fn(*args, **kwargs)
    except OpError:
        raise
    except DerivativeShapeError as err:    # our reading of what it returned: no exception name to show
        raise OpError(f"{what}: {err}") from None
    except SystemExit as err:      # user code never decides the exit status
        raise OpError(f"{what} called sys.exit({err.code!r}); a function under test must return its value") from None
    except Exception as err:
        text = str(err).splitlines()[0] if str(err) else ""
        raise OpError(f"{what} raised {type(err).__name__}: {text}") from None


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
