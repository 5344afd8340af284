"""Example 2: forward pass of a 2-3-1 network (ReLU hidden, sigmoid out): every z and a.

x = [0.5, 0.8]; W1 = [[0.1, 0.3, -0.2], [0.4, -0.5, 0.6]], b1 = [0.1, -0.1, 0.2];
W2 = [[0.7], [-0.3], [0.5]], b2 = [0.1]. Weights in the layout of z = x @ W + b.

    .venv/bin/python examples/02_forward_231.py [--json]
"""
from __future__ import annotations

from _common import SINGLE_PASS_TOL, Comparison, make_parser, run_main, scratch_trace, torch_trace
from scratch.network import Network
from scratch.spec import parse_spec
from torch_ref.model import build

X = [[0.5, 0.8]]
SPEC = {
    "layers": [
        {"inputs": 2, "units": 3, "activation": "relu",
         "weight": [[0.1, 0.3, -0.2], [0.4, -0.5, 0.6]], "bias": [0.1, -0.1, 0.2]},
        {"units": 1, "activation": "sigmoid", "weight": [[0.7], [-0.3], [0.5]], "bias": [0.1]},
    ],
}


def main(argv=None) -> dict:
    args = make_parser(__doc__).parse_args(argv)
    spec = parse_spec(SPEC)
    cmp = Comparison("02_forward_231", "Example 2: 2-3-1 forward pass (ReLU hidden, sigmoid out), x = [0.5, 0.8]",
                     SINGLE_PASS_TOL)
    zs_s, as_s = scratch_trace(Network.from_spec(spec), X)
    zs_t, as_t = torch_trace(build(spec), X)
    for i in range(len(spec.layers)):
        section = f"layer {i + 1} ({spec.layers[i].activation})"
        cmp.add(section, f"z{i + 1}", zs_s[i][0], zs_t[i][0])
        cmp.add(section, f"a{i + 1}", as_s[i][0], as_t[i][0])
    return cmp.finish(args)


if __name__ == "__main__":
    run_main(main)
