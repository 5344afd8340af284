"""Multi-head self-attention over (N, T, D) sequences, and the softmax over each row of scores."""
from __future__ import annotations

import math

import numpy as np


def causal_allowed(steps: int, xp=np):
    """(T, T) booleans: query step t may attend to key step s exactly when s <= t."""
    step = xp.arange(steps)
    return step.reshape(-1, 1) >= step.reshape(1, -1)


def row_softmax(scores, allowed, xp=np):
    """Softmax over the last axis, entries not ``allowed`` (None: all are) at probability 0; ``scores``
    may be overwritten (the result is written into it, or into the masked copy).

    z − max may pass the largest float when a row spans both extremes: it is then −inf, whose exp
    is 0, the right value, so NumPy's overflow warning for it is silenced."""
    if allowed is not None:
        scores = xp.where(allowed, scores, -xp.inf)
    with np.errstate(over="ignore"):
        scores -= scores.max(axis=-1, keepdims=True)
    e = xp.exp(scores, out=scores)
    e /= e.sum(axis=-1, keepdims=True)
    return e


def row_softmax_backward(grad_p, p):
    """dL/dS of P = softmax(S) by rows: P ⊙ (dL/dP − Σ_s dL/dP ⊙ P)."""
    return p * (grad_p - (grad_p * p).sum(axis=-1, keepdims=True))


class Attention:
    """Multi-head self-attention, H heads of width d = D/H, on x of shape (N, T, D):

        [Q | K | V] = x W_in + b_in             (one product for all steps: W_in is (D, 3D))
        S_h = Q_h K_hᵀ / √d, entries s > t at −∞ when causal;  P_h = softmax(S_h) by rows
        C = [P_1 V_1 | … | P_H V_H];  z = C W_out + b_out

    Backward, G = dL/dz: dW_out = Cᵀ G, db_out = Σ G, dC = G W_outᵀ; per head dV_h = P_hᵀ dC_h,
    dP_h = dC_h V_hᵀ, dS_h = P_h ⊙ (dP_h − rowsum(dP_h ⊙ P_h)), dQ_h = dS_h K_h / √d,
    dK_h = dS_hᵀ Q_h / √d; then dW_in = xᵀ [dQ | dK | dV], db_in = Σ [dQ | dK | dV],
    dL/dx = [dQ | dK | dV] W_inᵀ.
    Torch twin: nn.MultiheadAttention(D, H, batch_first=True) called with query = key = value = x,
    need_weights=False and, when causal, torch's nn.Transformer.generate_square_subsequent_mask
    (in_proj_weight = W_inᵀ, out_proj.weight = W_outᵀ).
    """

    params = ("in_proj_weight", "in_proj_bias", "out_proj_weight", "out_proj_bias")
    NAMES = {"in_proj_weight": "in_proj_weight", "in_proj_bias": "in_proj_bias",
             "out_proj.weight": "out_proj_weight", "out_proj.bias": "out_proj_bias"}   # torch's -> ours

    def __init__(self, in_proj_weight, in_proj_bias, out_proj_weight, out_proj_bias, heads: int,
                 causal: bool = False, xp=np):
        self.xp, self.heads, self.causal = xp, heads, causal
        self.in_proj_weight, self.in_proj_bias = in_proj_weight, in_proj_bias
        self.out_proj_weight, self.out_proj_bias = out_proj_weight, out_proj_bias
        for name in self.params:
            setattr(self, f"grad_{name}", None)
        self.x = self.q = self.k = self.v = self.p = self.context = None

    @classmethod
    def from_spec(cls, layer_spec, params: dict, xp=np) -> "Attention":
        return cls(*(params[name] for name in cls.NAMES), layer_spec.heads, layer_spec.causal, xp=xp)

    def named_arrays(self, prefix: str = "") -> dict:
        return {name: getattr(self, prefix + own) for name, own in self.NAMES.items()}

    def bind_gradient(self, name: str, array) -> None:
        setattr(self, f"grad_{self.NAMES[name]}", array)

    def release(self) -> None:
        self.x = self.q = self.k = self.v = self.p = self.context = None

    def _heads(self, rows, n: int, steps: int):
        """(N·T, D) -> (N, H, T, d)."""
        return rows.reshape(n, steps, self.heads, -1).transpose(0, 2, 1, 3)

    def _rows(self, per_head):
        """(N, H, T, d) -> (N·T, D)."""
        n, heads, steps, d = per_head.shape
        return per_head.transpose(0, 2, 1, 3).reshape(n * steps, heads * d)

    def forward(self, x):
        n, steps, width = x.shape
        self.x = x.reshape(n * steps, width)
        qkv = self.x @ self.in_proj_weight + self.in_proj_bias
        self.q, self.k, self.v = (self._heads(qkv[:, i * width:(i + 1) * width], n, steps) for i in range(3))
        scale = 1.0 / math.sqrt(width // self.heads)
        scores = (self.q * scale) @ self.k.transpose(0, 1, 3, 2)      # the scale on the T·d side, not on T·T
        self.p = row_softmax(scores, causal_allowed(steps, self.xp) if self.causal else None, self.xp)
        self.context = self._rows(self.p @ self.v)
        return (self.context @ self.out_proj_weight + self.out_proj_bias).reshape(n, steps, width)

    def backward(self, grad_out, input_grad: bool = True):
        n, steps, width = grad_out.shape
        grad_rows = grad_out.reshape(n * steps, width)
        self._store("out_proj_weight", self.context.T @ grad_rows)
        self._store("out_proj_bias", grad_rows.sum(axis=0))
        grad_context = self._heads(grad_rows @ self.out_proj_weight.T, n, steps)
        grad_v = self.p.transpose(0, 1, 3, 2) @ grad_context
        grad_scores = row_softmax_backward(grad_context @ self.v.transpose(0, 1, 3, 2), self.p)
        scale = 1.0 / math.sqrt(width // self.heads)
        grad_q = (grad_scores @ self.k) * scale
        grad_k = (grad_scores.transpose(0, 1, 3, 2) @ self.q) * scale
        grad_qkv = self.xp.concatenate([self._rows(g) for g in (grad_q, grad_k, grad_v)], axis=1)
        self._store("in_proj_weight", self.x.T @ grad_qkv)
        self._store("in_proj_bias", grad_qkv.sum(axis=0))
        return (grad_qkv @ self.in_proj_weight.T).reshape(n, steps, width) if input_grad else None

    def _store(self, name: str, value) -> None:
        """Write a gradient into the array bound to it (Network's packed buffer), or keep it."""
        grad = getattr(self, f"grad_{name}")
        if grad is None or grad.dtype != value.dtype:
            setattr(self, f"grad_{name}", value)
        else:
            grad[...] = value
