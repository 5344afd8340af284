"""Example 8: vanishing gradients: per-layer gradient norms, 10-layer sigmoid vs 10-layer ReLU/He.

Both networks are 16 inputs, nine hidden layers of 16 units and one linear output unit (ten Dense
layers), on the mean squared error of one seeded batch of 64 rows (x ~ N(0, 1), y ~ N(0, 1)).
- sigmoid: hidden weights drawn from N(0, 0.1²) (a small random init), zero biases. Each layer
  multiplies the backward signal by about σ'(z)·‖W‖ ≈ 0.25 · 0.1·√16 = 0.1, so the gradient
  reaching the first layer is orders of magnitude below the last layer's.
- relu: He normal init, N(0, 2/fan_in), zero biases: the signal keeps its scale layer to layer.
Prints ‖dL/dW_i‖ (Frobenius) for every layer from both implementations, and with --plot FILE.png
draws them on a log scale.

    .venv/bin/python examples/08_vanishing_gradients.py [--json] [--plot FILE.png]
"""
from __future__ import annotations

import numpy as np

from _common import SINGLE_PASS_TOL, Comparison, make_parser, run_main
from scratch.data import random_batch
from scratch.spec import parse_spec
from torch_ref.check import run_scratch, run_torch

DEPTH, WIDTH, INPUTS, BATCH, SEED = 10, 16, 16, 64, 0
SIGMOID_STD = 0.1

NETWORKS = {
    "sigmoid": {"activation": "sigmoid", "init": "normal", "init_scale": SIGMOID_STD},
    "relu": {"activation": "relu", "init": "he_normal"},
}


def deep_spec(activation: str, init: str, init_scale: float | None = None):
    hidden = {"units": WIDTH, "activation": activation, "init": init}
    if init_scale is not None:
        hidden["init_scale"] = init_scale
    layers = [dict(hidden, inputs=INPUTS)] + [dict(hidden) for _ in range(DEPTH - 2)]
    layers.append({"units": 1, "activation": "identity", "init": init, **(
        {"init_scale": init_scale} if init_scale is not None else {})})
    return parse_spec({"seed": SEED, "layers": layers, "loss": {"name": "mse"}})


def layer_norms(grads: dict) -> np.ndarray:
    return np.array([np.linalg.norm(grads[f"layers.{i}.weight"]) for i in range(DEPTH)])


def plot(path: str, norms: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    layers = np.arange(1, DEPTH + 1)
    styles = {"sigmoid": "tab:red", "relu": "tab:blue"}
    for name, (ours, theirs) in norms.items():
        label = "sigmoid, N(0, 0.1²)" if name == "sigmoid" else "ReLU, He normal"
        ax.semilogy(layers, ours, "o-", color=styles[name], label=f"{label}: scratch")
        ax.semilogy(layers, theirs, "x", color="black", markersize=9,
                    label="torch (autograd)" if name == "sigmoid" else None)
    ax.set_xlabel("layer (1 = first)")
    ax.set_ylabel("‖dL/dW‖ (Frobenius)")
    ax.set_xticks(layers)
    ax.set_title(f"Vanishing gradients: {DEPTH}-layer MLPs, width {WIDTH}, MSE, batch {BATCH}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None) -> dict:
    parser = make_parser(__doc__)
    parser.add_argument("--plot", metavar="FILE.png", help="write the per-layer norms as a log-scale plot")
    args = parser.parse_args(argv)
    cmp = Comparison("08_vanishing_gradients",
                     f"Example 8: per-layer gradient norms ‖dL/dW_i‖, {DEPTH}-layer MLPs of width {WIDTH}",
                     SINGLE_PASS_TOL,
                     notes=[f"sigmoid: hidden init N(0, {SIGMOID_STD}²); relu: He normal N(0, 2/fan_in); "
                            f"zero biases; MSE on a seeded batch of {BATCH}"])
    norms = {}
    for name, layer in NETWORKS.items():
        spec = deep_spec(**layer)
        x, y = random_batch(spec, BATCH)
        ours, theirs = layer_norms(run_scratch(spec, x, y)["grads"]), layer_norms(run_torch(spec, x, y)["grads"])
        norms[name] = (ours, theirs)
        for i in range(DEPTH):
            cmp.add(name, f"layer {i + 1:2d}", ours[i], theirs[i])
        cmp.add(name, "first/last", ours[0] / ours[-1], theirs[0] / theirs[-1])
    if args.plot:
        plot(args.plot, norms)
        cmp.result("plot", args.plot)
    return cmp.finish(args)


if __name__ == "__main__":
    run_main(main)
