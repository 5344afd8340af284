"""A character-level RNN's loss function as the classic minimal script writes it: the parameters
are module globals Wxh, Whh, Why, bh, by, and ``lossFun(inputs, targets, hprev)`` takes lists of
token ids and the previous hidden state (a column), runs forward over the sequence and back
through time, clips the gradients to [-5, 5] (inactive at these sizes: verify would name a clipped
element), and returns (loss, dWxh, dWhh, dWhy, dbh, dby, the last hidden state).

    nnparity verify examples.char_rnn:lossFun

Correct (small sizes, seeded); parity_tests/planted_networks.py holds the classic slips.
"""
import numpy as np

vocab_size, hidden_size = 5, 4
_rng = np.random.default_rng(1)
Wxh = _rng.normal(0.0, 0.5, size=(hidden_size, vocab_size))
Whh = _rng.normal(0.0, 0.5, size=(hidden_size, hidden_size))
Why = _rng.normal(0.0, 0.5, size=(vocab_size, hidden_size))
bh = np.zeros((hidden_size, 1))
by = np.zeros((vocab_size, 1))


def lossFun(inputs, targets, hprev):
    xs, hs, ys, ps = {}, {}, {}, {}
    hs[-1] = np.copy(hprev)
    loss = 0
    for t in range(len(inputs)):
        xs[t] = np.zeros((vocab_size, 1))
        xs[t][inputs[t]] = 1
        hs[t] = np.tanh(np.dot(Wxh, xs[t]) + np.dot(Whh, hs[t - 1]) + bh)
        ys[t] = np.dot(Why, hs[t]) + by
        ps[t] = np.exp(ys[t]) / np.sum(np.exp(ys[t]))
        loss += -np.log(ps[t][targets[t], 0])
    dWxh, dWhh, dWhy = np.zeros_like(Wxh), np.zeros_like(Whh), np.zeros_like(Why)
    dbh, dby = np.zeros_like(bh), np.zeros_like(by)
    dhnext = np.zeros_like(hs[0])
    for t in reversed(range(len(inputs))):
        dy = np.copy(ps[t])
        dy[targets[t]] -= 1
        dWhy += np.dot(dy, hs[t].T)
        dby += dy
        dh = np.dot(Why.T, dy) + dhnext
        dhraw = (1 - hs[t] * hs[t]) * dh
        dbh += dhraw
        dWxh += np.dot(dhraw, xs[t].T)
        dWhh += np.dot(dhraw, hs[t - 1].T)
        dhnext = np.dot(Whh.T, dhraw)
    for dparam in [dWxh, dWhh, dWhy, dbh, dby]:
        np.clip(dparam, -5, 5, out=dparam)  # clip to mitigate exploding gradients
    return loss, dWxh, dWhh, dWhy, dbh, dby, hs[len(inputs) - 1]
