"""Optimizers with torch.optim's shape, every update written out by hand.

Contract (shared with torch_ref/optimizers.py and the training loops):
- ``make_optimizer(opt_spec, params)`` takes the live parameter arrays (``Network.parameters()``,
  or any dict name -> float ndarray) and returns an Optimizer that updates them in place.
- ``optimizer.step(grads, closure=None)``: ``grads`` is a dict with the same names (e.g.
  ``Network.gradients()``); ``closure()`` returns the loss at the current parameter values
  without touching gradients (needed by line searches and random search).
- ``optimizer.zero_grad()`` exists for torch's shape; scratch gradients are overwritten by each backward.
- ``optimizer.state[name]`` holds the per-parameter state (momentum buffer, moments, step count).
- Gradient clipping is applied by the training loop before ``step`` (clip_grad_norm / clip_grad_value).
"""
from __future__ import annotations

import numpy as np


class Optimizer:
    """Base class: holds the live parameters and per-parameter state."""

    name = ""

    def __init__(self, params: dict):
        self.params = params
        self.state: dict[str, dict] = {name: {} for name in params}

    def zero_grad(self) -> None:
        """Nothing to do: scratch layers overwrite their gradients on each backward."""

    def step(self, grads: dict, closure=None) -> None:
        raise NotImplementedError


class SGD(Optimizer):
    """Plain gradient descent: p ← p − lr·g.  Torch twin: torch.optim.SGD(lr)."""

    name = "sgd"

    def __init__(self, params: dict, lr: float):
        super().__init__(params)
        self.lr = lr

    def step(self, grads: dict, closure=None) -> None:
        for name, p in self.params.items():
            p -= self.lr * grads[name]


OPTIMIZERS = {cls.name: cls for cls in (SGD,)}


def make_optimizer(opt_spec, params: dict) -> Optimizer:
    """The optimizer an OptimizerSpec names, over ``params``."""
    if opt_spec.name == "sgd":
        return SGD(params, lr=opt_spec.lr)
    raise NotImplementedError(opt_spec.name)
