"""Tests added for mutants of tools/mutate.py that the parity suite let through.

Each test names the hand-written code it guards and the mutants it kills:
- Adam's moment update through torch.lerp's second branch (weight = 1 − β₁ ≥ ½), never reached
  with the usual β₁ = 0.9: any slip in ``end − (end − start)·(1 − weight)`` went unseen;
- Armijo: the condition is ``≤`` (a trial landing exactly on the line is taken), the last
  allowed trial is l = max_backtracks, and ``step`` returns f(x) before the step;
- random search: a tie is not a fall, and ``step`` returns f(x) before the step.

With these, tools/mutate.py kills all but equivalent mutants (the README has the score and the
other survivors, in cce's overflow guard, Dense's fresh buffers and global_norm's empty case).
The 9 named here:
- Step.backward, return × −1, × 2, × ½ (3): the derivative is 0 everywhere; 0·k = 0 (−0.0 == 0).
- GELU.backward, clip bound 40 → 80 (2, the −40 and the 40): φ(z) = exp(−z²/2) is already 0 in
  float64 for |z| > 38.6, so clipping at 40 or 80 gives identical results for every input.
- BCEWithLogits.backward, x ≥ 0 → x > 0: the two branches meet at x = 0, where 1/(1 + e) and
  e/(1 + e) with e = exp(−0) = 1 are both exactly ½.
- _lerp, |w| < ½ → |w| ≤ ½ and the bound ½ → 1: both formulas of torch.lerp are the same
  number, start + w·(end − start) = end − (end − start)·(1 − w); the branch only changes the
  rounding (an ulp), far below every tolerance (and torch's vectorized lerp may fuse the
  multiply-add, so not even bit equality with torch could tell them apart).
- global_norm, g.reshape(−1) → g.reshape(−2): NumPy reads any negative size as "infer".
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import TRAJECTORY_TOL
from scratch.optimizers import make_optimizer
from scratch.spec import OptimizerSpec
from torch_ref import optimizers as torch_opt

STEPS = 60


def _grad(w, target, lib):
    """A gradient that changes size and sign along the run (so the moments do too)."""
    d = w - target
    return d * d * d + 0.3 * lib.sin(3 * d)


@pytest.mark.parametrize("name, beta1, wd", [("adam", 0.5, 0.0), ("adam", 0.3, 0.0), ("adamw", 0.3, 0.05),
                                             ("adam", 0.1, 0.02)])
def test_adam_with_beta1_at_most_half_matches_torch(name, beta1, wd):
    """β₁ ≤ ½ sends the first moment through torch.lerp's other formula, end − (end − start)·(1 − w)."""
    rng = np.random.default_rng(7)
    w0, target = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    fields = dict(name=name, lr=0.05, betas=(beta1, 0.9), eps=1e-8, weight_decay=wd)
    params = {"w": w0.copy()}
    opt = make_optimizer(OptimizerSpec(**fields), params)
    p = torch.tensor(w0, dtype=torch.float64, requires_grad=True)
    t_target = torch.tensor(target, dtype=torch.float64)
    topt = torch_opt.make_torch_optimizer(OptimizerSpec(**fields), [p])
    for step in range(STEPS):
        opt.step({"w": _grad(params["w"], target, np)})
        with torch.no_grad():
            p.grad = _grad(p.detach(), t_target, torch)
        topt.step()
        theirs = p.detach().numpy()
        err = np.linalg.norm(params["w"] - theirs) / np.linalg.norm(theirs)
        assert err <= TRAJECTORY_TOL, f"step {step + 1}: rel error {err:.3e}"
        m, tm = opt.state["w"]["exp_avg"], topt.state[p]["exp_avg"].numpy()
        assert np.linalg.norm(m - tm) <= TRAJECTORY_TOL * np.linalg.norm(tm)


def _one_step(backend, fields, x0, g, f):
    """One step on p = [x0] with gradient g and closure f(p): (returned value, p after, last_step)."""
    spec = OptimizerSpec(**fields)
    if backend == "scratch":
        params = {"p": np.array([x0])}
        opt = make_optimizer(spec, params)
        out = opt.step({"p": np.array([g])}, lambda: f(float(params["p"][0])))
        return out, float(params["p"][0]), opt.last_step
    p = torch.tensor([x0], dtype=torch.float64, requires_grad=True)
    p.grad = torch.tensor([g], dtype=torch.float64)
    opt = torch_opt.make_torch_optimizer(spec, [p])
    out = opt.step(lambda: f(float(p.detach()[0])))
    return out, float(p.detach()[0]), opt.last_step


def square(x: float) -> float:
    return x * x


@pytest.mark.parametrize("backend", ["scratch", "torch"])
def test_armijo_takes_a_trial_exactly_on_the_line(backend):
    # f = x², x = 1, g = 2, σ = ½, lr = ½: the first trial x = 0 gives f = 0 and the bound
    # f(x) − σ·t·‖g‖² = 1 − ½·½·4 = 0 exactly: f ≤ bound holds (with < it would back off to t = ¼).
    out, x, last = _one_step(backend, dict(name="armijo", lr=0.5, sigma=0.5), 1.0, 2.0, square)
    assert (x, last["t"], last["backtracks"], last["accepted"]) == (0.0, 0.5, 0, True)
    assert out == 1.0 and last["loss_before"] == 1.0 and last["loss_after"] == 0.0


@pytest.mark.parametrize("backend", ["scratch", "torch"])
@pytest.mark.parametrize("cap, accepted", [(1, True), (0, False)])
def test_armijo_tries_exactly_max_backtracks_plus_one_steps(backend, cap, accepted):
    # f = x², x = 1, g = 2, lr = 1: t = 1 overshoots (f = 1), t = ½ lands on 0. With a cap of one
    # backtrack that last allowed trial is taken; with a cap of 0 nothing is, and x stays put.
    out, x, last = _one_step(backend, dict(name="armijo", lr=1.0, max_backtracks=cap), 1.0, 2.0, square)
    assert out == 1.0
    assert last["accepted"] is accepted and last["backtracks"] == cap
    assert x == (0.0 if accepted else 1.0)


@pytest.mark.parametrize("backend", ["scratch", "torch"])
def test_armijo_returns_the_loss_before_the_step_when_capped(backend):
    out, x, last = _one_step(backend, dict(name="armijo", lr=100.0, max_backtracks=2), 3.0, 6.0, square)
    assert out == 9.0 and x == 3.0 and not last["accepted"]


@pytest.mark.parametrize("backend", ["scratch", "torch"])
def test_random_search_returns_the_loss_before_the_step(backend):
    out, _, last = _one_step(backend, dict(name="random_search", lr=0.5, seed=3), 2.0, 0.0, square)
    assert out == 4.0 == last["loss_before"]


@pytest.mark.parametrize("backend", ["scratch", "torch"])
def test_random_search_does_not_take_a_tie(backend):
    """A flat loss: every trial ties with f(x), and a tie is not a fall (f' < f), so x stays."""
    out, x, last = _one_step(backend, dict(name="random_search", lr=0.5, seed=3), 2.0, 0.0, lambda x: 1.0)
    assert x == 2.0 and last["accepted"] is False and out == 1.0
