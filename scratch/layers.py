"""Dense: the affine layer z = x @ W + b."""
from __future__ import annotations

import numpy as np


class Dense:
    """Affine layer z = x @ W + b with W of shape (inputs, units), b of shape (units,).

    Backward: dL/dW = xᵀ @ g, dL/db = Σ_rows g, dL/dx = g @ Wᵀ with g = dL/dz.
    Torch twin: nn.Linear(inputs, units, bias) holding weight = Wᵀ (torch stores (out, in)).

    Shape: x (N, inputs) -> z (N, units).
    """

    def __init__(self, weight, bias=None, xp=np):
        self.xp = xp
        self.weight = weight
        self.bias = bias
        self.grad_weight = None
        self.grad_bias = None

    @property
    def inputs(self) -> int:
        return self.weight.shape[0]

    @property
    def units(self) -> int:
        return self.weight.shape[1]

    def forward(self, x):
        self.x = x
        z = x @ self.weight
        return z + self.bias if self.bias is not None else z

    def backward(self, grad_out):
        self.grad_weight = self.x.T @ grad_out
        if self.bias is not None:
            self.grad_bias = grad_out.sum(axis=0)
        return grad_out @ self.weight.T
