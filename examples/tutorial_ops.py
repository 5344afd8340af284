"""The ops of the README tutorial "Check your derivative in five minutes".

One correct derivative and two classic slips, each as a user would write them:

    nnparity verify examples.tutorial_ops:Tanh           # passes
    nnparity verify examples.tutorial_ops:SigmoidSlip    # σ(z)(1 + σ(z)) instead of σ(z)(1 − σ(z))
    nnparity verify examples.tutorial_ops:MSESlip        # prints MSE, but its gradient is ½·MSE's
    nnparity verify examples.tutorial_ops:sigmoid        # sigmoid_prime(z) written in terms of a
    nnparity verify examples.tutorial_ops:affine_forward # db as the batch mean, not the sum

SigmoidSlip, MSESlip, sigmoid_prime and affine_backward are wrong on purpose: do not copy them.
"""
from __future__ import annotations

import numpy as np


class Tanh:
    """a = tanh(z).  Backward: da/dz = 1 − a².  Torch twin: nn.Tanh."""

    kind = "activation"

    def __init__(self, xp=np):
        self.xp = xp

    def forward(self, z):
        self.a = self.xp.tanh(z)
        return self.a

    def backward(self, grad_out):
        return grad_out * (1 - self.a * self.a)

    @classmethod
    def torch_module(cls):
        from torch import nn

        return nn.Tanh()


class SigmoidSlip:
    """a = σ(z) = 1 / (1 + e^(−z)), computed without overflow.

    Backward, WRONG on purpose: σ(z)·(1 + σ(z)); the derivative is σ(z)·(1 − σ(z)).
    Torch twin: nn.Sigmoid.
    """

    kind = "activation"

    def __init__(self, xp=np):
        self.xp = xp

    def forward(self, z):
        xp = self.xp
        e = xp.exp(-xp.abs(z))
        self.a = xp.where(z >= 0, 1 / (1 + e), e / (1 + e))
        return self.a

    def backward(self, grad_out):
        return grad_out * self.a * (1 + self.a)      # the slip: + instead of −

    @classmethod
    def torch_module(cls):
        from torch import nn

        return nn.Sigmoid()


class MSESlip:
    """Mean squared error, L = Σ (a − t)² / (N·C): the loss a tutorial prints.

    Backward, WRONG on purpose: (a − t)/(N·C), the gradient of ½·MSE; MSE's is 2(a − t)/(N·C).
    Torch twin: nn.MSELoss().
    """

    kind = "loss"

    def __init__(self, xp=np):
        self.xp = xp

    def forward(self, pred, target):
        self.diff = pred - target
        self.count = pred.shape[0] * pred.shape[1]
        return (self.diff * self.diff).sum() / self.count

    def backward(self):
        return self.diff / self.count                # the slip: the 2 of d(a − t)²/da is missing

    @classmethod
    def torch_module(cls):
        from torch import nn

        return nn.MSELoss()


def sigmoid(z):
    return 1 / (1 + np.exp(-np.clip(z, -500, 500)))


def sigmoid_prime(z):
    return z * (1 - z)          # the slip: σ'(z) in terms of a = σ(z), under a parameter named z


def affine_forward(x, w, b):
    return x @ w + b, (x, w, b)


def affine_backward(dout, cache):
    x, w, b = cache
    return dout @ w.T, x.T @ dout, dout.mean(axis=0)     # the slip: db is the sum over the batch
