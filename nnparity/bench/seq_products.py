"""The matrix products of a sequence model's train step (configs.SeqConfig.gemm_list: char_lstm, tiny_gpt).

The products scratch's train step does, as its layers do them (N sequences of T steps, R = N·T
rows; an entry listed as often as the step does it):

- a recurrent layer (LSTM, GRU, RNN: G = 4, 3, 1 gates of H units, per layer and direction):
  the input projections of every step in one product X (R × D) @ W_ihᵀ (D × G·H); at T − 1 steps
  h_{t−1} (N × H) @ W_hhᵀ forward and dA_t (N × G·H) @ W_hh backward (not at the first step, where
  h_{t−1} = 0 and there is no step before: scratch skips both); dW_ih = Aᵀ X and dW_hh = Bᵀ H_prev
  over all steps;
  dL/dx = A W_ih (for a layer after the first, or when the layer before needs it);
- a transformer block (width D, H heads of d = D/H, MLP width F): forward [Q|K|V] = X W_in
  (R × D × 3D), per sequence and head S = Q Kᵀ (T × d × T) and P V (T × T × d), C W_out
  (R × D × D); backward dW_out, dC, per head dV = Pᵀ dC, dP = dC Vᵀ, dQ = dS K, dK = dSᵀ Q, then
  dW_in and dL/dx (the block computes its input's gradient always); the MLP's two dense layers,
  three products each. A causal mask does not shrink the products: scratch computes every score
  and masks it;
- a dense layer at every step: an MLP layer's three products on R rows (no dL/dx for a first layer).

Not counted (they are in the time, not in the FLOPs): the embedding, a gather; its backward, a
scatter-add of rows, which scratch computes as a one-hot product (R × V)ᵀ @ (R × dim), mostly
multiplications by zero, that torch does as an index-add; the positional embedding, layernorms,
gates, softmaxes and the loss.
"""
from __future__ import annotations

RECURRENT_KINDS = ("rnn", "lstm", "gru")


def sequence_products(layer, in_shape, batch: int, input_grad: bool) -> list[tuple[str, int, int, int]]:
    """The products of one layer's forward and backward on (N, T, …) sequences (scratch's)."""
    steps = in_shape[0]
    rows = batch * steps
    if layer.kind in RECURRENT_KINDS:
        return _recurrent_products(layer, in_shape, batch, input_grad)
    if layer.kind == "transformer":
        return _transformer_products(layer, in_shape, batch)
    if layer.kind == "dense":
        width = in_shape[-1]
        out = [("NN", rows, width, layer.units), ("TN", width, rows, layer.units)]
        return out + ([("NT", rows, layer.units, width)] if input_grad else [])
    return []      # embedding, positional embedding, layernorm: no product counted


def _recurrent_products(layer, in_shape, batch: int, input_grad: bool) -> list[tuple[str, int, int, int]]:
    steps, inputs = in_shape
    rows, size, gates = batch * steps, layer.hidden, layer.GATES * layer.hidden
    out = []
    for k in range(layer.num_layers):
        width = inputs if k == 0 else size * layer.directions
        for _ in range(layer.directions):
            out.append(("NT", rows, width, gates))                       # X @ W_ihᵀ, every step at once
            out += [("NT", batch, size, gates)] * (steps - 1)            # h_{t−1} @ W_hhᵀ past the first step
            out += [("NN", batch, gates, size)] * (steps - 1)            # dA_t @ W_hh, all but into step −1
            out += [("TN", gates, rows, width), ("TN", gates, rows, size)]   # dW_ih, dW_hh
            if k > 0 or input_grad:
                out.append(("NN", rows, gates, width))                   # dL/dx = A @ W_ih
    return out


def _transformer_products(layer, in_shape, batch: int) -> list[tuple[str, int, int, int]]:
    steps, width = in_shape
    rows, hidden, heads = batch * steps, layer.hidden(in_shape), layer.heads
    d = width // heads
    per_head = batch * heads
    forward = ([("NN", rows, width, 3 * width)]                            # [Q|K|V] = X W_in
               + [("NT", steps, d, steps)] * per_head                      # S = Q Kᵀ
               + [("NN", steps, steps, d)] * per_head                      # P V
               + [("NN", rows, width, width)])                             # C W_out
    backward = ([("TN", width, rows, width), ("NT", rows, width, width)]   # dW_out, dC
                + [("TN", steps, steps, d)] * per_head                     # dV = Pᵀ dC
                + [("NT", steps, d, steps)] * per_head                     # dP = dC Vᵀ
                + [("NN", steps, steps, d)] * per_head                     # dQ = dS K
                + [("TN", steps, steps, d)] * per_head                     # dK = dSᵀ Q
                + [("TN", width, rows, 3 * width), ("NT", rows, 3 * width, width)])   # dW_in, dL/dx
    mlp = []
    for k, n in ((width, hidden), (hidden, width)):
        mlp += [("NN", rows, k, n), ("TN", k, rows, n), ("NT", rows, n, k)]
    return forward + backward + mlp
