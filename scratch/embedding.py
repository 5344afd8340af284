"""Token and positional embeddings: table lookups, their gradients scattered back onto the rows read."""
from __future__ import annotations

import numpy as np

from scratch.layers import store_gradient


class Embedding:
    """Token ids x (N, T) -> rows of the table W (vocab, dim): z[n, t] = W[x[n, t]], (N, T, dim).

    Backward: dL/dW[v] = Σ_{(n, t): x[n, t] = v} dL/dz[n, t] (every read of row v adds its gradient
    back), as one product: dL/dW = Oᵀ G, O the (N·T, vocab) one-hot rows of the ids, G = dL/dz as
    (N·T, dim); the padding row's gradient is 0 (it stays as it is, zero from the start).
    Token ids are not differentiable: there is no dL/dx (backward returns None).
    Torch twin: nn.Embedding(vocab, dim, padding_idx), weight in the same (vocab, dim) layout.
    """

    params = ("weight",)

    def __init__(self, weight, padding_index: int | None = None, xp=np):
        self.xp, self.weight, self.padding_index = xp, weight, padding_index
        self.grad_weight = None
        self.ids = None

    @classmethod
    def from_spec(cls, layer_spec, params: dict, xp=np) -> "Embedding":
        return cls(params["weight"], layer_spec.padding_index, xp=xp)

    def release(self) -> None:
        self.ids = None

    def forward(self, ids):
        self.ids = ids
        return self.weight[ids]

    def backward(self, grad_out, input_grad: bool = True):
        xp = self.xp
        onehot = (self.ids.reshape(-1, 1) == xp.arange(self.weight.shape[0])).astype(grad_out.dtype)
        grad = onehot.T @ grad_out.reshape(-1, grad_out.shape[-1])
        if self.padding_index is not None:
            grad[self.padding_index] = 0
        store_gradient(self, "weight", grad)
        return None


class PositionalEmbedding:
    """A learned position table P (max_len, dim) added to a sequence x (N, T, dim): z[n, t] = x[n, t] + P[t].

    Backward: dL/dx = dL/dz; dL/dP[t] = Σ_n dL/dz[n, t] for t < T, 0 for the rows past T.
    Torch twin: nn.Embedding(max_len, dim) looked up at positions 0 .. T − 1 and added
    (torch_ref.model.LearnedPositions), the same (max_len, dim) layout.
    """

    params = ("weight",)

    def __init__(self, weight, xp=np):
        self.xp, self.weight = xp, weight
        self.grad_weight = None
        self.steps = None

    @classmethod
    def from_spec(cls, layer_spec, params: dict, xp=np) -> "PositionalEmbedding":
        return cls(params["weight"], xp=xp)

    def release(self) -> None:
        self.steps = None

    def forward(self, x):
        self.steps = x.shape[1]
        return x + self.weight[:self.steps]

    def backward(self, grad_out, input_grad: bool = True):
        grad = self.xp.zeros(self.weight.shape, dtype=grad_out.dtype)
        grad[:self.steps] = grad_out.sum(axis=0)
        store_gradient(self, "weight", grad)
        return grad_out if input_grad else None
