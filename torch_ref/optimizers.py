"""The torch twins of scratch's optimizers: torch.optim where torch has one.

- sgd -> torch.optim.SGD, adam -> torch.optim.Adam, adamw -> torch.optim.AdamW, configured from the
  spec; torch's own update code is what the scratch formulas are checked against.
- armijo, random_search: torch has neither, so they are torch.optim.Optimizer subclasses here that
  apply the same rule as scratch to torch autograd gradients (p.grad).
- clipping: torch.nn.utils.clip_grad_norm_ / clip_grad_value_ themselves (apply_clipping).

Use as torch.optim: ``opt.zero_grad(); loss.backward(); apply_clipping(spec, params); opt.step(closure)``;
``closure()`` returns the loss at the current parameters without calling backward (line searches,
random search; torch's own optimizers call it once and return its value).
"""
from __future__ import annotations

import numpy as np
import torch

from scratch.errors import SpecError
from scratch.optimizers import check_optimizer_fields

def _single_group(opt: torch.optim.Optimizer) -> tuple[dict, list[torch.Tensor]]:
    if len(opt.param_groups) != 1:
        raise ValueError(f"{type(opt).__name__}: one parameter group only (the search moves all parameters together)")
    group = opt.param_groups[0]
    return group, list(group["params"])


class Armijo(torch.optim.Optimizer):
    """Gradient descent with Armijo backtracking line search, on torch autograd gradients.

    With g = p.grad for all parameters (None counts as 0) and d = −g, try t = lr·βˡ for
    l = 0, 1, ..., max_backtracks and take the first t with
        f(x + t·d) ≤ f(x) − σ·t·‖g‖²          (the Armijo condition, ∇fᵀd = −‖g‖²)
    then x ← x + t·d; f is ``closure()``, each trial computed from x. When no trial passes, no
    step is taken (parameters restored exactly; ``last_step["accepted"]`` is False).
    torch has no line-search SGD: this is the same rule written with torch tensors, the twin of
    scratch.optimizers.Armijo, so the two trajectories can be compared.
    ``step(closure)`` returns f(x), the loss before the step.
    """

    def __init__(self, params, lr: float = 1.0, sigma: float = 1e-4, beta: float = 0.5,
                 max_backtracks: int = 30):
        if not (0 < sigma < 1 and 0 < beta < 1):
            raise ValueError("armijo: sigma and beta must lie in (0, 1)")
        if max_backtracks < 0:
            raise ValueError("armijo: max_backtracks must be >= 0")
        super().__init__(params, dict(lr=lr, sigma=sigma, beta=beta, max_backtracks=max_backtracks))
        self.last_step: dict = {}

    @torch.no_grad()
    def step(self, closure=None):
        if closure is None:
            raise ValueError("armijo: step needs closure() returning the loss at the current parameters")
        group, params = _single_group(self)
        # Copies: a closure that runs backward cannot change the direction under the search.
        grads = [p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p) for p in params]
        x0 = [p.detach().clone() for p in params]
        f0 = float(closure())
        slope = -sum(float(torch.sum(g * g)) for g in grads)
        lr, sigma, beta = group["lr"], group["sigma"], group["beta"]
        for l in range(group["max_backtracks"] + 1):
            t = lr * beta ** l
            for p, x, g in zip(params, x0, grads):
                p.copy_(x - t * g)
            f = float(closure())
            if f <= f0 + sigma * t * slope:
                self.last_step = dict(t=t, backtracks=l, accepted=True, loss_before=f0, loss_after=f)
                return f0
        for p, x in zip(params, x0):
            p.copy_(x)
        self.last_step = dict(t=0.0, backtracks=group["max_backtracks"], accepted=False,
                              loss_before=f0, loss_after=f0)
        return f0


