"""Dense: the affine layer z = x @ W + b."""
from __future__ import annotations

import numpy as np


class Dense:
    """Affine layer z = x @ W + b with W of shape (inputs, units), b of shape (units,).

    Backward: dL/dW = xᵀ @ g, dL/db = Σ_rows g, dL/dx = g @ Wᵀ with g = dL/dz.
    Torch twin: nn.Linear(inputs, units, bias) holding weight = Wᵀ (torch stores (out, in)).

    Shape: x (N, inputs) -> z (N, units); a sequence x (N, T, inputs) -> z (N, T, units), each time
    step alike (the N·T rows in one product; dL/dW and dL/db sum over the time steps too).

    Speed: the bias is added in place (no second temporary), the matrix products go to BLAS with
    transposed views (no copies), and each backward writes the parameter gradients into the arrays
    the previous backward left, or that Network gave it (``grad_weight`` is live, like torch's ``.grad``:
    copy them to keep them past the next backward). ``backward(g, input_grad=False)`` skips
    dL/dx, which a training step does not need for the first layer.
    """

    params = ("weight", "bias")   # each with its gradient in grad_<name>

    def __init__(self, weight, bias=None, xp=np):
        self.xp = xp
        self.weight = weight
        self.bias = bias
        self.grad_weight = None
        self.grad_bias = None
        self.x = self.lead = None

    @classmethod
    def from_spec(cls, layer_spec, params: dict, xp=np) -> "Dense":
        return cls(params["weight"], params.get("bias"), xp=xp)

    def release(self) -> None:
        """Let go of what forward kept for backward."""
        self.x = self.lead = None

    @property
    def inputs(self) -> int:
        return self.weight.shape[0]

    @property
    def units(self) -> int:
        return self.weight.shape[1]

    def forward(self, x):
        self.lead = x.shape[:-1] if x.ndim > 2 else None
        if self.lead is not None:
            x = x.reshape(-1, x.shape[-1])   # a sequence's time steps as rows
        self.x = x
        z = x @ self.weight
        if self.lead is not None:
            z = z.reshape(*self.lead, -1)
        if self.bias is None:
            return z
        if z.dtype == self.bias.dtype:
            z += self.bias
            return z
        return z + self.bias

    def backward(self, grad_out, input_grad: bool = True):
        xp = self.xp
        if grad_out.ndim > 2:
            grad_out = grad_out.reshape(-1, grad_out.shape[-1])
        dtype = grad_out.dtype if grad_out.dtype == self.x.dtype else np.result_type(self.x.dtype, grad_out.dtype)
        if self.grad_weight is None or self.grad_weight.dtype != dtype:
            self.grad_weight = xp.empty(self.weight.shape, dtype=dtype)
        xp.matmul(self.x.T, grad_out, out=self.grad_weight)
        if self.bias is not None:
            if self.grad_bias is None or self.grad_bias.dtype != dtype:
                self.grad_bias = xp.empty(self.bias.shape, dtype=dtype)
            grad_out.sum(axis=0, out=self.grad_bias)
        if not input_grad:
            return None
        grad_x = grad_out @ self.weight.T
        return grad_x if self.lead is None else grad_x.reshape(*self.lead, -1)


def store_gradient(layer, name: str, value) -> None:
    """Write ``value`` into the layer's ``grad_<name>`` in place (the array Network bound, or the
    last backward's), or keep it there when there is none of its shape and dtype yet."""
    grad = getattr(layer, f"grad_{name}", None)
    if grad is None or grad.dtype != value.dtype or grad.shape != value.shape:
        setattr(layer, f"grad_{name}", value)
    else:
        grad[...] = value
