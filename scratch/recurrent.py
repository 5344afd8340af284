"""Recurrent layers (RNN, LSTM, GRU) over whole sequences, with backpropagation through time by hand.

One driver (``Recurrent``) runs every layer and direction: the input projections of all time
steps in one product, X (N·T, D) @ W_ihᵀ + b_ih, as cuDNN does; then the time loop, where each
kind's cell adds the hidden projection W_hh h_{t−1} + b_hh and applies its gates. Backward runs
the cells back in time, collecting, at every step, dL/d(input projection) and dL/d(hidden
projection); the weight gradients are then one product each over all steps:

    dL/dW_ih = Σ_t A_tᵀ x_t,  dL/db_ih = Σ_t A_t,  dL/dW_hh = Σ_t B_tᵀ h_{t−1},  dL/db_hh = Σ_t B_t,
    dL/dx_t = A_t W_ih,       and into the step before: dL/dh_{t−1} += B_t W_hh,

with A_t = dL/d(W_ih x_t + b_ih) and B_t = dL/d(W_hh h_{t−1} + b_hh) (equal but for the GRU's n
gate). Both directions of a bidirectional layer read the same input; the backward one runs from
t = T − 1 down to 0; their outputs are concatenated (forward first), as torch's.
"""
from __future__ import annotations

import numpy as np

from scratch.layers import store_gradient


def sigmoid(z, xp):
    """1 / (1 + exp(−z)) without overflow for any finite z."""
    e = xp.exp(-xp.abs(z))
    return xp.where(z >= 0, 1 / (1 + e), e / (1 + e))


class RNNCell:
    """h_t = f(a_t), a_t = W_ih x_t + b_ih + W_hh h_{t−1} + b_hh, f = tanh or relu.
    Backward: dL/da_t = dL/dh_t ⊙ f'(a_t) (tanh: 1 − h_t², relu: 1 where a_t > 0, else 0)."""

    gates = 1
    cell_state = False

    def __init__(self, nonlinearity: str = "tanh"):
        self.relu = nonlinearity == "relu"

    def step(self, xw, h_prev, c_prev, w_hh, b_hh, xp):
        a = xw + h_prev @ w_hh.T + b_hh
        h = xp.maximum(a, 0) if self.relu else xp.tanh(a)
        return h, None, (a > 0) if self.relu else h

    def step_back(self, dh, dc, cache, w_hh, xp):
        da = dh * cache if self.relu else dh * (1 - cache * cache)
        return da, da, da @ w_hh, None


class LSTMCell:
    """gates = W_ih x_t + b_ih + W_hh h_{t−1} + b_hh = [a_i, a_f, a_g, a_o] (torch's order);
    i = σ(a_i), f = σ(a_f), g = tanh(a_g), o = σ(a_o); c_t = f ⊙ c_{t−1} + i ⊙ g; h_t = o ⊙ tanh(c_t).
    Backward, dc = dL/dc_t (from step t + 1) + dL/dh_t ⊙ o ⊙ (1 − tanh²c_t):
    dL/da_i = dc ⊙ g ⊙ i(1 − i), dL/da_f = dc ⊙ c_{t−1} ⊙ f(1 − f), dL/da_g = dc ⊙ i ⊙ (1 − g²),
    dL/da_o = dL/dh_t ⊙ tanh c_t ⊙ o(1 − o); dL/dc_{t−1} = dc ⊙ f."""

    gates = 4
    cell_state = True

    def step(self, xw, h_prev, c_prev, w_hh, b_hh, xp):
        a = xw + h_prev @ w_hh.T + b_hh
        size = h_prev.shape[1]
        i, f, o = (sigmoid(a[:, k * size:(k + 1) * size], xp) for k in (0, 1, 3))
        g = xp.tanh(a[:, 2 * size:3 * size])
        c = f * c_prev + i * g
        tanh_c = xp.tanh(c)
        return o * tanh_c, c, (i, f, g, o, c_prev, tanh_c)

    def step_back(self, dh, dc, cache, w_hh, xp):
        i, f, g, o, c_prev, tanh_c = cache
        dc = dc + dh * o * (1 - tanh_c * tanh_c)
        da = xp.concatenate([dc * g * i * (1 - i), dc * c_prev * f * (1 - f), dc * i * (1 - g * g),
                             dh * tanh_c * o * (1 - o)], axis=1)
        return da, da, da @ w_hh, dc * f


