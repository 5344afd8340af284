"""A sequence spec's forward in JAX, for the bench's JAX side: token ids (N, T) -> logits (N, T, V).

Written out as a JAX user would: the embedding a gather, learned positions added, the LSTM a
``jax.lax.scan`` over the steps (the input projections of every step in one product first, as
scratch and cuDNN do; torch's gate order i, f, g, o), a pre-norm transformer block (causal
multi-head attention, exact GELU), layernorm, and a dense layer at every step. Parameters are
scratch's, under its names (``layers.<i>.<name>``) and in its layouts.
"""
from __future__ import annotations

import math

KINDS = ("embedding", "positional_embedding", "lstm", "transformer", "layernorm", "dense")


def sequence_forward(spec, jax, jnp):
    """forward(params, ids) of the spec's layers; NotImplementedError (the bench side's Skip) for a
    layer kind or activation not written out here."""
    from jax import lax

    def layernorm(x, weight, bias, eps):
        mean = x.mean(axis=-1, keepdims=True)
        var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
        xhat = (x - mean) / jnp.sqrt(var + eps)
        return xhat if weight is None else xhat * weight + bias

    def lstm_direction(x, w_ih, w_hh, b_ih, b_hh, reverse):
        n, _, _ = x.shape
        size = w_hh.shape[1]
        xw = jnp.swapaxes(x @ w_ih.T + b_ih, 0, 1)          # (T, N, 4H), every step's input projection

        def cell(carry, xw_t):
            h, c = carry
            a = xw_t + h @ w_hh.T + b_hh
            i, f, g, o = (a[:, k * size:(k + 1) * size] for k in range(4))
            c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
            h = jax.nn.sigmoid(o) * jnp.tanh(c)
            return (h, c), h

        zeros = jnp.zeros((n, size), dtype=x.dtype)
        _, hs = lax.scan(cell, (zeros, zeros), xw, reverse=reverse)
        return jnp.swapaxes(hs, 0, 1)

    def lstm(layer, params, prefix, x):
        for k in range(layer.num_layers):
            parts = []
            for direction, suffix in enumerate(("", "_reverse")[:layer.directions]):
                names = [f"{prefix}{w}_l{k}{suffix}" for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
                parts.append(lstm_direction(x, *(params[name] for name in names), reverse=direction == 1))
            x = parts[0] if len(parts) == 1 else jnp.concatenate(parts, axis=-1)
        return x

    def attention(layer, params, prefix, x):
        n, steps, width = x.shape
        heads = layer.heads
        qkv = x @ params[prefix + "in_proj_weight"] + params[prefix + "in_proj_bias"]
        q, k, v = (qkv[..., i * width:(i + 1) * width].reshape(n, steps, heads, -1).transpose(0, 2, 1, 3)
                   for i in range(3))
        scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(width // heads)
        if layer.causal:
            scores = jnp.where(jnp.tril(jnp.ones((steps, steps), dtype=bool)), scores, -jnp.inf)
        context = (jax.nn.softmax(scores, axis=-1) @ v).transpose(0, 2, 1, 3).reshape(n, steps, width)
        return context @ params[prefix + "out_proj.weight"] + params[prefix + "out_proj.bias"]

    def transformer(layer, params, prefix, x):
        def norm(name, z):
            return layernorm(z, params[f"{prefix}{name}.weight"], params[f"{prefix}{name}.bias"], layer.eps)

        h = x + attention(layer, params, prefix + "self_attn.", norm("norm1", x))
        hidden = jax.nn.gelu(norm("norm2", h) @ params[prefix + "linear1.weight"] + params[prefix + "linear1.bias"],
                             approximate=False)
        return h + hidden @ params[prefix + "linear2.weight"] + params[prefix + "linear2.bias"]

    def apply(layer, params, prefix, x):
        kind = layer.kind
        if kind == "embedding":
            return jnp.take(params[prefix + "weight"], x, axis=0)
        if kind == "positional_embedding":
            return x + params[prefix + "weight"][:x.shape[1]]
        if kind == "lstm":
            return lstm(layer, params, prefix, x)
        if kind == "transformer":
            return transformer(layer, params, prefix, x)
        if kind == "layernorm":
            return layernorm(x, params.get(prefix + "weight"), params.get(prefix + "bias"), layer.eps)
        z = x @ params[prefix + "weight"]        # dense, at every step
        return z + params[prefix + "bias"] if layer.use_bias else z

    for layer in spec.layers:
        if layer.kind not in KINDS or (layer.kind == "layernorm" and layer.dims != 1):
            raise NotImplementedError(f"JAX side: layer kind {layer.kind!r} is not written out here for sequences "
                                      f"({', '.join(KINDS)}; layernorm over the features)")
        if layer.activation != "identity":
            raise NotImplementedError(f"JAX side: activation {layer.activation!r} after a sequence layer is not "
                                      f"written out here")

    def forward(params, ids):
        x = ids
        for i, layer in enumerate(spec.layers):
            x = apply(layer, params, f"layers.{i}.", x)
        return x
    return forward
