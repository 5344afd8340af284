"""Built-in default specs, used when a command is given no SPEC."""
from __future__ import annotations

from scratch.spec import Spec, parse_spec

# A 3-4-4-3 network touching three activations and the fused cross-entropy, on a random batch.
CHECK_DEFAULT = {
    "seed": 0,
    "dtype": "float64",
    "layers": [
        {"inputs": 3, "units": 4, "activation": "tanh"},
        {"units": 4, "activation": "gelu"},
        {"units": 3, "activation": "identity"},
    ],
    "loss": {"name": "softmax_cce"},
}


# `nnparity compare`: the digits MLP of specs/digits.toml (a test keeps the two equal): 64-32-10
# ReLU, softmax cross-entropy, mini-batch Adam on shuffled batches of 32, standardized pixels,
# 20% held out. 10 epochs = 450 steps: well under a second of training per way.
COMPARE_DEFAULT = {
    "seed": 0,
    "dtype": "float64",
    "layers": [
        {"inputs": 64, "units": 32, "activation": "relu", "init": "he_uniform"},
        {"units": 10, "activation": "identity"},
    ],
    "loss": {"name": "softmax_cce"},
    "optimizer": {"name": "adam", "lr": 0.003},
    "data": {"name": "digits", "test_fraction": 0.2, "scale": "standard"},
    "train": {"epochs": 10, "batch_size": 32, "shuffle": True},
}

DEFAULTS = {"check": CHECK_DEFAULT, "compare": COMPARE_DEFAULT}


def default_spec(command: str) -> Spec:
    return parse_spec(DEFAULTS[command])
