"""Batch and layer normalization: one normalization, over the batch (per feature or channel) or over
each example's trailing dimensions, and its compact backward."""
from __future__ import annotations

import numpy as np


def normalize_backward(grad_xhat, xhat, inv_std, axes):
    """dL/dx of x̂ = (x − μ)·σ⁻¹ with μ and σ² the (biased) mean and variance over ``axes``:
    dL/dx = σ⁻¹ · (ĝ − mean(ĝ) − x̂ · mean(ĝ ⊙ x̂)), ĝ = dL/dx̂, the means over ``axes``."""
    mean_grad = grad_xhat.mean(axis=axes, keepdims=True)
    mean_grad_xhat = (grad_xhat * xhat).mean(axis=axes, keepdims=True)
    return inv_std * (grad_xhat - mean_grad - xhat * mean_grad_xhat)


class Normalization:
    """What both normalizations share: the affine weight and bias, the kept x̂ and σ⁻¹, the gradients."""

    params = ("weight", "bias")
    takes_state = True   # from_spec takes the layer's buffers, input shape and the layer builder too

    def __init__(self, weight, bias, eps: float, xp=np):
        self.xp, self.weight, self.bias, self.eps = xp, weight, bias, eps
        self.grad_weight = self.grad_bias = None
        self.xhat = self.inv_std = None
        self.training = True

    def release(self) -> None:
        self.xhat = self.inv_std = None

    def _affine(self, xhat, shape):
        if self.weight is None:
            return xhat
        return xhat * self.weight.reshape(shape) + self.bias.reshape(shape)

    def _store_gradients(self, grad_out, sum_axes, shape) -> object:
        """dL/dweight = Σ dL/dz ⊙ x̂ and dL/dbias = Σ dL/dz over ``sum_axes``, written in place; dL/dx̂."""
        if self.weight is None:
            return grad_out
        for name, value in (("weight", (grad_out * self.xhat).sum(axis=sum_axes)),
                            ("bias", grad_out.sum(axis=sum_axes))):
            grad = getattr(self, f"grad_{name}")
            if grad is None or grad.dtype != value.dtype:
                setattr(self, f"grad_{name}", value.reshape(self.weight.shape))
            else:
                grad[...] = value.reshape(grad.shape)
        return grad_out * self.weight.reshape(shape)


class BatchNorm(Normalization):
    """Batch normalization of (N, F) features or (N, C, H, W) channels, over the batch (and H, W):

        train: x̂ = (x − μ_B)/√(σ²_B + ε), μ_B and σ²_B the batch's mean and biased variance;
               running_mean ← (1 − m)·running_mean + m·μ_B,
               running_var ← (1 − m)·running_var + m·σ²_B·n/(n − 1) (unbiased), n values per channel;
        eval:  x̂ = (x − running_mean)/√(running_var + ε);
        z = γ ⊙ x̂ + β (γ = weight, β = bias, when affine).

    Backward, ĝ = γ ⊙ dL/dz: dL/dγ = Σ dL/dz ⊙ x̂, dL/dβ = Σ dL/dz; train (the compact form, μ_B and
    σ_B depending on x): dL/dx = σ⁻¹/n · (n·ĝ − Σĝ − x̂·Σ(ĝ ⊙ x̂)); eval: dL/dx = ĝ·σ⁻¹.
    Torch twin: nn.BatchNorm1d / nn.BatchNorm2d(C, eps, momentum, affine), its buffers running_mean,
    running_var, num_batches_tracked under the same names.
    """

    buffers = ("running_mean", "running_var", "num_batches_tracked")

    def __init__(self, weight, bias, running_mean, running_var, num_batches_tracked, eps=1e-5, momentum=0.1,
                 xp=np):
        super().__init__(weight, bias, eps, xp)
        self.running_mean, self.running_var = running_mean, running_var
        self.num_batches_tracked, self.momentum = num_batches_tracked, momentum

    @classmethod
    def from_spec(cls, layer_spec, params: dict, xp=np, buffers: dict | None = None, in_shape=None,
                  build=None) -> "BatchNorm":
        return cls(params.get("weight"), params.get("bias"), buffers["running_mean"], buffers["running_var"],
                   buffers["num_batches_tracked"], layer_spec.eps, layer_spec.momentum, xp=xp)

    def forward(self, x):
        axes = (0,) if x.ndim == 2 else (0, 2, 3)
        shape = (1, -1) if x.ndim == 2 else (1, -1, 1, 1)
        if self.training:
            n = x.size // x.shape[1]
            if n < 2:
                raise ValueError(f"batchnorm in train mode needs more than 1 value per channel, got input "
                                 f"{tuple(x.shape)} (as torch)")
            mean = x.mean(axis=axes, keepdims=True)
            centred = x - mean
            squares = (centred * centred).sum(axis=axes, keepdims=True)
            var = squares / n
            m = self.momentum
            self.running_mean[...] = (1 - m) * self.running_mean + m * mean.reshape(-1)
            self.running_var[...] = (1 - m) * self.running_var + m * (squares / (n - 1)).reshape(-1)
            self.num_batches_tracked[...] += 1
        else:
            centred = x - self.running_mean.reshape(shape)
            var = self.running_var.reshape(shape)
        self.inv_std = 1.0 / self.xp.sqrt(var + self.eps)
        self.xhat = centred * self.inv_std
        return self._affine(self.xhat, shape)

    def backward(self, grad_out, input_grad: bool = True):
        axes = (0,) if grad_out.ndim == 2 else (0, 2, 3)
        shape = (1, -1) if grad_out.ndim == 2 else (1, -1, 1, 1)
        grad_xhat = self._store_gradients(grad_out, axes, shape)
        if not input_grad:
            return None
        if not self.training:
            return grad_xhat * self.inv_std
        return normalize_backward(grad_xhat, self.xhat, self.inv_std, axes)


