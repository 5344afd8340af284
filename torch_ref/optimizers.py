"""The torch twins of scratch's optimizers: torch.optim where torch has one."""
from __future__ import annotations

import torch


def make_torch_optimizer(opt_spec, params) -> torch.optim.Optimizer:
    """The torch optimizer an OptimizerSpec names, over ``params`` (an iterable of tensors).

    Use as torch.optim: ``opt.zero_grad(); loss.backward(); opt.step(closure)``; ``closure()``
    returns the loss without calling backward (line searches, random search).
    """
    if opt_spec.name == "sgd":
        return torch.optim.SGD(params, lr=opt_spec.lr)
    raise NotImplementedError(opt_spec.name)
