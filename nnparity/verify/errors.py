"""The error of an op that cannot be verified as given: exit 2, never a verdict."""
from __future__ import annotations


class OpError(ValueError):
    """The op cannot be verified as given (bad import path, no forward/backward, ...): exit 2."""
