"""Planted bugs for the verify tests: each op is a correct one from examples/ with one slip.

The docstring of each names the slip and the diagnosis `nnparity verify` must give for it.
Also a few correct ops that exercise the torch paths (NumPy names rebound, fallback).
"""
from __future__ import annotations

import numpy as np

from examples.custom_ops import Dense, HuberLoss, Softmax, Softplus, Swish, _sigmoid
from examples.tutorial_ops import Tanh
from scratch.activations import Tanh as ScratchTanh


class SwishHalf(Swish):
    """Backward × ½ -> "off by a constant factor ½"."""

    def backward(self, grad_out):
        return 0.5 * super().backward(grad_out)


class SwishDouble(Swish):
    """Backward × 2 -> "off by a constant factor 2"."""

    def backward(self, grad_out):
        return 2 * super().backward(grad_out)


class SoftplusSign(Softplus):
    """Backward −σ(z) -> "wrong sign"."""

    def backward(self, grad_out):
        return -super().backward(grad_out)


class SwishIgnoresGrad(Swish):
    """Backward returns da/dz, forgetting grad_out -> "ignores grad_out"."""

    def backward(self, grad_out):
        return self.s * (1 + self.z * (1 - self.s))


class ReLUKink:
    """ReLU whose derivative is relu(z)/z: 0/0 = NaN at exactly 0, outside the subgradients [0, 1]
    -> "wrong only at a kink"."""

    kind = "activation"

    def __init__(self, xp=np):
        self.xp = xp

    def forward(self, z):
        self.z = z
        return self.xp.maximum(z, 0 * z)

    def backward(self, grad_out):
        return grad_out * self.xp.maximum(self.z, 0 * self.z) / self.z

    @classmethod
    def torch_module(cls):
        from torch import nn

        return nn.ReLU()


class TanhOverflow(Tanh):
    """tanh'(z) = sech²(z) written as 4e^(2z)/(e^(2z) + 1)²: inf/inf = NaN at z = 700
    -> "wrong only in saturation"."""

    def backward(self, grad_out):
        e2 = np.exp(2 * self.a_z)
        return grad_out * 4 * e2 / ((e2 + 1) * (e2 + 1))

    def forward(self, z):
        self.a_z = z
        return super().forward(z)


class SoftmaxDiagonal(Softmax):
    """Backward g·a(1 − a), the elementwise derivative -> "only the Jacobian's diagonal"."""

    def backward(self, grad_out):
        return grad_out * self.a * (1 - self.a)


class CumSum:
    """Row-wise running sum a_k = Σ_{j ≤ k} z_j (a lower-triangular Jacobian).

    Backward: dL/dz_j = Σ_{k ≥ j} g_k, a reversed running sum.  Torch twin: torch.cumsum(dim=1).
    """

    kind = "vector"

    def __init__(self, xp=np):
        self.xp = xp

    def forward(self, z):
        return np.cumsum(z, axis=1)

    def backward(self, grad_out):
        return np.cumsum(grad_out[:, ::-1], axis=1)[:, ::-1]

    @classmethod
    def torch_module(cls):
        import torch

        class Cumsum(torch.nn.Module):
            def forward(self, z):
                return torch.cumsum(z, dim=1)

        return Cumsum()


class CumSumTransposed(CumSum):
    """Backward cumsum(g): J·g where Jᵀ·g is needed -> "the Jacobian is transposed"."""

    def backward(self, grad_out):
        return np.cumsum(grad_out, axis=1)


class DenseTransposed(Dense):
    """dL/dW = gᵀ @ x, shape (units, inputs) -> "transposed"."""

    def backward(self, grad_out):
        out = super().backward(grad_out)
        self.grad_weight = grad_out.T @ self.x
        return out


class DenseSquareTransposed(Dense):
    """A square layer with dL/dW = (xᵀ @ g)ᵀ: right shape, transposed values -> "transposed"."""

    @classmethod
    def example(cls, rng, inputs: int = 3, units: int = 3):
        return super().example(rng, inputs, units)

    def backward(self, grad_out):
        out = super().backward(grad_out)
        self.grad_weight = self.grad_weight.T
        return out


class DenseBiasNotSummed(Dense):
    """dL/db = g, one row per sample -> "missing the sum over the batch"."""

    def backward(self, grad_out):
        out = super().backward(grad_out)
        self.grad_bias = grad_out
        return out


class DenseBiasMean(Dense):
    """dL/db = mean of g over the rows -> "averaged over the batch where the sum is needed"."""

    def backward(self, grad_out):
        out = super().backward(grad_out)
        self.grad_bias = grad_out.mean(axis=0)
        return out


class HuberNoMean(HuberLoss):
    """Backward without the ÷(N·C) of the mean -> "missing the ÷(N·C)"."""

    def backward(self):
        return super().backward() * self.count


class SSEDividedByN:
    """L = Σ (a − t)², a sum; backward 2(a − t)/N -> "divided by the batch size N"."""

    kind = "loss"

    def __init__(self, xp=np):
        self.xp = xp

    def forward(self, pred, target):
        self.diff = pred - target
        return (self.diff * self.diff).sum()

    def backward(self):
        return 2 * self.diff / self.diff.shape[0]

    @classmethod
    def torch_module(cls):
        from torch import nn

        return nn.MSELoss(reduction="sum")


class SwishRaises(Swish):
    """Backward raises: verify reports the exception instead of crashing."""

    def backward(self, grad_out):
        raise ValueError("not derived yet")


class SwishWrongTwin(Swish):
    """A correct backward with a torch twin of a different function (GELU): the forward check fails."""

    @classmethod
    def torch_module(cls):
        from torch import nn

        return nn.GELU()


class NoBackward:
    """forward only: not verifiable (exit 2)."""

    def forward(self, z):
        return z


def not_a_class(z):
    """A function without a derivative to pair it with (exit 2, the names tried listed)."""
    return z


class TanhGlobals:
    """Correct tanh written with module-level np (no xp): torch path 2 rebinds np to torch."""

    kind = "activation"

    def forward(self, z):
        self.a = np.tanh(z)
        return self.a

    def backward(self, grad_out):
        return grad_out * (1 - self.a ** 2)


class SigmoidAstype:
    """Correct sigmoid whose forward uses ndarray.astype (no torch twin): torch path 2 falls back."""

    kind = "activation"

    def __init__(self, xp=np):
        self.xp = xp

    def forward(self, z):
        self.a = _sigmoid(self.xp, z).astype(np.float64)
        return self.a

    def backward(self, grad_out):
        return grad_out * self.a * (1 - self.a)


class TanhDouble(ScratchTanh):
    """A user subclass of scratch's Tanh with backward × 2 (for network specs; torch twin nn.Tanh)."""

    def backward(self, grad_out):
        return 2 * super().backward(grad_out)


class SwishDoubleSpec(SwishDouble):
    """SwishDouble for specs (same maths; its own name in reports)."""