class LayerNorm(Normalization):
    """Layer normalization over each example's trailing d dimensions (its normalized shape S):

        x̂ = (x − μ)/√(σ² + ε), μ and σ² the mean and biased variance of each example's S block;
        z = γ ⊙ x̂ + β, γ and β of shape S (when elementwise_affine). The same in train and eval mode.

    Backward, ĝ = γ ⊙ dL/dz, M = |S|: dL/dγ = Σ_batch dL/dz ⊙ x̂, dL/dβ = Σ_batch dL/dz;
    dL/dx = σ⁻¹/M · (M·ĝ − Σ_S ĝ − x̂·Σ_S(ĝ ⊙ x̂)) per example.
    Torch twin: nn.LayerNorm(S, eps, elementwise_affine), weight and bias of shape S in both (no transpose).
    """

    def __init__(self, weight, bias, dims: int, eps=1e-5, xp=np):
        super().__init__(weight, bias, eps, xp)
        self.dims = dims

    @classmethod
    def from_spec(cls, layer_spec, params: dict, xp=np, buffers: dict | None = None, in_shape=None,
                  build=None) -> "LayerNorm":
        return cls(params.get("weight"), params.get("bias"), layer_spec.dims, layer_spec.eps, xp=xp)

    def _axes(self, x) -> tuple:
        dims = self.dims or x.ndim - 1
        return tuple(range(x.ndim - dims, x.ndim))

    def forward(self, x):
        axes = self._axes(x)
        mean = x.mean(axis=axes, keepdims=True)
        centred = x - mean
        var = (centred * centred).mean(axis=axes, keepdims=True)
        self.inv_std = 1.0 / self.xp.sqrt(var + self.eps)
        self.xhat = centred * self.inv_std
        return self._affine(self.xhat, (1,) * (x.ndim - len(axes)) + x.shape[x.ndim - len(axes):])

    def backward(self, grad_out, input_grad: bool = True):
        axes = self._axes(grad_out)
        batch_axes = tuple(range(grad_out.ndim - len(axes)))
        shape = (1,) * len(batch_axes) + grad_out.shape[len(batch_axes):]
        grad_xhat = self._store_gradients(grad_out, batch_axes, shape)
        return normalize_backward(grad_xhat, self.xhat, self.inv_std, axes) if input_grad else None
