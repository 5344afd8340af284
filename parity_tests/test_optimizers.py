"""Optimizer parity: scratch's hand-written updates against torch.optim (and the torch twins of the
rules torch lacks), step by step.

- trajectories: one ``trajectory(backend, ...)`` helper drives both implementations for 100 steps of
  a small network on a fixed batch, in float64; every parameter's norm-relative error to torch must
  stay within the trajectory tolerance at EVERY step. Parametrized over the optimizer registry and
  configurations; the test id spells out the configuration (test_trajectory[adam_wd]).
- single steps on a 1-element parameter against values derived by hand (both backends).
- Armijo: its condition holds for the step taken, the step before it fails, the cap takes no step.
- clipping: the clipped gradients and the returned total norm are torch's.
- the optimizer race of the examples: any dict of float arrays (scratch), any tensor list (torch).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
import pytest
import torch

from scratch.policy import rel_error
from scratch.network import Network, build_loss as scratch_loss
from scratch.optimizers import (OPTIMIZERS, apply_clipping, clip_grad_norm, clip_grad_value,
                                global_norm, make_optimizer)
from scratch.spec import OptimizerSpec, Spec, SpecError
from torch_ref import optimizers as torch_opt
from torch_ref.model import build, build_loss as torch_loss, scratch_named_parameters, to_scratch

from conftest import CHECK_TOL, TRAJECTORY_TOL

GRAD_TOL = CHECK_TOL["float64"]       # clipped gradients and norms against torch's
# One step on a 1-element parameter against a value computed by hand: a few roundings apart at most.
HAND_TOL = 1e-14
STEPS = 100


# ----------------------------------------------------------------------------- the network


def network_spec(loss: str) -> Spec:
    """3-5-2: tanh hidden layer, linear output into softmax cross-entropy (class labels) or MSE."""
    return Spec.from_dict({
        "seed": 7,
        "dtype": "float64",
        "layers": [{"inputs": 3, "units": 5, "activation": "tanh"}, {"units": 2, "activation": "identity"}],
        "loss": {"name": loss},
    })


def fixed_batch(loss: str):
    rng = np.random.default_rng(11)
    x = rng.normal(size=(8, 3))
    y = rng.integers(0, 2, size=8) if loss == "softmax_cce" else rng.normal(size=(8, 2))
    return x, y


# name -> (loss, OptimizerSpec fields). Learning rates are big enough that the parameters travel far;
# clipping thresholds clip on most steps (the test asserts at least a quarter).
CONFIGS = {
    "sgd": ("softmax_cce", dict(name="sgd", lr=0.5)),
    "sgd_mse": ("mse", dict(name="sgd", lr=0.2)),
    "sgd_momentum": ("softmax_cce", dict(name="sgd", lr=0.2, momentum=0.9)),
    "sgd_nesterov": ("mse", dict(name="sgd", lr=0.1, momentum=0.9, nesterov=True)),
    "sgd_wd": ("softmax_cce", dict(name="sgd", lr=0.5, weight_decay=0.05)),
    "sgd_dampening": ("softmax_cce", dict(name="sgd", lr=0.3, momentum=0.8, dampening=0.4)),
    "sgd_momentum_wd_nesterov": ("mse", dict(name="sgd", lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)),
    "adam": ("softmax_cce", dict(name="adam", lr=0.05)),
    "adam_mse": ("mse", dict(name="adam", lr=0.02, betas=(0.8, 0.99), eps=1e-6)),
    "adam_wd": ("softmax_cce", dict(name="adam", lr=0.05, weight_decay=0.1)),
    "adamw": ("softmax_cce", dict(name="adamw", lr=0.05, weight_decay=0.1)),
    "adamw_mse": ("mse", dict(name="adamw", lr=0.02, weight_decay=0.5)),
    "armijo": ("softmax_cce", dict(name="armijo", lr=8.0)),
    "armijo_mse": ("mse", dict(name="armijo", lr=4.0, sigma=0.3, beta=0.7)),
    "random_search": ("softmax_cce", dict(name="random_search", lr=0.1, seed=3)),
    "random_search_mse": ("mse", dict(name="random_search", lr=0.05, seed=5)),
    "sgd_clip_norm": ("softmax_cce", dict(name="sgd", lr=0.5, clip_norm=0.06)),
    "sgd_momentum_clip_norm": ("mse", dict(name="sgd", lr=0.1, momentum=0.9, clip_norm=0.05)),
    "sgd_clip_value": ("softmax_cce", dict(name="sgd", lr=0.5, clip_value=0.03)),
    "adam_clip_norm": ("mse", dict(name="adam", lr=0.05, clip_norm=0.05)),
    "adam_clip_value": ("softmax_cce", dict(name="adam", lr=0.05, clip_value=0.005)),
}


@dataclass
class Trajectory:
    params: list[dict] = field(default_factory=list)       # after each step, scratch layout
    loss: list[float] = field(default_factory=list)        # before each step
    grad_norm: list[float] = field(default_factory=list)   # global norm before clipping
    grad_max: list[float] = field(default_factory=list)    # largest |g| element before clipping
    last_step: list[dict] = field(default_factory=list)    # armijo / random search step records


def trajectory(backend: str, opt_spec: OptimizerSpec, loss: str, steps: int = STEPS) -> Trajectory:
    """``steps`` optimizer steps of the spec's network on the fixed batch, on one backend:
    forward, loss, backward, clipping (as the spec asks), step(closure)."""
    spec = network_spec(loss)
    x, y = fixed_batch(loss)
    out = Trajectory()
    if backend == "scratch":
        net, loss_fn = Network.from_spec(spec), scratch_loss(spec)
        opt = make_optimizer(opt_spec, net.parameters())

        def closure():
            return loss_fn.forward(net.forward(x), y)

        for _ in range(steps):
            value, _ = net.loss_and_gradients(x, y, loss_fn)
            grads = net.gradients()
            out.loss.append(float(value))
            out.grad_max.append(max(float(np.abs(g).max()) for g in grads.values()))
            out.grad_norm.append(apply_clipping(opt_spec, grads))
            opt.step(grads, closure)
            out.params.append({k: p.copy() for k, p in net.parameters().items()})
            out.last_step.append(dict(getattr(opt, "last_step", {})))
    else:
        model, loss_fn = build(spec), torch_loss(spec)
        xt = torch.tensor(x)
        yt = torch.tensor(y)
        opt = torch_opt.make_torch_optimizer(opt_spec, model.parameters())

        def closure():
            return loss_fn(model(xt), yt)

        for _ in range(steps):
            opt.zero_grad()
            value = loss_fn(model(xt), yt)
            value.backward()
            out.loss.append(float(value.detach()))
            out.grad_max.append(max(float(p.grad.abs().max()) for p in model.parameters()))
            out.grad_norm.append(torch_opt.apply_clipping(opt_spec, model.parameters()))
            opt.step(closure)
            out.params.append(to_scratch(model))
            out.last_step.append(dict(getattr(opt, "last_step", {})))
    return out


def largest_trajectory_error(ours: Trajectory, theirs: Trajectory) -> tuple[float, int, str]:
    worst = (0.0, 0, "")
    for k, (a, b) in enumerate(zip(ours.params, theirs.params, strict=True)):
        assert a.keys() == b.keys()
        for name in b:
            err = rel_error(a[name], b[name])
            if not err <= worst[0]:
                worst = (err, k + 1, name)
    return worst


# ---------------------------------------------------------------------------- trajectories


def test_every_registered_optimizer_has_trajectory_configurations():
    assert {fields["name"] for _, fields in CONFIGS.values()} == set(OPTIMIZERS)


@pytest.mark.parametrize("config", list(CONFIGS))
def test_trajectory(config):
    loss, fields = CONFIGS[config]
    opt_spec = OptimizerSpec(**fields)
    ours, theirs = trajectory("scratch", opt_spec, loss), trajectory("torch", opt_spec, loss)

    for k, (a, b) in enumerate(zip(ours.params, theirs.params, strict=True)):
        for name in b:
            err = rel_error(a[name], b[name])
            assert err <= TRAJECTORY_TOL, f"{config}: step {k + 1}, {name}: rel error {err:.3g}"
    np.testing.assert_allclose(ours.loss, theirs.loss, rtol=TRAJECTORY_TOL, atol=0)

    # The run went somewhere: parameters moved and the loss fell.
    start = network_spec(loss)
    first = Network.from_spec(start).parameters()
    travel = max(rel_error(ours.params[-1][n], first[n]) for n in first)
    assert travel > 0.05, f"{config}: parameters barely moved ({travel:.3g})"
    assert ours.loss[-1] < ours.loss[0]

    if opt_spec.clip_norm is not None:
        clipped = [n > opt_spec.clip_norm for n in theirs.grad_norm]
        assert sum(clipped) >= STEPS // 4, f"{config}: clip_norm clipped only {sum(clipped)} steps"
        np.testing.assert_allclose(ours.grad_norm, theirs.grad_norm, rtol=TRAJECTORY_TOL, atol=0)
    if opt_spec.clip_value is not None:
        clipped = [m > opt_spec.clip_value for m in theirs.grad_max]
        assert sum(clipped) >= STEPS // 4, f"{config}: clip_value clipped only {sum(clipped)} steps"
    if opt_spec.name == "armijo":
        assert [s["backtracks"] for s in ours.last_step] == [s["backtracks"] for s in theirs.last_step]
        assert any(s["backtracks"] > 0 for s in ours.last_step), f"{config}: lr never backtracked"
        assert all(s["accepted"] for s in ours.last_step)
    if opt_spec.name == "random_search":
        kept = [s["accepted"] for s in ours.last_step]
        assert kept == [s["accepted"] for s in theirs.last_step]
        assert 0 < sum(kept) < STEPS, f"{config}: kept {sum(kept)} of {STEPS} perturbations"


# ------------------------------------------------------------ one step on one element, by hand


def steps_on_one_element(backend: str, fields: dict, p0: float, grads: list[float], f=None) -> list[float]:
    """Steps of an optimizer on p = [p0] fed the given gradients (closure: f(p)); p after each."""
    opt_spec = OptimizerSpec(**fields)
    out = []
    if backend == "scratch":
        params = {"p": np.array([p0])}
        opt = make_optimizer(opt_spec, params)
        for g in grads:
            opt.step({"p": np.array([g])}, (lambda: f(params["p"][0])) if f else None)
            out.append(float(params["p"][0]))
    else:
        p = torch.tensor([p0], dtype=torch.float64, requires_grad=True)
        opt = torch_opt.make_torch_optimizer(opt_spec, [p])
        for g in grads:
            p.grad = torch.tensor([g], dtype=torch.float64)
            opt.step((lambda: f(float(p.detach()[0]))) if f else None)
            out.append(float(p.detach()[0]))
    return out


# p0 = 2, lr = 0.1, gradients 0.5 then 0.25. Worked by hand:
#   sgd:                 2 − 0.05 = 1.95;  1.95 − 0.025 = 1.925
#   momentum 0.9:        v = 0.5 → 1.95;  v = 0.9·0.5 + 0.25 = 0.7 → 1.95 − 0.07 = 1.88
#   + dampening 0.5:     v = 0.5 (the first gradient, undampened) → 1.95;  v = 0.45 + 0.125 = 0.575 → 1.8925
#   nesterov 0.9:        v = 0.5, d = 0.5 + 0.45 = 0.95 → 1.905;  v = 0.7, d = 0.25 + 0.63 = 0.88 → 1.817
#   weight decay 0.1:    g = 0.5 + 0.2 = 0.7 → 1.93;  g = 0.25 + 0.193 = 0.443 → 1.8857
#   adam (0.9, 0.999, 1e-8): m̂₁ = g₁, v̂₁ = g₁² → 2 − 0.1·0.5/(0.5 + 1e-8);
#       m₂ = 0.9·0.05 + 0.1·0.25 = 0.07, v₂ = 0.999·0.00025 + 0.001·0.0625 = 0.00031225,
#       m̂₂ = 0.07/(1 − 0.81), v̂₂ = 0.00031225/(1 − 0.998001)
#   adam, weight decay 0.1 (coupled): g = 0.7 → 2 − 0.1·0.7/(0.7 + 1e-8)
#   adamw, weight decay 0.1: p = 2·(1 − 0.01) = 1.98, then − 0.1·0.5/(0.5 + 1e-8)
_P1 = 2 - 0.1 * 0.5 / (0.5 + 1e-8)
HAND = {
    "sgd": (dict(name="sgd", lr=0.1), [1.95, 1.925]),
    "sgd_momentum": (dict(name="sgd", lr=0.1, momentum=0.9), [1.95, 1.88]),
    "sgd_dampening": (dict(name="sgd", lr=0.1, momentum=0.9, dampening=0.5), [1.95, 1.8925]),
    "sgd_nesterov": (dict(name="sgd", lr=0.1, momentum=0.9, nesterov=True), [1.905, 1.817]),
    "sgd_wd": (dict(name="sgd", lr=0.1, weight_decay=0.1), [1.93, 1.8857]),
    "adam": (dict(name="adam", lr=0.1),
             [_P1, _P1 - 0.1 * (0.07 / 0.19) / (math.sqrt(0.00031225 / 0.001999) + 1e-8)]),
    "adam_wd": (dict(name="adam", lr=0.1, weight_decay=0.1), [2 - 0.1 * 0.7 / (0.7 + 1e-8)]),
    "adamw": (dict(name="adamw", lr=0.1, weight_decay=0.1), [1.98 - 0.1 * 0.5 / (0.5 + 1e-8)]),
}


@pytest.mark.parametrize("backend", ["scratch", "torch"])
@pytest.mark.parametrize("case", list(HAND))
def test_steps_by_hand(case, backend):
    fields, expected = HAND[case]
    got = steps_on_one_element(backend, fields, 2.0, [0.5, 0.25][:len(expected)])
    assert got == pytest.approx(expected, rel=HAND_TOL, abs=0)


def square(x: float) -> float:
    return x * x


@pytest.mark.parametrize("backend", ["scratch", "torch"])
def test_armijo_step_by_hand(backend):
    # f = x², x = 1, g = 2, σ = 1e-4, β = 0.5, lr = 1: t = 1 gives x = −1, f = 1 > 1 − 4e-4: back off;
    # t = 0.5 gives x = 0, f = 0 ≤ 1 − 2e-4: taken after one backtrack.
    assert steps_on_one_element(backend, dict(name="armijo", lr=1.0), 1.0, [2.0], square) == [0.0]


@pytest.mark.parametrize("backend", ["scratch", "torch"])
def test_armijo_backtracks_when_lr_is_too_big(backend):
    # lr = 100: t = 100, 50, ..., 1.5625 all overshoot (at t = 1.5625, x = −2.125, f = 4.52 > 1);
    # t = 0.78125 gives x = 1 − 1.5625 = −0.5625, f = 0.3164 ≤ 1 − 1e-4·0.78125·4: seven backtracks.
    assert steps_on_one_element(backend, dict(name="armijo", lr=100.0), 1.0, [2.0], square) == [-0.5625]


@pytest.mark.parametrize("backend", ["scratch", "torch"])
def test_armijo_cap_takes_no_step(backend):
    # lr = 100 with at most 3 backtracks: t = 100, 50, 25, 12.5 all fail: the parameter stays put.
    fields = dict(name="armijo", lr=100.0, max_backtracks=3)
    assert steps_on_one_element(backend, fields, 1.0, [2.0, 2.0], square) == [1.0, 1.0]


def test_armijo_cap_is_reported_alike():
    params = {"p": np.array([1.0])}
    opt = make_optimizer(OptimizerSpec(name="armijo", lr=100.0, max_backtracks=3), params)
    opt.step({"p": np.array([2.0])}, lambda: square(params["p"][0]))
    p = torch.tensor([1.0], dtype=torch.float64, requires_grad=True)
    p.grad = torch.tensor([2.0], dtype=torch.float64)
    topt = torch_opt.make_torch_optimizer(OptimizerSpec(name="armijo", lr=100.0, max_backtracks=3), [p])
    topt.step(lambda: square(float(p.detach()[0])))
    expected = dict(t=0.0, backtracks=3, accepted=False, loss_before=1.0, loss_after=1.0)
    assert opt.last_step == expected
    assert topt.last_step == expected


def test_armijo_takes_the_largest_step_that_satisfies_its_condition():
    """On the network: at every step the accepted t satisfies the Armijo condition and t/β (the trial
    before it, when there was one) does not."""
    loss = "softmax_cce"
    spec, (x, y) = network_spec(loss), fixed_batch(loss)
    sigma, beta = 1e-4, 0.5
    net, loss_fn = Network.from_spec(spec), scratch_loss(spec)
    params = net.parameters()
    opt = make_optimizer(OptimizerSpec(name="armijo", lr=16.0, sigma=sigma, beta=beta), params)

    def f():
        return float(loss_fn.forward(net.forward(x), y))

    def f_at(x0, grads, t):
        for name, p in params.items():
            p[...] = x0[name] - t * grads[name]
        return f()

    backtracked = 0
    for _ in range(30):
        net.loss_and_gradients(x, y, loss_fn)
        grads = {k: g.copy() for k, g in net.gradients().items()}
        x0 = {k: p.copy() for k, p in params.items()}
        f0 = f()
        sq = sum(float(np.sum(g * g)) for g in grads.values())
        opt.step(grads, f)
        t, after = opt.last_step["t"], {k: p.copy() for k, p in params.items()}
        assert opt.last_step["accepted"]
        assert f_at(x0, grads, t) <= f0 - sigma * t * sq
        if opt.last_step["backtracks"] > 0:
            backtracked += 1
            assert f_at(x0, grads, t / beta) > f0 - sigma * (t / beta) * sq
        else:
            assert t == 16.0
        for name, p in params.items():
            p[...] = after[name]
    assert backtracked > 0


# ---------------------------------------------------------------------------- random search


@pytest.mark.parametrize("backend", ["scratch", "torch"])
def test_random_search_keeps_only_a_fall(backend):
    # x = 1, f = x², lr = 0.5: x' = 1 + 0.5·z with z the seeded generator's draws; kept iff x'² < x².
    zs = np.random.default_rng(4).standard_normal(6)
    expected, x = [], 1.0
    for z in zs:
        trial = x + 0.5 * z
        x = trial if trial * trial < x * x else x
        expected.append(x)
    got = steps_on_one_element(backend, dict(name="random_search", lr=0.5, seed=4), 1.0, [0.0] * 6, square)
    assert got == expected
    assert len(set(got)) > 1 and any(a == b for a, b in zip(got, got[1:]))  # some kept, some not


@pytest.mark.parametrize("backend", ["scratch", "torch"])
def test_random_search_stays_at_a_minimum(backend):
    got = steps_on_one_element(backend, dict(name="random_search", lr=0.5, seed=1), 0.0, [0.0] * 10, square)
    assert got == [0.0] * 10


def test_random_search_draws_the_same_perturbation_for_a_linear_weight():
    """torch keeps nn.Linear weights as (out, in); the draw follows scratch's (in, out) layout."""
    spec = network_spec("mse")
    net, model = Network.from_spec(spec), build(spec)
    opt_spec = OptimizerSpec(name="random_search", lr=0.3, seed=9)
    opt = make_optimizer(opt_spec, net.parameters())
    topt = torch_opt.make_torch_optimizer(opt_spec, model.parameters())
    falls, falls_t = iter([1.0, 0.0]), iter([1.0, 0.0])    # f(x) = 1, f(x') = 0: the step is kept
    opt.step(None, lambda: next(falls))
    topt.step(lambda: next(falls_t))
    before, after = Network.from_spec(spec).parameters(), to_scratch(model)
    for name, p in net.parameters().items():
        assert not np.allclose(p, before[name])
        np.testing.assert_array_equal(p, after[name])


