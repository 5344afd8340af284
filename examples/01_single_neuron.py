"""Example 1: a single neuron, z = x·w + b, through sigmoid, ReLU and tanh.

x = [1, 2, 3], w = [0.2, 0.8, -0.5], b = 2.0. Each activation's one-layer spec builds the
scratch Network and its torch twin; both print z and a = f(z).

    .venv/bin/python examples/01_single_neuron.py [--json]
"""
from __future__ import annotations

from _common import SINGLE_PASS_TOL, Comparison, make_parser, run_main, scratch_trace, torch_trace
from scratch.network import Network
from scratch.spec import parse_spec
from torch_ref.model import build

X = [[1.0, 2.0, 3.0]]
WEIGHTS = [[0.2], [0.8], [-0.5]]  # (inputs, units): one column per neuron
BIAS = [2.0]
ACTIVATIONS = ("sigmoid", "relu", "tanh")


def neuron_spec(activation: str):
    return parse_spec({"layers": [{"inputs": 3, "units": 1, "activation": activation,
                                   "weight": WEIGHTS, "bias": BIAS}]})


def main(argv=None) -> dict:
    args = make_parser(__doc__).parse_args(argv)
    cmp = Comparison("01_single_neuron", "Example 1: single neuron, x = [1, 2, 3], w = [0.2, 0.8, -0.5], b = 2.0",
                     SINGLE_PASS_TOL)
    for activation in ACTIVATIONS:
        spec = neuron_spec(activation)
        (z_s,), (a_s,) = scratch_trace(Network.from_spec(spec), X)
        (z_t,), (a_t,) = torch_trace(build(spec), X)
        cmp.add(activation, "z", z_s[0, 0], z_t[0, 0])
        cmp.add(activation, "a", a_s[0, 0], a_t[0, 0])
    return cmp.finish(args)


if __name__ == "__main__":
    run_main(main)
