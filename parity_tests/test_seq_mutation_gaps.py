"""Tests the mutation check of the sequence layers' backward passes asked for (tools/mutate.py over
recurrent.py, embedding.py and readouts.py, and Dense.backward, the dense layer at every step): each
kills mutants the parity tests let through.

Equivalent survivors (no test can kill them, named in the README's mutation paragraph):
- a buffer of zeros scaled by 2 or ½ (the position table's and the last-step readout's gradient
  buffers): zeros stay zero;
- a reshape's ``-1`` turned into ``-2`` (NumPy reads any negative size as the one it infers);
- the tuple of a direction's parameter names repeated (only its first four are read);
- ``caches[steps − 1 − k]`` read as ``caches[−1 − k]`` (the same element for k < steps);
- the guard ``k < steps − 1`` that skips the product into the step before the first, loosened
  (the product is done, its result unused);
- the LSTM's first-step zeroing of its f columns widened over the g and o columns, which are
  written right after.
"""
from __future__ import annotations

import numpy as np
import pytest

from conftest import assert_no_input_gradient_changes_nothing
from scratch.spec import parse_spec

STEPS, FEATURES = 5, 4
# the first layer of a network on a float sequence (T, features): each recurrent kind stacked and in
# both directions, a dense layer at every step, the position table and the readouts
FIRST = {"rnn-relu": {"kind": "rnn", "hidden": 3, "nonlinearity": "relu", "num_layers": 2, "bidirectional": True},
         "lstm": {"kind": "lstm", "hidden": 3, "num_layers": 2, "bidirectional": True},
         "gru": {"kind": "gru", "hidden": 3, "num_layers": 2},
         "dense-per-step": {"units": 3, "activation": "tanh"},
         "positional_embedding": {"kind": "positional_embedding", "max_len": STEPS + 2},
         "seq_last": {"kind": "seq_last"}, "seq_mean": {"kind": "seq_mean"}}


@pytest.mark.parametrize("case", list(FIRST))
def test_seq_mutation_gaps_first_layer_without_input_gradient(case):
    """A training step asks the first layer for no dL/dx (``input_grad=False``): it returns None and
    leaves every parameter gradient as a pass that computes dL/dx does."""
    readout = [] if case.startswith("seq_") else [{"kind": "seq_mean"}]
    spec = parse_spec({"seed": 3, "input_shape": [STEPS, FEATURES], "layers": [FIRST[case], *readout, {"units": 3}],
                       "loss": {"name": "softmax_cce"}})
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(3, STEPS, FEATURES)), rng.integers(0, 3, size=3)
    assert_no_input_gradient_changes_nothing(spec, x, y)