# ------------------------------------------------------------------------------- clipping


def _torch_grads(grads: dict) -> list[torch.Tensor]:
    params = []
    for g in grads.values():
        p = torch.zeros(g.shape, dtype=torch.float64, requires_grad=True)
        p.grad = torch.tensor(g)
        params.append(p)
    return params


def test_clip_grad_norm_by_hand():
    # ‖(3, 4)‖ = 5 > 1: both scale by 1/(5 + 1e-6).
    grads = {"a": np.array([3.0]), "b": np.array([4.0])}
    assert clip_grad_norm(grads, 1.0) == 5.0
    assert grads["a"][0] == pytest.approx(3 / 5.000001, rel=HAND_TOL)
    assert grads["b"][0] == pytest.approx(4 / 5.000001, rel=HAND_TOL)
    grads = {"a": np.array([3.0]), "b": np.array([4.0])}
    assert clip_grad_norm(grads, 10.0) == 5.0                  # under the threshold: untouched
    assert grads["a"][0] == 3.0 and grads["b"][0] == 4.0


def test_clip_grad_value_by_hand():
    grads = {"a": np.array([-3.0, 0.5, 2.0])}
    assert clip_grad_value(grads, 1.0) == pytest.approx(math.sqrt(13.25), rel=HAND_TOL)
    np.testing.assert_array_equal(grads["a"], [-1.0, 0.5, 1.0])


