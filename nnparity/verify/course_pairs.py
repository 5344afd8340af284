"""Which functions make a course layer pair, by the course's names: ``X_forward`` with
``X_backward`` (``conv_forward_naive`` with ``conv_backward_naive``; ``batchnorm_forward`` with
``batchnorm_backward`` and ``batchnorm_backward_alt``, each checked), a backward named as the
target finds its forward, and a function of three or more inputs returning ``(loss, dx)``
(``temporal_softmax_loss(x, y, mask)``) is a course loss. The pairs are read in layer_functions.py.
"""
from __future__ import annotations

from nnparity.verify.layer_functions import course_op, read_pair
from nnparity.verify.load import OpError


def base_name(name: str) -> str:
    """'conv' for conv_forward_naive, conv_backward_naive; the name itself otherwise."""
    for marker in ("_forward", "_backward"):
        if marker in name:
            return name.split(marker)[0]
    return name


def _backwards(module, name: str) -> list:
    """(backward, how found) for a forward's name: X_backward and X_backward_alt, whichever exist."""
    plain = name.replace("_forward", "_backward")
    found = []
    for candidate in (plain, plain + "_alt"):
        fn = getattr(module, candidate, None) if module is not None else None
        if callable(fn):
            found.append((fn, f"found by name: {candidate}"))
    if not found:
        where = getattr(module, "__name__", "its module")
        raise OpError(f"no backward found for {name} in {where}: tried {plain}, {plain}_alt; name it so or give it "
                      f"with --grad MODULE:FUNCTION, e.g.\n    def {plain}(dout, cache):\n"
                      f"        return dx, dw, db")
    return found


def _forward_of(module, name: str):
    forward_name = name.replace("_backward", "_forward").removesuffix("_alt")
    fn = getattr(module, forward_name, None) if module is not None else None
    if not callable(fn):
        raise OpError(f"{name} is a backward; its forward {forward_name} is not in "
                      f"{getattr(module, '__name__', 'its module')}: verify the forward, e.g.\n"
                      f"    nnparity verify mymodule:{forward_name}\n    (with {name} beside it)")
    return fn


def layer_ops(obj, name: str, module, shown: str, given=None, seed: int = 0) -> list:
    """One op per backward of the pair ``obj`` names; ``given``: (backward, how) from --grad."""
    base = base_name(name)
    if "_forward" in name:
        forward, backwards = obj, [given] if given else _backwards(module, name)
    else:
        forward, backwards = _forward_of(module, name), [given or (obj, "given as the target")]
    ops = []
    for backward, how in backwards:
        op = course_op(read_pair(forward, backward, module, base, seed), shown, how, seed)
        if len(backwards) > 1:
            op.variant = backward.__name__
        ops.append(op)
    return ops


def loss_ops(f, name: str, module, shown: str, seed: int = 0) -> list:
    """A course loss ``f(x, ...) -> (loss, dx)`` of three or more inputs."""
    return [course_op(read_pair(f, None, module, base_name(name), seed), shown, "a loss returning (loss, dx)", seed)]