class RandomSearch(torch.optim.Optimizer):
    """Random-search baseline: x' = x + lr·z with z ~ N(0, 1); keep x' if f(x') < f(x).

    z is drawn with NumPy, ``np.random.default_rng(seed)``, in parameter order, so that it is the
    very draw scratch.optimizers.RandomSearch makes (a baseline, not maths under test: shared draws
    make the trajectories comparable). Draws follow scratch's layout: with ``linear_layout=True``
    (the default) a 2-D tensor is taken to be an nn.Linear weight stored (out, in), so z is drawn
    (in, out) and transposed; pass False for tensors that are not, or a list of one flag per
    parameter (torch_ref.model's ``transposed`` names, for a network with other 2-D weights).
    ``step(closure)`` returns f(x).
    """

    def __init__(self, params, lr: float = 0.1, seed: int = 0, linear_layout: bool | list = True):
        super().__init__(params, dict(lr=lr))
        self.rng = np.random.default_rng(seed)
        self.linear_layout = linear_layout
        self.last_step: dict = {}

    @torch.no_grad()
    def step(self, closure=None):
        if closure is None:
            raise ValueError("random_search: step needs closure() returning the loss at the current parameters")
        group, params = _single_group(self)
        x0 = [p.detach().clone() for p in params]
        f0 = float(closure())
        flags = self.linear_layout if isinstance(self.linear_layout, list) else [self.linear_layout] * len(params)
        for p, linear in zip(params, flags):
            transposed = linear and p.dim() == 2
            shape = tuple(p.shape)[::-1] if transposed else tuple(p.shape)
            noise = group["lr"] * self.rng.standard_normal(shape)
            noise = torch.from_numpy(np.ascontiguousarray(noise.T if transposed else noise))
            p.add_(noise.to(dtype=p.dtype, device=p.device))
        f = float(closure())
        accepted = f < f0
        if not accepted:
            for p, x in zip(params, x0):
                p.copy_(x)
        self.last_step = dict(accepted=accepted, loss_before=f0, loss_after=f if accepted else f0)
        return f0


TORCH_OPTIMIZERS = {
    "sgd": lambda s, params, seed: torch.optim.SGD(
        params, lr=s.lr, momentum=s.momentum, dampening=s.dampening, weight_decay=s.weight_decay,
        nesterov=s.nesterov),
    "adam": lambda s, params, seed: torch.optim.Adam(
        params, lr=s.lr, betas=tuple(s.betas), eps=s.eps, weight_decay=s.weight_decay),
    "adamw": lambda s, params, seed: torch.optim.AdamW(
        params, lr=s.lr, betas=tuple(s.betas), eps=s.eps, weight_decay=s.weight_decay),
    "armijo": lambda s, params, seed: Armijo(
        params, lr=s.lr, sigma=s.sigma, beta=s.beta, max_backtracks=s.max_backtracks),
    "random_search": lambda s, params, seed, layout=True: RandomSearch(
        params, lr=s.lr, seed=s.seed if s.seed is not None else (0 if seed is None else seed), linear_layout=layout),
}


def make_torch_optimizer(opt_spec, params, seed: int | None = None,
                         transposed: list[bool] | None = None) -> torch.optim.Optimizer:
    """The torch optimizer an OptimizerSpec names, over ``params`` (an iterable of tensors).

    Use as torch.optim: ``opt.zero_grad(); loss.backward(); opt.step(closure)``; ``closure()``
    returns the loss without calling backward (line searches, random search).
    ``seed`` (the spec's top-level seed) seeds random search when the optimizer table sets none.
    ``transposed``: which params are nn.Linear weights (random search draws in scratch's layout);
    None: every 2-D tensor.
    """
    if opt_spec.name not in TORCH_OPTIMIZERS:
        raise SpecError("optimizer.name",
                        f"unknown {opt_spec.name!r}; expected one of {', '.join(TORCH_OPTIMIZERS)}")
    check_optimizer_fields(opt_spec)
    if opt_spec.name == "random_search" and transposed is not None:
        return TORCH_OPTIMIZERS[opt_spec.name](opt_spec, params, seed, list(transposed))
    return TORCH_OPTIMIZERS[opt_spec.name](opt_spec, params, seed)


def apply_clipping(opt_spec, params, total=None):
    """Clip the parameters' .grad in place as the spec asks, with torch's own functions
    (clip_grad_norm_ to opt_spec.clip_norm, then clip_grad_value_ to opt_spec.clip_value);
    return the global L2 norm of the gradients before clipping (torch.nn.utils.get_total_norm, as
    a float; ``total``, as given, when the caller has it already). The torch loop clips through it."""
    params = [p for p in params if p.grad is not None]
    if not params:
        return 0.0 if total is None else total
    if total is None:
        total = float(torch.nn.utils.get_total_norm([p.grad for p in params]))
    if opt_spec.clip_norm is not None:
        torch.nn.utils.clip_grad_norm_(params, opt_spec.clip_norm)
    if opt_spec.clip_value is not None:
        torch.nn.utils.clip_grad_value_(params, opt_spec.clip_value)
    return total
