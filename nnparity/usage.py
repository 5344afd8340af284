"""The CLI's usage error and spec lookup, shared by every command (a leaf: it imports no command)."""
from __future__ import annotations

from scratch.spec import load_spec


class UsageError(Exception):
    """Bad input given on the command line (exit 2)."""


def check_tolerance(value: float | None, flag: str = "--tol") -> None:
    """A tolerance given on the command line: a finite number above 0 (inf would pass anything)."""
    if value is not None and not 0 < value < float("inf"):
        raise UsageError(f"{flag}: must be > 0 and finite, got {value}")


def spec_from_args(args, command: str):
    """The spec named on the command line, or the command's built-in default."""
    if getattr(args, "spec", None):
        return load_spec(args.spec)
    from nnparity.defaults import default_spec   # a default is built only when no SPEC is given

    return default_spec(command)
