"""The CLI's usage error, spec lookup and device choice, shared by every command (a leaf: it
imports no command)."""
from __future__ import annotations

import os

from scratch.device import DEVICES, array_module
from scratch.errors import SpecError
from scratch.spec import load_spec


class UsageError(Exception):
    """Bad input given on the command line (exit 2): one line, whatever the text it was given
    (a message with an example in several lines keeps them, joined by " | ")."""

    def __init__(self, message: str):
        super().__init__(" | ".join(part.strip() for part in str(message).splitlines() if part.strip()))


def check_tolerance(value: float | None, flag: str = "--tol") -> None:
    """A tolerance given on the command line: a finite number above 0 (inf would pass anything)."""
    if value is not None and not 0 < value < float("inf"):
        raise UsageError(f"{flag}: must be > 0 and finite, got {value}")


def max_threads() -> int:
    """The most threads a command may be given: 4 per CPU of the machine (past that a thread pool
    only waits; a billion threads is an out-of-memory abort in OpenMP)."""
    return 4 * (os.cpu_count() or 1)


def check_threads(value: int, flag: str = "--threads") -> None:
    """A thread count given on the command line: 1 .. max_threads()."""
    if not 1 <= value <= max_threads():
        raise UsageError(f"{flag}: must be between 1 and {max_threads()} (4 per CPU of this machine), got {value}")


def spec_from_args(args, command: str):
    """The spec named on the command line, or the command's built-in default."""
    if getattr(args, "spec", None):
        return load_spec(args.spec)
    from nnparity.defaults import default_spec   # a default is built only when no SPEC is given

    return default_spec(command)


def add_device_argument(parser, who: str) -> None:
    """``--device cpu|cuda``: overrides the spec's ``device`` (``who`` says what trains there)."""
    parser.add_argument("--device", choices=DEVICES,
                        help=f"where {who} run (cuda: scratch on CuPy, torch on CUDA); default: the spec's "
                             f"device field (cpu unless it says cuda)")


def spec_on_device(spec, args, scratch: bool = True, torch: bool = True):
    """The spec with ``--device`` (if given) in its ``device`` field, after checking that the
    device can be had by the sides that run there: CuPy for scratch, ``torch.cuda.is_available()``
    for torch. A SpecError naming ``--device`` (or the spec's ``device``) and what is valid
    otherwise: exit 2, one line. On cpu nothing is imported."""
    field = "--device" if getattr(args, "device", None) else "device"
    device = getattr(args, "device", None) or spec.device
    if device == "cuda":
        if scratch:
            array_module(device, field)
        if torch:
            _torch_sees_cuda(field)
    return spec if device == spec.device else spec.replace(device=device)


def _torch_sees_cuda(field: str) -> None:
    import torch   # only for cuda: a command on the CPU may not need torch at all

    if not torch.cuda.is_available():
        raise SpecError(field, "cuda: torch sees no CUDA device (torch.cuda.is_available() is false); use cpu")
