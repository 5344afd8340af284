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

import math

import numpy as np

from scratch.layers import store_gradient


def sigmoid(z, xp, out=None):
    """1 / (1 + exp(−z)), exp's argument at most 0.9·ln(the dtype's largest number): no overflow for
    any finite z; below z ≈ −80 (float32) or −639 (float64), where σ < 2e-35 or 1e-277, the value
    stays at that bound's. ``out``: the array to write into (it may be z)."""
    bound = -0.9 * math.log(float(xp.finfo(z.dtype).max))
    e = xp.maximum(z, bound, out=out)
    xp.negative(e, out=e)
    xp.exp(e, out=e)
    e += 1
    return xp.reciprocal(e, out=e)


def _add_into(target, other):
    """target += other, and target: a fresh product takes the sum in place of a new array."""
    target += other
    return target


class RNNCell:
    """h_t = f(a_t), a_t = W_ih x_t + b_ih + W_hh h_{t−1} + b_hh, f = tanh or relu.
    Backward: dL/da_t = dL/dh_t ⊙ f'(a_t) (tanh: 1 − h_t², relu: 1 where a_t > 0, else 0)."""

    gates = 1
    cell_state = False
    shared_gradient = True        # dL/d(input projection) = dL/d(hidden projection)
    bias_in_input = True          # b_hh is added with b_ih to the input projections

    def __init__(self, nonlinearity: str = "tanh"):
        self.relu = nonlinearity == "relu"

    def step(self, xw, hw, h_prev, c_prev, b_hh, xp):
        a = xw if hw is None else _add_into(hw, xw)
        h = xp.maximum(a, 0) if self.relu else xp.tanh(a)
        return h, None, (a > 0) if self.relu else h

    def step_back(self, dh, dc, cache, out, xp):
        xp.multiply(dh, cache if self.relu else 1 - cache * cache, out=out)
        return out, None, None


class LSTMCell:
    """gates = W_ih x_t + b_ih + W_hh h_{t−1} + b_hh = [a_i, a_f, a_g, a_o] (torch's order);
    i = σ(a_i), f = σ(a_f), g = tanh(a_g), o = σ(a_o); c_t = f ⊙ c_{t−1} + i ⊙ g; h_t = o ⊙ tanh(c_t).
    Backward, dc = dL/dc_t (from step t + 1) + dL/dh_t ⊙ o ⊙ (1 − tanh²c_t):
    dL/da_i = dc ⊙ g ⊙ i(1 − i), dL/da_f = dc ⊙ c_{t−1} ⊙ f(1 − f), dL/da_g = dc ⊙ i ⊙ (1 − g²),
    dL/da_o = dL/dh_t ⊙ tanh c_t ⊙ o(1 − o); dL/dc_{t−1} = dc ⊙ f.

    Speed: the four gates are one (N, 4H) array: σ over all of it in place, then g's columns
    overwritten by their tanh; backward, the gates' derivatives at once as (1 − G) ⊙ (G + [0, 0, 1, 0])
    (σ' = σ(1 − σ), tanh' = (1 − g)(1 + g)) times dL/dG = [dc ⊙ g, dc ⊙ c_{t−1}, dc ⊙ i, dL/dh ⊙ tanh c].
    """

    gates = 4
    cell_state = True
    shared_gradient = True
    bias_in_input = True
    g_row = None                  # _g_columns' row, kept

    def step(self, xw, hw, h_prev, c_prev, b_hh, xp):
        size = xw.shape[1] // 4
        a = xw.copy() if hw is None else _add_into(hw, xw)
        g = xp.tanh(a[:, 2 * size:3 * size])
        gates = sigmoid(a, xp, out=a)
        gates[:, 2 * size:3 * size] = g
        i, f, o = gates[:, :size], gates[:, size:2 * size], gates[:, 3 * size:]
        c = i * g
        if c_prev is not None:
            c += f * c_prev
        tanh_c = xp.tanh(c)
        return o * tanh_c, c, (gates, c_prev, tanh_c)

    def step_back(self, dh, dc, cache, out, xp):
        gates, c_prev, tanh_c = cache
        size = tanh_c.shape[1]
        g, o = gates[:, 2 * size:3 * size], gates[:, 3 * size:]
        carried = dh * o
        carried *= 1 - tanh_c * tanh_c
        if dc is not None:
            carried += dc
        xp.multiply(carried, g, out=out[:, :size])
        if c_prev is None:
            out[:, size:2 * size] = 0
        else:
            xp.multiply(carried, c_prev, out=out[:, size:2 * size])
        xp.multiply(carried, gates[:, :size], out=out[:, 2 * size:3 * size])
        xp.multiply(dh, tanh_c, out=out[:, 3 * size:])
        slope = 1 - gates
        out *= slope
        out *= xp.add(gates, self._g_columns(size, gates.dtype, xp), out=slope)
        return out, None, carried * gates[:, size:2 * size]

    def _g_columns(self, size: int, dtype, xp):
        """[0, 0, 1, 0], each H wide: what turns σ's derivative (1 − G) G into tanh's (1 − G)(1 + G)
        (made once per size and dtype)."""
        row = self.g_row
        if row is None or row.shape[0] != 4 * size or row.dtype != dtype:
            row = xp.zeros(4 * size, dtype=dtype)
            row[2 * size:3 * size] = 1
            self.g_row = row
        return row


