"""Flatten: images to feature rows."""
from __future__ import annotations

import numpy as np


class Flatten:
    """z[n] = x[n] read in C order: (N, C, H, W) -> (N, C·H·W) (an (N, F) input passes unchanged).

    Backward: dL/dx = dL/dz read back into x's shape.
    Torch twin: nn.Flatten().
    """

    params = ()

    def __init__(self, xp=np):
        self.xp = xp
        self.x_shape = None    # all backward needs

    @classmethod
    def from_spec(cls, layer_spec, params: dict, xp=np) -> "Flatten":
        return cls(xp=xp)

    def release(self) -> None:
        self.x_shape = None

    def forward(self, x):
        self.x_shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, grad_out, input_grad: bool = True):
        return grad_out.reshape(self.x_shape) if input_grad else None