@pytest.mark.parametrize("max_norm", [0.1, 1.0, 3.0, 100.0])
def test_clip_grad_norm_matches_torch(max_norm):
    rng = np.random.default_rng(2)
    grads = {"w": rng.normal(size=(3, 5)), "b": rng.normal(size=5), "v": rng.normal(size=(5, 2))}
    params = _torch_grads(grads)
    theirs = float(torch.nn.utils.clip_grad_norm_(params, max_norm))
    ours = clip_grad_norm(grads, max_norm)
    assert rel_error(ours, theirs) <= GRAD_TOL
    for g, p in zip(grads.values(), params):
        assert rel_error(g, p.grad.numpy()) <= GRAD_TOL
    assert (theirs > max_norm) == (global_norm(grads) < theirs)  # clipped exactly when above


@pytest.mark.parametrize("value", [0.05, 0.5, 10.0])
def test_clip_grad_value_matches_torch(value):
    rng = np.random.default_rng(3)
    grads = {"w": rng.normal(size=(3, 5)), "b": rng.normal(size=5)}
    params = _torch_grads(grads)
    total = float(torch.nn.utils.get_total_norm([p.grad for p in params]))
    torch.nn.utils.clip_grad_value_(params, value)
    assert rel_error(clip_grad_value(grads, value), total) <= GRAD_TOL
    for g, p in zip(grads.values(), params):
        np.testing.assert_array_equal(g, p.grad.numpy())


