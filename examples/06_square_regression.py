"""Example 6: y = x² on [-1, 1] with a small tanh network: gradient descent against random search.

A 1-8-1 network (tanh hidden, linear output, Xavier-uniform init from seed 0) fitted to 64
evenly spaced points on the mean squared error, full batch, 3,000 epochs, twice from the same
start:
- gradient descent, SGD lr 0.15 (one forward and one backward pass per step). At lr 0.2 and
  above this run reaches the edge of stability (the loss spikes now and then), where rounding
  differences grow from step to step and no two implementations stay within 1e-9 of each other;
  at 0.15 the loss falls at every step;
- the random-search baseline, optimizer "random_search" with scale 0.02: perturb every parameter
  by 0.02·N(0, 1) and keep the move only if the loss falls (two forward passes per step, no
  gradient). Both sides draw the same perturbations (NumPy, seeded by the spec).
Each run is trained by scratch.training.train and by torch_ref.training.train.

    .venv/bin/python examples/06_square_regression.py [--json]
"""
from __future__ import annotations

import numpy as np
import torch

from _common import TRAINING_TOL, Comparison, make_parser, run_main, torch_threads
from scratch.data import load_dataset
from scratch.network import Network, build_loss
from scratch.spec import parse_spec
from scratch.training import train as scratch_train
from torch_ref.model import build, build_loss as torch_build_loss
from torch_ref.training import train as torch_train

EPOCHS, REPORT = 3_000, (0, 1_000, 2_000)
PROBES = [[-1.0], [-0.5], [0.0], [0.5], [1.0]]
METHODS = {
    "gradient descent (SGD lr 0.15)": {"name": "sgd", "lr": 0.15},
    "random search (scale 0.02)": {"name": "random_search", "lr": 0.02},
}


def square_spec(optimizer: dict):
    return parse_spec({
        "seed": 0,
        "layers": [{"inputs": 1, "units": 8, "activation": "tanh", "init": "xavier_uniform"},
                   {"units": 1, "activation": "identity", "init": "xavier_uniform"}],
        "loss": {"name": "mse"},
        "optimizer": optimizer,
        "data": {"name": "square"},               # 64 points, y = x², no noise
        "train": {"epochs": EPOCHS},              # full batch
    })


def main(argv=None) -> dict:
    args = make_parser(__doc__).parse_args(argv)
    cmp = Comparison("06_square_regression",
                     f"Example 6: y = x² on [-1, 1], 1-8-1 tanh network, full batch, {EPOCHS:,} epochs: "
                     f"gradient descent vs random search", TRAINING_TOL,
                     notes=["loss after k epochs = the MSE before update k + 1; the last row: at the final weights"])
    probes = np.array(PROBES)
    finals = {}
    for label, optimizer in METHODS.items():
        spec = square_spec(optimizer)
        data = load_dataset(spec)
        ours = scratch_train(spec, data, progress=False)
        with torch_threads(1):
            theirs = torch_train(spec, data, progress=False)
        net, model = Network.from_spec(spec, params=ours.params), build(spec, params=theirs.params)
        final_s = float(build_loss(spec).forward(net.forward(data.x_train), data.y_train))
        with torch.no_grad():
            xt, yt = torch.as_tensor(data.x_train), torch.as_tensor(data.y_train)
            final_t = torch_build_loss(spec)(model(xt), yt).item()
            probe_t = model(torch.as_tensor(probes)).numpy()
        for epoch in REPORT:
            cmp.add(label, f"MSE after {epoch:>5,} epochs", ours.history.epoch_loss[epoch],
                    theirs.history.epoch_loss[epoch])
        cmp.add(label, f"MSE after {EPOCHS:>5,} epochs", final_s, final_t)
        cmp.add(label, "every step's MSE", ours.history.step_loss, theirs.history.step_loss)
        probe_s = net.forward(probes)
        for row, (x,) in enumerate(PROBES):
            cmp.add(label, f"prediction at x = {x:+.1f} (x² = {x * x:.2f})", probe_s[row, 0], probe_t[row, 0])
        finals[label] = final_s
    best = min(finals, key=finals.get)
    cmp.result("final MSE (scratch)", finals)
    cmp.result("lower final MSE", best)
    return cmp.finish(args)


if __name__ == "__main__":
    run_main(main)