class GRUCell:
    """[x_r, x_z, x_n] = W_ih x_t + b_ih, [h_r, h_z, h_n] = W_hh h_{t−1} + b_hh (torch's order);
    r = σ(x_r + h_r), z = σ(x_z + h_z), n = tanh(x_n + r ⊙ h_n), h_t = (1 − z) ⊙ n + z ⊙ h_{t−1}.
    Backward, dh = dL/dh_t: dL/da_n = dh ⊙ (1 − z) ⊙ (1 − n²) (a_n = x_n + r ⊙ h_n),
    dL/d(x_r + h_r) = dL/da_n ⊙ h_n ⊙ r(1 − r), dL/d(x_z + h_z) = dh ⊙ (h_{t−1} − n) ⊙ z(1 − z);
    dL/dx_n = dL/da_n, dL/dh_n = dL/da_n ⊙ r; dL/dh_{t−1} = dh ⊙ z + (through W_hh)."""

    gates = 3
    cell_state = False
    shared_gradient = False       # the n gate's hidden part is scaled by r
    bias_in_input = False         # b_hn sits inside r ⊙ (W_hn h + b_hn)

    def step(self, xw, hw, h_prev, c_prev, b_hh, xp):
        hw = xp.broadcast_to(b_hh, xw.shape) if hw is None else _add_into(hw, b_hh)
        size = h_prev.shape[1]
        r = sigmoid(xw[:, :size] + hw[:, :size], xp)
        z = sigmoid(xw[:, size:2 * size] + hw[:, size:2 * size], xp)
        h_n = hw[:, 2 * size:]
        n = xp.tanh(xw[:, 2 * size:] + r * h_n)
        return (1 - z) * n + z * h_prev, None, (r, z, n, h_n, h_prev)

    def step_back(self, dh, dc, cache, out, xp):
        r, z, n, h_n, h_prev = cache
        size = r.shape[1]
        da_n = dh * (1 - z) * (1 - n * n)
        xp.multiply(da_n * h_n, r * (1 - r), out=out[:, :size])
        xp.multiply(dh * (h_prev - n), z * (1 - z), out=out[:, size:2 * size])
        out[:, 2 * size:] = da_n
        d_hidden = xp.concatenate([out[:, :2 * size], da_n * r], axis=1)
        return d_hidden, dh * z, None


class Recurrent:
    """A stack of recurrent layers, each direction run over the whole sequence; the output is every
    step's hidden state of the last layer, (N, T, H) or (N, T, 2H). The module docstring holds BPTT.

    Backward: the cell's step_back at t = T − 1 … 0 (dL/dh_t = the output's gradient at t plus what
    step t + 1 sent back), then the products of the module docstring. Torch twin: nn.RNN, nn.LSTM,
    nn.GRU(batch_first=True), the output of their (output, state) pair.

    Speed: W_hhᵀ is copied contiguous once per direction (BLAS reads it faster than the transposed
    view); the first step's hidden product, W_hh · 0, and the last backward step's, into a step
    before the first, are skipped; b_hh joins b_ih in the input projections where the cell allows
    (RNN, LSTM); for those cells A_t = B_t is one array.
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
        xp, cell = self.xp, self.cell
        w_ih, w_hh, b_ih, b_hh = (getattr(self, name) for name in self._names(layer, direction))
        n, steps, inputs = x.shape
        bias = b_ih + b_hh if cell.bias_in_input else b_ih
        xw = (x.reshape(n * steps, inputs) @ w_ih.T + bias).reshape(n, steps, -1)   # every step at once
        w_hh_t = w_hh.T.copy()
        size = w_hh.shape[1]
        h = xp.zeros((n, size), dtype=xw.dtype)
        c = None
        out, h_prev = xp.empty((n, steps, size), dtype=xw.dtype), xp.empty((n, steps, size), dtype=xw.dtype)
        c_all = xp.empty((n, steps, size), dtype=xw.dtype) if cell.cell_state else None
        caches = []
        for k, t in enumerate(self._order(steps, direction)):
            h_prev[:, t] = h
            hw = None if k == 0 else h @ w_hh_t
            h, c, cache = cell.step(xw[:, t], hw, h, c, b_hh, xp)
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
        """A_t and B_t (the module docstring) at every step, (N, T, gates·H) each (one array where
        the cell's are equal)."""
        xp, cell = self.xp, self.cell
        n, steps, size = grad_h.shape
        d_input = xp.empty((n, steps, cell.gates * size), dtype=grad_h.dtype)
        d_hidden = d_input if cell.shared_gradient else xp.empty_like(d_input)
        dh_next, dc_next = None, None
        for k, t in enumerate(reversed(self._order(steps, direction))):
            dh = grad_h[:, t] if dh_next is None else _add_into(dh_next, grad_h[:, t])
            hidden, dh_direct, dc_next = cell.step_back(dh, dc_next, caches[steps - 1 - k], d_input[:, t], xp)
            if not cell.shared_gradient:
                d_hidden[:, t] = hidden
            if k < steps - 1:       # the first step's sends nothing back: no step before it
                dh_next = hidden @ w_hh
                if dh_direct is not None:
                    dh_next += dh_direct
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