def test_apply_clipping_matches_torch_on_network_gradients():
    loss = "softmax_cce"
    spec, (x, y) = network_spec(loss), fixed_batch(loss)
    net, loss_fn = Network.from_spec(spec), scratch_loss(spec)
    net.loss_and_gradients(x, y, loss_fn)
    model = build(spec)
    torch_loss(spec)(model(torch.tensor(x)), torch.tensor(y)).backward()
    opt_spec = OptimizerSpec(clip_norm=0.2, clip_value=0.03)
    grads = net.gradients()
    ours, theirs = apply_clipping(opt_spec, grads), torch_opt.apply_clipping(opt_spec, model.parameters())
    assert theirs > 0.2 and rel_error(ours, theirs) <= GRAD_TOL
    tgrads = {k: (t.grad.T if k.endswith("weight") else t.grad).numpy()
              for k, t in scratch_named_parameters(model).items()}
    assert max(float(np.abs(g).max()) for g in tgrads.values()) == 0.03
    for name, g in grads.items():
        assert rel_error(g, tgrads[name]) <= GRAD_TOL


# ------------------------------------------------------------ the optimizer race of the examples


RACE = {
    "sgd": dict(name="sgd", lr=0.1),
    "sgd_momentum": dict(name="sgd", lr=0.1, momentum=0.9),
    "adam": dict(name="adam", lr=0.1, betas=(0.9, 0.999), eps=1e-8),
    "adamw": dict(name="adamw", lr=0.1, weight_decay=0.01),
    "armijo": dict(name="armijo", lr=0.1),
    "random_search": dict(name="random_search", lr=0.1, seed=0),
}


