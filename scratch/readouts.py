"""Sequence readouts: a (N, T, features) sequence read out into (N, features)."""
from __future__ import annotations

import numpy as np


class Readout:
    """What both readouts keep: the input's shape, all their backward needs."""

    params = ()

    def __init__(self, xp=np):
        self.xp = xp
        self.x_shape = None

    @classmethod
    def from_spec(cls, layer_spec, params: dict, xp=np) -> "Readout":
        return cls(xp=xp)

    def release(self) -> None:
        self.x_shape = None


class SeqLast(Readout):
    """The last time step: z[n] = x[n, T − 1].

    Backward: dL/dx[n, T − 1] = dL/dz[n], 0 at every other step.
    Torch twin: x[:, -1] (torch_ref.model.LastStep).
    """

    def forward(self, x):
        self.x_shape = x.shape
        return x[:, -1]

    def backward(self, grad_out, input_grad: bool = True):
        if not input_grad:
            return None
        grad = self.xp.zeros(self.x_shape, dtype=grad_out.dtype)
        grad[:, -1] = grad_out
        return grad


class SeqMean(Readout):
    """The mean over time: z[n] = Σ_t x[n, t] / T.

    Backward: dL/dx[n, t] = dL/dz[n] / T at every step.
    Torch twin: x.mean(dim=1) (torch_ref.model.MeanOverTime).
    """

    def forward(self, x):
        self.x_shape = x.shape
        return x.mean(axis=1)

    def backward(self, grad_out, input_grad: bool = True):
        if not input_grad:
            return None
        steps = self.x_shape[1]
        return self.xp.broadcast_to((grad_out / steps)[:, None, :], self.x_shape).copy()
