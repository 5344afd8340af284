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


def default_spec(command: str) -> Spec:
    return parse_spec({"check": CHECK_DEFAULT}[command])
