"""The pre-norm transformer block, built from scratch's own pieces: LayerNorm, Attention, Dense, GELU."""
from __future__ import annotations

import numpy as np

from scratch.activations import GELU
from scratch.attention import Attention
from scratch.layers import Dense
from scratch.normalization import LayerNorm
from scratch.residual import bind_gradient, layer_arrays


class TransformerBlock:
    """A pre-norm block on x of shape (N, T, D):

        h = x + A(LN1(x))                       A: multi-head self-attention (scratch.attention)
        z = h + W2 GELU(LN2(h) W1 + b1) + b2    the MLP, applied to each step (rows of N·T)

    Backward, G = dL/dz: the MLP's backward (Dense, GELU, Dense, LayerNorm) from G gives its
    parameters' gradients and J_mlpᵀ G; dL/dh = G + J_mlpᵀ G (the skip); likewise
    dL/dx = dL/dh + J_{A∘LN1}ᵀ dL/dh through the attention and LN1.
    Torch twin: nn.TransformerEncoderLayer(D, heads, mlp_units, dropout=0, activation=nn.GELU(),
    layer_norm_eps=eps, batch_first=True, norm_first=True) called with torch's causal mask when
    causal (torch_ref.model.TransformerBlock).
    """

    takes_state = True   # from_spec takes the layer's buffers, input shape and the layer builder too

    def __init__(self, norm1, self_attn, norm2, linear1, linear2, xp=np):
        self.xp, self.norm1, self.self_attn, self.norm2 = xp, norm1, self_attn, norm2
        self.linear1, self.linear2, self.gelu = linear1, linear2, GELU(xp=xp)
        self.shape = None

    @classmethod
    def from_spec(cls, layer_spec, params: dict, xp=np, buffers: dict | None = None, in_shape=None,
                  build=None) -> "TransformerBlock":
        def under(prefix):
            return {name[len(prefix):]: value for name, value in params.items() if name.startswith(prefix)}

        norms = [LayerNorm(under(f"{name}.")["weight"], under(f"{name}.")["bias"], 1, layer_spec.eps, xp=xp)
                 for name in ("norm1", "norm2")]
        attention = under("self_attn.")
        self_attn = Attention(*(attention[name] for name in Attention.NAMES), layer_spec.heads, layer_spec.causal,
                              xp=xp)
        linears = [Dense(under(f"{name}.")["weight"], under(f"{name}.")["bias"], xp=xp) for name in ("linear1", "linear2")]
        return cls(norms[0], self_attn, norms[1], *linears, xp=xp)

    def _parts(self) -> list:
        """Its layers under torch's names, in nn.TransformerEncoderLayer's parameter order."""
        return [("self_attn.", self.self_attn), ("linear1.", self.linear1), ("linear2.", self.linear2),
                ("norm1.", self.norm1), ("norm2.", self.norm2)]

    def named_arrays(self, prefix: str = "") -> dict:
        return {head + name: a for head, layer in self._parts() for name, a in layer_arrays(layer, prefix).items()}

    def bind_gradient(self, name: str, array) -> None:
        head, _, rest = name.partition(".")
        bind_gradient(getattr(self, head), rest, array)

    def release(self) -> None:
        for _, layer in self._parts():
            layer.release()
        self.gelu.z = self.gelu.cdf = None

    def forward(self, x):
        self.shape = n, steps, width = x.shape
        h = x + self.self_attn.forward(self.norm1.forward(x))
        rows = self.norm2.forward(h).reshape(n * steps, width)
        mlp = self.linear2.forward(self.gelu.forward(self.linear1.forward(rows)))
        return h + mlp.reshape(n, steps, width)

    def backward(self, grad_out, input_grad: bool = True):
        n, steps, width = self.shape
        grad_rows = self.linear1.backward(self.gelu.backward(self.linear2.backward(grad_out.reshape(n * steps, width))))
        grad_h = grad_out + self.norm2.backward(grad_rows.reshape(n, steps, width))
        grad_normed = self.self_attn.backward(grad_h)
        return grad_h + self.norm1.backward(grad_normed) if input_grad else self.norm1.backward(grad_normed, False)