@pytest.mark.parametrize("case", list(RACE))
def test_race_on_a_plain_dict_matches_torch_on_a_tensor_list(case):
    """f(x, y) = x² + 3y² from (4, 3), 20 steps: scratch over {"xy": array}, torch over [tensor]."""
    opt_spec = OptimizerSpec(**RACE[case])
    params = {"xy": np.array([4.0, 3.0])}
    opt = make_optimizer(opt_spec, params)

    def f_np():
        x, y = params["xy"]
        return x * x + 3 * y * y

    p = torch.tensor([4.0, 3.0], dtype=torch.float64, requires_grad=True)
    topt = torch_opt.make_torch_optimizer(opt_spec, [p])

    def f_t():
        return p[0] ** 2 + 3 * p[1] ** 2

    for k in range(20):
        x, y = params["xy"]
        opt.step({"xy": np.array([2 * x, 6 * y])}, f_np)
        topt.zero_grad()
        f_t().backward()
        topt.step(f_t)
        assert rel_error(params["xy"], p.detach().numpy()) <= TRAJECTORY_TOL, f"{case}: step {k + 1}"
    assert f_np() < 4.0 ** 2 + 3 * 3.0 ** 2


# ------------------------------------------------------------------------ registry and spec


def test_optimizer_names_are_the_same_on_both_sides():
    assert set(OPTIMIZERS) == set(torch_opt.TORCH_OPTIMIZERS)


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_spec_accepts_every_registered_optimizer(name):
    spec = Spec.from_dict({"layers": [{"inputs": 2, "units": 1}], "optimizer": {"name": name, "lr": 0.3}})
    assert spec.optimizer.name == name