class GRUCell:
    """[x_r, x_z, x_n] = W_ih x_t + b_ih, [h_r, h_z, h_n] = W_hh h_{t−1} + b_hh (torch's order);
    r = σ(x_r + h_r), z = σ(x_z + h_z), n = tanh(x_n + r ⊙ h_n), h_t = (1 − z) ⊙ n + z ⊙ h_{t−1}.
    Backward, dh = dL/dh_t: dL/da_n = dh ⊙ (1 − z) ⊙ (1 − n²) (a_n = x_n + r ⊙ h_n),
    dL/d(x_r + h_r) = dL/da_n ⊙ h_n ⊙ r(1 − r), dL/d(x_z + h_z) = dh ⊙ (h_{t−1} − n) ⊙ z(1 − z);
    dL/dx_n = dL/da_n, dL/dh_n = dL/da_n ⊙ r; dL/dh_{t−1} = dh ⊙ z + (through W_hh)."""

    gates = 3
    cell_state = False

    def step(self, xw, h_prev, c_prev, w_hh, b_hh, xp):
        hw = h_prev @ w_hh.T + b_hh
        size = h_prev.shape[1]
        r = sigmoid(xw[:, :size] + hw[:, :size], xp)
        z = sigmoid(xw[:, size:2 * size] + hw[:, size:2 * size], xp)
        h_n = hw[:, 2 * size:]
        n = xp.tanh(xw[:, 2 * size:] + r * h_n)
        return (1 - z) * n + z * h_prev, None, (r, z, n, h_n, h_prev)

    def step_back(self, dh, dc, cache, w_hh, xp):
        r, z, n, h_n, h_prev = cache
        da_n = dh * (1 - z) * (1 - n * n)
        da_r = da_n * h_n * r * (1 - r)
        da_z = dh * (h_prev - n) * z * (1 - z)
        d_input = xp.concatenate([da_r, da_z, da_n], axis=1)
        d_hidden = xp.concatenate([da_r, da_z, da_n * r], axis=1)
        return d_input, d_hidden, dh * z + d_hidden @ w_hh, None


