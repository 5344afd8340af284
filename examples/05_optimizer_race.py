"""Example 5: an optimizer race on f(x, y) = x² + 3y² from (4, 3), 20 steps.

SGD (lr 0.1), SGD with momentum 0.9 (lr 0.1), Adam (lr 0.1, betas 0.9/0.999, eps 1e-8) and Armijo
backtracking line search (β = 0.5, σ = 1e-4) twice: with trial steps t = βˡ from 1, as the
rule is stated, and with t = 0.1·βˡ from the race's lr 0.1 (where the first trial always passes,
f being 6-smooth, so it retraces SGD: the table shows that too). Scratch runs
scratch.optimizers (make_optimizer on {"xy": array}) with the gradient (2x, 6y) written by hand;
torch runs torch.optim.SGD / torch.optim.Adam / torch_ref.optimizers.Armijo on one tensor with
autograd's gradient. Prints f after steps 1, 5, 10 and 20 and the final point.

    .venv/bin/python examples/05_optimizer_race.py [--json]
"""
from __future__ import annotations

import numpy as np
import torch

from _common import TRAJECTORY_TOL, Comparison, make_parser, run_main
from scratch.optimizers import make_optimizer
from scratch.spec import OptimizerSpec
from torch_ref.optimizers import make_torch_optimizer

START, STEPS, REPORT = (4.0, 3.0), 20, (1, 5, 10, 20)

RACERS = {
    "SGD": OptimizerSpec(name="sgd", lr=0.1),
    "SGD momentum 0.9": OptimizerSpec(name="sgd", lr=0.1, momentum=0.9),
    "Adam": OptimizerSpec(name="adam", lr=0.1, betas=(0.9, 0.999), eps=1e-8),
    "Armijo (t from 1)": OptimizerSpec(name="armijo", lr=1.0, sigma=1e-4, beta=0.5),
    "Armijo (t from lr 0.1)": OptimizerSpec(name="armijo", lr=0.1, sigma=1e-4, beta=0.5),
}
NEEDS_CLOSURE = ("armijo",)


def f(p):
    """x² + 3y², for a NumPy array or a torch tensor."""
    return p[0] ** 2 + 3 * p[1] ** 2


def grad_f(p: np.ndarray) -> np.ndarray:
    """∇f = (2x, 6y), by hand."""
    return np.array([2 * p[0], 6 * p[1]])


def race_scratch(opt_spec) -> tuple[list[float], np.ndarray]:
    params = {"xy": np.array(START, dtype=np.float64)}
    optimizer = make_optimizer(opt_spec, params)
    closure = (lambda: f(params["xy"])) if opt_spec.name in NEEDS_CLOSURE else None
    values = []
    for _ in range(STEPS):
        optimizer.step({"xy": grad_f(params["xy"])}, closure=closure)
        values.append(float(f(params["xy"])))
    return values, params["xy"].copy()


def race_torch(opt_spec) -> tuple[list[float], np.ndarray]:
    p = torch.tensor(START, dtype=torch.float64, requires_grad=True)
    optimizer = make_torch_optimizer(opt_spec, [p])

    def closure():
        with torch.no_grad():
            return f(p)

    values = []
    for _ in range(STEPS):
        optimizer.zero_grad()
        f(p).backward()
        optimizer.step(closure if opt_spec.name in NEEDS_CLOSURE else None)
        with torch.no_grad():
            values.append(f(p).item())
    return values, p.detach().numpy().copy()


def main(argv=None) -> dict:
    args = make_parser(__doc__).parse_args(argv)
    cmp = Comparison("05_optimizer_race",
                     f"Example 5: optimizer race on f(x, y) = x² + 3y² from {START}, {STEPS} steps "
                     f"(f{START} = {f(START):g})", TRAJECTORY_TOL,
                     notes=["SGD, momentum, Adam: lr 0.1; Armijo: t = 0.5^l (from 1, or from 0.1), sigma 1e-4"])
    finals = {}
    for label, opt_spec in RACERS.items():
        (ours, xy_s), (theirs, xy_t) = race_scratch(opt_spec), race_torch(opt_spec)
        for step in REPORT:
            cmp.add(label, f"f after step {step:2d}", ours[step - 1], theirs[step - 1])
        cmp.add(label, "final (x, y)", xy_s, xy_t)
        cmp.add(label, "f, every step", ours, theirs)
        finals[label] = ours[-1]
    cmp.result("ranking by f after 20 steps (scratch)", sorted(finals, key=finals.get))
    return cmp.finish(args)


if __name__ == "__main__":
    run_main(main)