def test_spec_rejects_an_unknown_optimizer():
    with pytest.raises(SpecError, match=r"optimizer\.name"):
        Spec.from_dict({"layers": [{"inputs": 2, "units": 1}], "optimizer": {"name": "lbfgs"}})


@pytest.mark.parametrize("make", ["scratch", "torch"])
@pytest.mark.parametrize("name, key, value", [
    ("adam", "momentum", 0.9), ("adamw", "nesterov", True), ("sgd", "betas", (0.5, 0.5)),
    ("armijo", "weight_decay", 0.1), ("random_search", "sigma", 0.2), ("sgd", "seed", 1),
])
def test_a_field_the_optimizer_does_not_use_is_an_error(make, name, key, value):
    opt_spec = replace(OptimizerSpec(name=name), **{key: value})
    with pytest.raises(SpecError, match=rf"optimizer\.{key}"):
        if make == "scratch":
            make_optimizer(opt_spec, {"p": np.zeros(2)})
        else:
            torch_opt.make_torch_optimizer(opt_spec, [torch.zeros(2, requires_grad=True)])


def test_scratch_optimizers_refuse_integer_arrays():
    with pytest.raises(TypeError, match="float array"):
        make_optimizer(OptimizerSpec(name="sgd"), {"xy": np.array([4, 3])})
