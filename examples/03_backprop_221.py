"""Example 3: backpropagation through a 2-2-1 network (ReLU hidden, sigmoid out, BCE) and one SGD step.

x = [1.0, 0.5], y = 1; W1 = [[0.3, 0.7], [0.5, -0.2]], b1 = [0.1, -0.1]; W2 = [[0.6], [-0.4]],
b2 = [0.2]. Prints the loss, every gradient (hand-derived in scratch, autograd in torch), and
the weights after one step of SGD with lr 0.1 (scratch.optimizers.SGD vs torch.optim.SGD).

    .venv/bin/python examples/03_backprop_221.py [--json]
"""
from __future__ import annotations

import numpy as np
import torch

from _common import SINGLE_PASS_TOL, Comparison, make_parser, run_main
from scratch.network import Network, build_loss
from scratch.optimizers import make_optimizer
from scratch.spec import parse_spec
from torch_ref.model import build, build_loss as torch_build_loss, gradients_to_scratch, to_scratch
from torch_ref.optimizers import make_torch_optimizer

X = [[1.0, 0.5]]
Y = [[1.0]]
SPEC = {
    "layers": [
        {"inputs": 2, "units": 2, "activation": "relu", "weight": [[0.3, 0.7], [0.5, -0.2]], "bias": [0.1, -0.1]},
        {"units": 1, "activation": "sigmoid", "weight": [[0.6], [-0.4]], "bias": [0.2]},
    ],
    "loss": {"name": "bce"},
    "optimizer": {"name": "sgd", "lr": 0.1},
}


def scratch_side(spec) -> dict:
    net = Network.from_spec(spec)
    x, y = np.array(X), np.array(Y)
    prediction = net.forward(x)
    value, grad_x = net.loss_and_gradients(x, y, build_loss(spec))
    grads = {name: g.copy() for name, g in net.gradients().items()}
    make_optimizer(spec.optimizer, net.parameters()).step(net.gradients())
    return {"prediction": prediction, "loss": value, "grads": grads, "grad_x": grad_x,
            "params": {name: p.copy() for name, p in net.parameters().items()}}


def torch_side(spec) -> dict:
    model = build(spec)
    xt = torch.tensor(X, dtype=torch.float64, requires_grad=True)
    optimizer = make_torch_optimizer(spec.optimizer, model.parameters())
    optimizer.zero_grad()
    prediction = model(xt)
    value = torch_build_loss(spec)(prediction, torch.tensor(Y, dtype=torch.float64))
    value.backward()
    grads = gradients_to_scratch(model)
    optimizer.step()
    return {"prediction": prediction.detach().numpy(), "loss": value.item(), "grads": grads,
            "grad_x": xt.grad.numpy(), "params": to_scratch(model)}


def main(argv=None) -> dict:
    args = make_parser(__doc__).parse_args(argv)
    spec = parse_spec(SPEC)
    cmp = Comparison("03_backprop_221",
                     "Example 3: 2-2-1 backprop (ReLU hidden, sigmoid out, BCE), x = [1.0, 0.5], y = 1, "
                     "then one SGD step, lr 0.1", SINGLE_PASS_TOL)
    ours, theirs = scratch_side(spec), torch_side(spec)
    cmp.add("forward", "prediction a2", ours["prediction"][0, 0], theirs["prediction"][0, 0])
    cmp.add("forward", "loss", ours["loss"], theirs["loss"])
    for name in ours["grads"]:
        cmp.add("gradients", f"dL/d{name}", ours["grads"][name], theirs["grads"][name])
    cmp.add("gradients", "dL/dx", ours["grad_x"][0], theirs["grad_x"][0])
    for name in ours["params"]:
        cmp.add("after one SGD step (lr 0.1)", name, ours["params"][name], theirs["params"][name])
    return cmp.finish(args)


if __name__ == "__main__":
    run_main(main)
