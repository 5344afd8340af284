"""The classic `nonlin(x, deriv=False)` of the 11-line network: the derivative branch is written
in terms of the output and called as nonlin(l1, deriv=True). Correct."""
import numpy as np


def nonlin(x, deriv=False):
    if deriv == True:  # noqa: E712
        return x * (1 - x)
    return 1 / (1 + np.exp(-x))
