"""Example 4: XOR with a 2-4-1 sigmoid network, full-batch gradient descent (lr 0.5) on the MSE.

Initial weights as the classic tutorial draws them,
    np.random.seed(42); W1 = np.random.randn(2, 4) * 0.5; W2 = np.random.randn(4, 1) * 0.5
(drawn here from np.random.RandomState(42), the same generator without touching NumPy's global
state), zero biases, written into the spec so both implementations start from these values.
10,000 epochs of one full batch each, trained by scratch.training.train and by
torch_ref.training.train (torch.optim.SGD, nn.MSELoss, autograd). Prints the loss every 2,000
epochs, the whole per-step loss history's agreement, and the final four predictions.

    .venv/bin/python examples/04_xor.py [--json]
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

EPOCHS, EVERY = 10_000, 2_000


def xor_spec():
    rng = np.random.RandomState(42)  # = np.random.seed(42) followed by np.random.randn
    w1 = rng.randn(2, 4) * 0.5
    w2 = rng.randn(4, 1) * 0.5
    return parse_spec({
        "layers": [
            {"inputs": 2, "units": 4, "activation": "sigmoid", "weight": w1.tolist(), "bias": [0.0] * 4},
            {"units": 1, "activation": "sigmoid", "weight": w2.tolist(), "bias": [0.0]},
        ],
        "loss": {"name": "mse"},
        "optimizer": {"name": "sgd", "lr": 0.5},
        "data": {"name": "xor"},
        "train": {"epochs": EPOCHS},  # batch_size unset: the full batch of four rows
    })


def main(argv=None) -> dict:
    args = make_parser(__doc__).parse_args(argv)
    spec = xor_spec()
    data = load_dataset(spec)
    x, y = data.x_train, data.y_train
    cmp = Comparison("04_xor", f"Example 4: XOR, 2-4-1 sigmoid, full-batch gradient descent lr 0.5 on MSE, "
                               f"{EPOCHS:,} epochs", TRAINING_TOL,
                     notes=["loss after k epochs = the loss of the full batch before update k + 1"])
    ours = scratch_train(spec, data, progress=False)
    with torch_threads(1):
        theirs = torch_train(spec, data, progress=False)

    net = Network.from_spec(spec, params=ours.params)
    model = build(spec, params=theirs.params)
    with torch.no_grad():
        pred_t = model(torch.as_tensor(x)).numpy()
        final_t = torch_build_loss(spec)(torch.as_tensor(pred_t), torch.as_tensor(y)).item()
    pred_s = net.forward(x)
    final_s = float(build_loss(spec).forward(pred_s, y))

    for epoch in range(0, EPOCHS, EVERY):
        cmp.add("MSE loss", f"after {epoch:>6,} epochs", ours.history.epoch_loss[epoch],
                theirs.history.epoch_loss[epoch])
    cmp.add("MSE loss", f"after {EPOCHS:>6,} epochs", final_s, final_t)
    cmp.add("MSE loss", "every step's loss", ours.history.step_loss, theirs.history.step_loss)
    for row, (inputs, target) in enumerate(zip(x, y)):
        cmp.add("final predictions", f"xor({inputs[0]:.0f}, {inputs[1]:.0f}) -> {target[0]:.0f}",
                pred_s[row, 0], pred_t[row, 0])
    for name in ours.params:
        cmp.add("final parameters", name, ours.params[name], theirs.params[name])
    for side, pred in (("scratch", pred_s), ("torch", pred_t)):
        cmp.result(f"{side}: all four predictions on the correct side of 0.5",
                   bool(np.all((pred > 0.5) == (y > 0.5))))
    cmp.result("initial W1 (seed 42)", spec.layers[0].weight)
    cmp.result("initial W2 (seed 42)", spec.layers[1].weight)
    cmp.result("training seconds (scratch, torch)", [round(ours.seconds, 2), round(theirs.seconds, 2)])
    return cmp.finish(args)


if __name__ == "__main__":
    run_main(main)
