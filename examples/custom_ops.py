"""Reference user ops: hand-derived backwards that `nnparity verify` passes.

Each class is a user's op in scratch's small-object form: a NumPy forward that keeps what backward
needs, a hand-written backward, and a ``torch_module()`` classmethod building the torch twin
(used as a reference by ``nnparity verify`` and by the torch side when a spec names the op).
The maths is written against ``self.xp`` so verify can also run this very forward on torch
tensors and differentiate it with autograd.

    nnparity verify examples.custom_ops:Swish
    nnparity verify examples.custom_ops:Softplus
    nnparity verify examples.custom_ops:Softmax
    nnparity verify examples.custom_ops:HuberLoss
    nnparity verify examples.custom_ops:BCELoss
    nnparity verify examples.custom_ops:Dense

and in a spec: ``activation = "examples.custom_ops:Swish"`` (run from the repository root).
"""
from __future__ import annotations

import numpy as np

from scratch.activations import Activation


def _sigmoid(xp, z):
    """σ(z) without overflow: exp(-|z|) lies in (0, 1]."""
    e = xp.exp(-xp.abs(z))
    return xp.where(z >= 0, 1 / (1 + e), e / (1 + e))


class Swish(Activation):
    """Swish / SiLU: a = z·σ(z).

    Backward: da/dz = σ(z) + z·σ(z)(1 − σ(z)) = σ(z)·(1 + z(1 − σ(z))).
    Torch twin: nn.SiLU.
    """

    name = "swish"
    kind = "activation"

    def forward(self, z):
        self.z = z
        self.s = _sigmoid(self.xp, z)
        return z * self.s

    def backward(self, grad_out):
        return grad_out * self.s * (1 + self.z * (1 - self.s))

    @classmethod
    def torch_module(cls):
        from torch import nn

        return nn.SiLU()


class Softplus(Activation):
    """Softplus: a = log(1 + eᶻ) = max(z, 0) + log(1 + e^(−|z|)) (no overflow for any finite z).

    Backward: da/dz = σ(z).
    Torch twin: torch.logaddexp(z, 0), exact for every z (nn.Softplus switches to a = z above 20).
    """

    name = "softplus"
    kind = "activation"

    def forward(self, z):
        xp = self.xp
        self.z = z
        return xp.maximum(z, 0 * z) + xp.log1p(xp.exp(-xp.abs(z)))

    def backward(self, grad_out):
        return grad_out * _sigmoid(self.xp, self.z)

    @classmethod
    def torch_module(cls):
        import torch

        class LogAddExp0(torch.nn.Module):
            def forward(self, z):
                return torch.logaddexp(z, torch.zeros_like(z))

        return LogAddExp0()


class Softmax(Activation):
    """Row-wise softmax, by hand: a_i = e^(z_i − max z) / Σ_j e^(z_j − max z).

    Backward (Jacobian-vector product): dL/dz_i = a_i (g_i − Σ_j g_j a_j).
    Torch twin: nn.Softmax(dim=1).
    """

    name = "softmax"
    kind = "vector"
    elementwise = False

    def forward(self, z):
        xp = self.xp
        e = xp.exp(z - xp.amax(z, axis=1, keepdims=True))
        self.a = e / e.sum(axis=1, keepdims=True)
        return self.a

    def backward(self, grad_out):
        return self.a * (grad_out - (grad_out * self.a).sum(axis=1, keepdims=True))

    @classmethod
    def torch_module(cls):
        from torch import nn

        return nn.Softmax(dim=1)


class HuberLoss:
    """Huber loss, mean over all N·C elements, d = pred − target:
    L = mean(½d² if |d| ≤ δ else δ(|d| − ½δ)).

    Backward: dL/dpred = clip(d, −δ, δ) / (N·C).
    Torch twin: nn.HuberLoss(delta=δ) (reduction "mean").
    """

    kind = "loss"
    delta = 1.0

    def __init__(self, xp=np):
        self.xp = xp

    def forward(self, pred, target):
        xp = self.xp
        self.d = pred - target
        self.count = pred.shape[0] * pred.shape[1]
        absd = xp.abs(self.d)
        per = xp.where(absd <= self.delta, 0.5 * self.d * self.d, self.delta * (absd - 0.5 * self.delta))
        return per.sum() / self.count

    def backward(self):
        return self.xp.clip(self.d, -self.delta, self.delta) / self.count

    @classmethod
    def torch_module(cls):
        from torch import nn

        return nn.HuberLoss(delta=cls.delta)


class BCELoss:
    """Binary cross-entropy on probabilities p in (0, 1), mean over all N·C elements:
    L = −mean(t log p + (1 − t) log(1 − p)).

    Backward: dL/dp = (p − t) / (p(1 − p)) / (N·C).
    Torch twin: nn.BCELoss() (its log clamp at −100 is never reached on (1e-8, 1 − 1e-8)).
    """

    kind = "loss"
    domain = "probability"

    def __init__(self, xp=np):
        self.xp = xp

    def forward(self, pred, target):
        xp = self.xp
        self.p, self.t = pred, target
        self.count = pred.shape[0] * pred.shape[1]
        return -(target * xp.log(pred) + (1 - target) * xp.log1p(-pred)).sum() / self.count

    def backward(self):
        return (self.p - self.t) / (self.p * (1 - self.p)) / self.count

    @classmethod
    def torch_module(cls):
        from torch import nn

        return nn.BCELoss()


class Dense:
    """Affine layer z = x @ W + b, W of shape (inputs, units), b of shape (units,).

    Backward: dL/dW = xᵀ @ g, dL/db = Σ_rows g, dL/dx = g @ Wᵀ, with g = dL/dz.
    Torch twin: x @ W + b on tensors (called as module(x, weight=W, bias=b)).
    """

    kind = "layer"

    def __init__(self, weight, bias):
        self.weight, self.bias = weight, bias
        self.inputs = weight.shape[0]

    @classmethod
    def example(cls, rng, inputs: int = 4, units: int = 3):
        """A seeded instance for verify."""
        return cls(rng.normal(0.0, 0.5, size=(inputs, units)), rng.normal(0.0, 0.5, size=units))

    def parameters(self):
        return {"weight": self.weight, "bias": self.bias}

    def gradients(self):
        return {"weight": self.grad_weight, "bias": self.grad_bias}

    def forward(self, x):
        self.x = x
        return x @ self.weight + self.bias

    def backward(self, grad_out):
        self.grad_weight = self.x.T @ grad_out
        self.grad_bias = grad_out.sum(axis=0)
        return grad_out @ self.weight.T

    @classmethod
    def torch_module(cls):
        import torch

        class Affine(torch.nn.Module):
            def forward(self, x, weight, bias):
                return x @ weight + bias

        return Affine()
