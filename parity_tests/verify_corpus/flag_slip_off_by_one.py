"""`nonlin(x, deriv=False)` whose a-form derivative drops a factor: (1 − x) instead of x(1 − x)."""
import numpy as np


def nonlin(x, deriv=False):
    if deriv == True:  # noqa: E712
        return 1 - x
    return 1 / (1 + np.exp(-x))
