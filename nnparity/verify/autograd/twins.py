"""torch's own modules as references for user functions named after them (``relu``, ``sigmoid``,
``softmax``, ...): the only reference that checks a derivative at a kink, where finite differences
cannot and autograd of the user's own forward depends on how it is written. Used only when the
user's function agrees with it on random probes (else a relu that is not ReLU would be judged
against ReLU's derivative)."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from nnparity.verify import probes
from nnparity.verify.calls import call
from nnparity.verify.load import OpError, OpUnderTest

TWINS = {
    "relu": lambda p: nn.ReLU(),
    "sigmoid": lambda p: nn.Sigmoid(),
    "tanh": lambda p: nn.Tanh(),
    "softplus": lambda p: nn.Softplus(),
    "gelu": lambda p: nn.GELU(),
    "elu": lambda p: nn.ELU(alpha=float(p.get("alpha", 1.0))),
    "leaky_relu": lambda p: nn.LeakyReLU(negative_slope=float(p.get("alpha", p.get("negative_slope", 0.01)))),
    "softmax": lambda p: nn.Softmax(dim=-1),
}


def base_name(op: OpUnderTest) -> str:
    """'relu' for relu, relu_forward, relu+relu_prime."""
    name = op.cls.__name__.split("+")[0].lower()
    return name[: -len("_forward")] if name.endswith("_forward") else name


def attach_named_twin(op: OpUnderTest) -> None:
    """Give a function form torch's module of the same name as its ``torch_module``, if they agree."""
    name = base_name(op)
    if op.review is None or name not in TWINS or hasattr(op.cls, "torch_module"):
        return
    if op.kind == "layer" and op.cls.example(None).parameters():
        return
    params = op.params
    z = probes.rowwise_probes(0)[0].x
    try:
        inst = op.cls.example(None) if op.kind == "layer" else op.new()
        mine = np.asarray(call("forward", inst.forward, z.copy()), dtype=np.float64)
        theirs = TWINS[name](params)(torch.tensor(z)).numpy()
    except (OpError, RuntimeError, TypeError, ValueError):
        return
    if mine.shape != theirs.shape or not np.allclose(mine, theirs, rtol=1e-10, atol=1e-300):
        return
    module = TWINS[name](params)
    op.cls.torch_module = classmethod(lambda cls, **p: TWINS[name](p))
    op.cls.twin_label = f"torch.nn.{type(module).__name__}"