class Recurrent:
    """A stack of recurrent layers, each direction run over the whole sequence; the output is every
    step's hidden state of the last layer, (N, T, H) or (N, T, 2H). The module docstring holds BPTT.

    Backward: the cell's step_back at t = T − 1 … 0 (dL/dh_t = the output's gradient at t plus what
    step t + 1 sent back), then the products of the module docstring. Torch twin: nn.RNN, nn.LSTM,
    nn.GRU(batch_first=True), the output of their (output, state) pair.
    """

    def __init__(self, cell, params: dict, num_layers: int, directions: int, xp=np):
        self.xp, self.cell, self.num_layers, self.directions = xp, cell, num_layers, directions
        self.params = tuple(params)
        for name, value in params.items():
            setattr(self, name, value)
            setattr(self, f"grad_{name}", None)
        self.saved = None    # per layer: its input, and per direction what the cells kept

    @classmethod
    def from_spec(cls, layer_spec, params: dict, xp=np) -> "Recurrent":
        return cls(cls.make_cell(layer_spec), params, layer_spec.num_layers, layer_spec.directions, xp=xp)

    def release(self) -> None:
        self.saved = None

    def _names(self, layer: int, direction: int) -> tuple[str, ...]:
        suffix = f"l{layer}" + ("_reverse" if direction else "")
        return tuple(f"{w}_{suffix}" for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))

    def _order(self, steps: int, direction: int):
        return range(steps - 1, -1, -1) if direction else range(steps)

    def forward(self, x):
        self.saved = []
        for layer in range(self.num_layers):
            kept = [self._run(x, layer, direction) for direction in range(self.directions)]
            self.saved.append((x, kept))
            x = kept[0]["h"] if self.directions == 1 else self.xp.concatenate([part["h"] for part in kept], axis=2)
        return x

    def _run(self, x, layer: int, direction: int) -> dict:
        """One direction of one layer over the sequence: every step's h (and c), h_{t−1} and the cells' caches."""
        xp = self.xp
        w_ih, w_hh, b_ih, b_hh = (getattr(self, name) for name in self._names(layer, direction))
        n, steps, inputs = x.shape
        xw = (x.reshape(n * steps, inputs) @ w_ih.T + b_ih).reshape(n, steps, -1)   # every step at once
        size = w_hh.shape[1]
        h = xp.zeros((n, size), dtype=xw.dtype)
        c = xp.zeros((n, size), dtype=xw.dtype) if self.cell.cell_state else None
        out, h_prev = xp.empty((n, steps, size), dtype=xw.dtype), xp.empty((n, steps, size), dtype=xw.dtype)
        c_all = xp.empty((n, steps, size), dtype=xw.dtype) if self.cell.cell_state else None
        caches = []
        for t in self._order(steps, direction):
            h_prev[:, t] = h
            h, c, cache = self.cell.step(xw[:, t], h, c, w_hh, b_hh, xp)
            out[:, t] = h
            if c_all is not None:
                c_all[:, t] = c
            caches.append(cache)
        return {"h": out, "c": c_all, "h_prev": h_prev, "caches": caches}

    def states(self) -> dict:
        """Every step's hidden state (and cell state) of each layer and direction from the last forward,
        (N, T, H) each, named h_l{k}, c_l{k} (``_reverse`` for the backward direction)."""
        out = {}
        for layer, (_, kept) in enumerate(self.saved):
            for direction, part in enumerate(kept):
                suffix = f"l{layer}" + ("_reverse" if direction else "")
                out[f"h_{suffix}"] = part["h"]
                if part["c"] is not None:
                    out[f"c_{suffix}"] = part["c"]
        return out

    def backward(self, grad_out, input_grad: bool = True):
        xp = self.xp
        for layer in reversed(range(self.num_layers)):
            x, kept = self.saved[layer]
            n, steps, inputs = x.shape
            grad_x = None
            for direction, part in enumerate(kept):
                names = self._names(layer, direction)
                w_ih, w_hh = getattr(self, names[0]), getattr(self, names[1])
                size = w_hh.shape[1]
                grad_h = grad_out[:, :, direction * size:(direction + 1) * size]
                d_input, d_hidden = self._through_time(grad_h, part["caches"], w_hh, direction)
                rows_input, rows_hidden = d_input.reshape(n * steps, -1), d_hidden.reshape(n * steps, -1)
                store_gradient(self, names[0], rows_input.T @ x.reshape(n * steps, inputs))
                store_gradient(self, names[1], rows_hidden.T @ part["h_prev"].reshape(n * steps, size))
                store_gradient(self, names[2], rows_input.sum(axis=0))
                store_gradient(self, names[3], rows_hidden.sum(axis=0))
                if layer > 0 or input_grad:
                    grad = (rows_input @ w_ih).reshape(n, steps, inputs)
                    grad_x = grad if grad_x is None else grad_x + grad
            grad_out = grad_x
        return grad_out

    def _through_time(self, grad_h, caches, w_hh, direction: int):
        """A_t and B_t (the module docstring) at every step, (N, T, gates·H) each."""
        xp = self.xp
        n, steps, size = grad_h.shape
        d_input = xp.empty((n, steps, self.cell.gates * size), dtype=grad_h.dtype)
        d_hidden = xp.empty_like(d_input)
        dh_next = xp.zeros((n, size), dtype=grad_h.dtype)
        dc_next = xp.zeros((n, size), dtype=grad_h.dtype) if self.cell.cell_state else None
        for k, t in enumerate(reversed(self._order(steps, direction))):
            cache = caches[steps - 1 - k]
            d_input[:, t], d_hidden[:, t], dh_next, dc_next = self.cell.step_back(
                grad_h[:, t] + dh_next, dc_next, cache, w_hh, xp)
        return d_input, d_hidden


class RNN(Recurrent):
    """Elman RNN layers (tanh or relu): RNNCell's step and derivative in the BPTT of Recurrent.

    Backward: BPTT (the module docstring) with dL/da_t = dL/dh_t ⊙ f'(a_t).
    Torch twin: nn.RNN(inputs, hidden, num_layers, nonlinearity, batch_first=True, bidirectional).
    """

    @staticmethod
    def make_cell(layer_spec):
        return RNNCell(layer_spec.nonlinearity)


class LSTM(Recurrent):
    """LSTM layers: LSTMCell's gates (i, f, g, o) and derivatives in the BPTT of Recurrent.

    Backward: BPTT (the module docstring), the cell state's gradient carried back with dL/dc_{t−1} = dc ⊙ f.
    Torch twin: nn.LSTM(inputs, hidden, num_layers, batch_first=True, bidirectional).
    """

    @staticmethod
    def make_cell(layer_spec):
        return LSTMCell()


class GRU(Recurrent):
    """GRU layers: GRUCell's gates (r, z, n) and derivatives in the BPTT of Recurrent.

    Backward: BPTT (the module docstring), the n gate's hidden part scaled by r (B_t ≠ A_t there).
    Torch twin: nn.GRU(inputs, hidden, num_layers, batch_first=True, bidirectional).
    """

    @staticmethod
    def make_cell(layer_spec):
        return GRUCell()
