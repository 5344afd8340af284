"""Optimizers with torch.optim's shape, every update written out by hand.

Contract (shared with torch_ref/optimizers.py and the training loops):
- ``make_optimizer(opt_spec, params)`` takes the live parameter arrays (``Network.parameters()``,
  or any dict name -> float ndarray, e.g. ``{"xy": np.array([4.0, 3.0])}``) and returns an
  Optimizer that updates them in place. ``make_optimizer(opt_spec, params, seed=spec.seed)``: the
  seed of random search when the optimizer table sets none (``optimizer.seed``).
- ``optimizer.step(grads, closure=None)``: ``grads`` is a dict with the same names (e.g.
  ``Network.gradients()``); ``closure()`` returns the loss at the current parameter values
  without touching gradients (needed by line searches and random search).
- ``optimizer.zero_grad()`` exists for torch's shape; scratch gradients are overwritten by each backward.
- ``optimizer.state[name]`` holds the per-parameter state (momentum buffer, moments, step count).
- Gradient clipping is applied by the training loop before ``step`` (clip_grad_norm / clip_grad_value,
  or apply_clipping(opt_spec, grads) for what the spec asks).

``OPTIMIZERS`` maps the spec's optimizer names to these classes; scratch/spec.py validates
``optimizer.name`` against its keys and torch_ref/optimizers.py keeps the twin registry.

Devices: the parameters' array module (NumPy, CuPy; ``scratch.device.namespace_of``) runs every
update, clipping included, with no host read; the exceptions are the rules that compare losses
(Armijo's condition, random search's acceptance), which read ``closure()`` on the host.

Each optimizer declares the spec fields it reads (``reads``; lr and the clipping fields are read
by all); a non-default value of a field the chosen optimizer does not read is an error (SpecError
naming the field), never silently ignored.

Rounding: torch's CPU kernels fuse multiply-adds (``add(alpha=)``, ``addcmul``, ``lerp`` run as one
fma), NumPy has no fma, so an update agrees with torch's to about one rounding (~1e-16 relative)
per step, not bit for bit. The formulas below follow torch's order of operations otherwise.
"""
from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np

from scratch.device import host_copy, namespace_of, to_host
from scratch.errors import SpecError
from scratch.packed import views_of

# Spec fields every optimizer reads (the clipping fields are applied by the training step).
COMMON_FIELDS = ("name", "lr", "clip_norm", "clip_value")



class Optimizer:
    """Base class: holds the live parameters (a dict name -> float array) and per-parameter state.

    Every update runs in place over ``segments``: the whole buffer at once when the parameters and
    the gradients are packed alike (``Network.parameters()`` and ``Network.gradients()``, see
    scratch/packed.py), else one parameter at a time; the parameters' state entries are then
    views of one buffer too. Either way the arithmetic of every element is the same. Temporaries
    live in work buffers kept between steps (no allocation per step), and a large NumPy update
    goes through them in blocks of ``BLOCK`` elements, so they stay in cache.
    """

    name = ""
    reads: tuple[str, ...] = ()      # the OptimizerSpec fields it reads, beyond COMMON_FIELDS
    extra_keys: tuple[str, ...] = ()  # what get_state's second part (JSON-able state) may hold

    def __init__(self, params: dict):
        if not isinstance(params, dict) or not params:
            raise TypeError("params: expected a non-empty dict name -> float array")
        for key, p in params.items():
            if getattr(getattr(p, "dtype", None), "kind", None) != "f":
                raise TypeError(f"params[{key!r}]: expected a float array (updated in place), "
                                f"got {type(p).__name__} {getattr(p, 'dtype', '')}")
        self.params = params
        self.xp = namespace_of(next(iter(params.values())))
        self.state: dict[str, dict] = {key: {} for key in params}
        self._work: dict = {}
        self._packed_state: dict = {}    # state key -> (flat buffer, its per-parameter views)

    @classmethod
    def from_spec(cls, opt_spec, params: dict, seed: int | None = None) -> "Optimizer":
        raise NotImplementedError

    def zero_grad(self) -> None:
        """Nothing to do: scratch layers overwrite their gradients on each backward."""

    def step(self, grads: dict, closure=None):
        raise NotImplementedError

    @classmethod
    def state_keys(cls, opt_spec) -> tuple[str, ...]:
        """The per-parameter state keys it keeps under ``opt_spec`` once it has stepped (none before)."""
        return ()

    def get_state(self) -> tuple[dict, dict]:
        """(per-parameter state as host copies: name -> {key -> array, ``step`` as an int64 array},
        the rest as plain JSON-able data): what a checkpoint stores."""
        state = {name: {key: np.array(value, dtype=np.int64) if key == "step" else host_copy(value, self.xp)
                        for key, value in entries.items()} for name, entries in self.state.items()}
        last = getattr(self, "last_step", None)
        return state, ({"last_step": dict(last)} if last else {})

    def set_state(self, state: dict, extra: dict) -> None:
        """Restore what get_state returned (copies, on the parameters' device; ``step`` back to an int)."""
        for name in self.params:
            self.state[name] = {key: int(value) if key == "step" else self.xp.asarray(np.array(value, copy=True))
                                for key, value in state.get(name, {}).items()}
        if "last_step" in extra:
            self.last_step = dict(extra["last_step"])

    def _host_float(self, value) -> float:
        """A loss or a sum read on the host: the one place an optimizer leaves the device."""
        return float(to_host(value, self.xp))

    def _grads(self, grads: dict) -> dict:
        missing = [key for key in self.params if key not in grads]
        if missing:
            raise KeyError(f"grads: no gradient for {', '.join(missing)}")
        return grads

    # ------------------------------------------------------------------------- segments

    def _segments(self, grads: dict) -> list["_Segment"]:
        """What an update runs over: the whole buffers when parameters and gradients are packed
        alike, else one segment per parameter."""
        layout = getattr(self.params, "layout", None)
        if layout is not None and getattr(grads, "layout", None) == layout:
            return [_Segment(tuple(self.params), self.params.flat, grads.flat, True)]
        return [_Segment((key,), p, grads[key], False) for key, p in self.params.items()]

    def _state(self, segment: "_Segment", key: str):
        """State ``key`` over the segment, and whether it is new (zeros, first step). Packed: one
        buffer whose views are the parameters' entries (rebuilt if set_state replaced them)."""
        if not segment.packed:
            entry = self.state[segment.names[0]]
            new = key not in entry
            if new:
                entry[key] = self.xp.zeros_like(segment.p)
            return entry[key], new
        entries = [self.state[name].get(key) for name in segment.names]
        cached = self._packed_state.get(key)
        if cached is not None and all(e is v for e, v in zip(entries, cached[1].values())):
            return cached[0], False
        flat = self.xp.zeros_like(segment.p)
        views = views_of(flat, self.params.layout)
        for name, entry in zip(segment.names, entries):
            if entry is not None:
                views[name][...] = entry
            self.state[name][key] = views[name]
        self._packed_state[key] = (flat, views)
        return flat, all(e is None for e in entries)

    def _count_step(self, segment: "_Segment") -> int:
        """The segment's step number t = 1, 2, ..., kept per parameter in ``state[name]["step"]``."""
        t = self.state[segment.names[0]].get("step", 0) + 1
        for name in segment.names:
            self.state[name]["step"] = t
        return t

    def _work_buffers(self, like, count: int) -> list:
        """``count`` arrays shaped and typed as ``like``, kept between steps."""
        key = (like.shape, like.dtype, count)
        buffers = self._work.get(key)
        if buffers is None:
            buffers = self._work[key] = [self.xp.empty_like(like) for _ in range(count)]
        return buffers


class _Segment(NamedTuple):
    names: tuple[str, ...]    # the parameters it covers
    p: object                 # their values (a parameter, or the packed buffer)
    g: object                 # their gradients, the same shape
    packed: bool


# Elements per block of a NumPy update: its temporaries stay in cache, and are never
# parameter-sized (a 4096x4096 float32 temporary is 64 MiB of fresh pages every step).
BLOCK = 1 << 16


def _pieces(*arrays) -> list[tuple]:
    """The arrays whole, or for large contiguous NumPy arrays of one shape, matching blocks of them."""
    first = arrays[0]
    if first.size <= BLOCK or not all(isinstance(a, np.ndarray) and a.flags.c_contiguous
                                      and a.shape == first.shape for a in arrays):
        return [arrays]
    flats = [a.reshape(-1) for a in arrays]
    return [tuple(f[start:start + BLOCK] for f in flats) for start in range(0, first.size, BLOCK)]


# -------------------------------------------------------------------------------------- SGD

class SGD(Optimizer):
    """Stochastic gradient descent with momentum, dampening, Nesterov and weight decay, torch's form.

    For each parameter p with gradient g (one step):
        g ← g + wd·p                                  (coupled L2 weight decay, if wd ≠ 0)
        v ← g                  on the first step      (the buffer starts at g, undampened)
        v ← μ·v + (1 − τ)·g    afterwards             (momentum μ, dampening τ)
        d ← g + μ·v  if nesterov,  else d ← v         (d ← g when μ = 0: plain gradient descent)
        p ← p − lr·d

    Full-batch, stochastic (one sample) and mini-batch gradient descent are this class fed
    different batches.

    The classic (Polyak / Sutskever) form keeps a velocity u ← μ·u − lr·g and steps p ← p + u.
    With τ = 0 and a constant lr the two are the same method: both start at the first gradient
    (v₁ = g₁, u₁ = −lr·g₁) and u = −lr·v at every step after, so the trajectories agree up to
    rounding. They part when lr changes between steps (a schedule): torch's v carries no lr, so a
    new lr rescales the whole accumulated buffer at once, while the classic u keeps each past
    gradient scaled by the lr of its own step. (Dampening τ ≠ 0 has no classic counterpart.)

    Torch twin: torch.optim.SGD(lr, momentum, dampening, weight_decay, nesterov)
    (torch/optim/sgd.py, _single_tensor_sgd). State per parameter: ``momentum_buffer``.
    """

    name = "sgd"
    reads = ("momentum", "dampening", "nesterov", "weight_decay")

    @classmethod
    def state_keys(cls, opt_spec) -> tuple[str, ...]:
        return ("momentum_buffer",) if opt_spec.momentum != 0 else ()

    def __init__(self, params: dict, lr: float, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False):
        super().__init__(params)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("nesterov needs momentum > 0 and dampening = 0 (as torch.optim.SGD)")
        self.lr, self.momentum, self.dampening = lr, momentum, dampening
        self.weight_decay, self.nesterov = weight_decay, nesterov

    @classmethod
    def from_spec(cls, opt_spec, params, seed=None):
        return cls(params, lr=opt_spec.lr, momentum=opt_spec.momentum, dampening=opt_spec.dampening,
                   weight_decay=opt_spec.weight_decay, nesterov=opt_spec.nesterov)

    def step(self, grads: dict, closure=None):
        grads = self._grads(grads)
        loss = None if closure is None else closure()
        for segment in self._segments(grads):
            buffer, first = self._state(segment, "momentum_buffer") if self.momentum != 0 else (None, False)
            for piece in _pieces(segment.p, segment.g, *(() if buffer is None else (buffer,))):
                self._update(*piece, first=first)
        return loss

    def _update(self, p, g, buffer=None, first: bool = False) -> None:
        """One piece of the step, in place, in torch's order (see the class docstring)."""
        xp = self.xp
        decayed, tmp = self._work_buffers(g, 2)
        if self.weight_decay != 0:
            xp.multiply(p, self.weight_decay, out=decayed)
            decayed += g                                   # g + wd·p
            g = decayed
        if buffer is not None:
            if first:
                buffer[...] = g                            # v starts at g, undampened
            else:
                buffer *= self.momentum
                xp.multiply(g, 1 - self.dampening, out=tmp)
                buffer += tmp                              # μ·v + (1 − τ)·g
            if self.nesterov:
                xp.multiply(buffer, self.momentum, out=tmp)
                tmp += g                                   # g + μ·v
                g = tmp
            else:
                g = buffer
        xp.multiply(g, self.lr, out=tmp)
        p -= tmp


# ------------------------------------------------------------------------------------- Adam


def _lerp(start, end, weight: float, tmp, xp) -> None:
    """start ← start + weight·(end − start) in place, evaluated as torch.lerp does (the other end
    for weight ≥ ½); ``tmp``: a work array of start's shape."""
    xp.subtract(end, start, out=tmp)
    if abs(weight) < 0.5:
        tmp *= weight
        start += tmp
    else:
        tmp *= 1 - weight
        xp.subtract(end, tmp, out=start)


class Adam(Optimizer):
    """Adam with bias correction, ε after the square root, and coupled L2 weight decay.

    For each parameter p with gradient g, at step t = 1, 2, ...:
        g ← g + wd·p                                   (coupled: the decay goes through the moments)
        m ← β₁·m + (1 − β₁)·g                          (computed as torch: m + (1 − β₁)·(g − m))
        v ← β₂·v + (1 − β₂)·g²
        m̂ = m / (1 − β₁ᵗ),  v̂ = v / (1 − β₂ᵗ)
        p ← p − lr·m̂ / (√v̂ + ε)
    evaluated in torch's order: step = lr/(1 − β₁ᵗ); denom = √v/√(1 − β₂ᵗ) + ε; p ← p − step·m/denom.

    Torch twin: torch.optim.Adam(lr, betas, eps, weight_decay) (torch/optim/adam.py,
    _single_tensor_adam). State per parameter: ``step``, ``exp_avg`` (m), ``exp_avg_sq`` (v).
    """

    name = "adam"
    reads = ("weight_decay", "betas", "eps")
    decoupled = False

    @classmethod
    def state_keys(cls, opt_spec) -> tuple[str, ...]:
        return ("exp_avg", "exp_avg_sq", "step")

    def __init__(self, params: dict, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0):
        super().__init__(params)
        self.lr, self.betas, self.eps, self.weight_decay = lr, tuple(betas), eps, weight_decay

    @classmethod
    def from_spec(cls, opt_spec, params, seed=None):
        return cls(params, lr=opt_spec.lr, betas=opt_spec.betas, eps=opt_spec.eps,
                   weight_decay=opt_spec.weight_decay)

    def step(self, grads: dict, closure=None):
        grads = self._grads(grads)
        loss = None if closure is None else closure()
        for segment in self._segments(grads):
            m, _ = self._state(segment, "exp_avg")
            v, _ = self._state(segment, "exp_avg_sq")
            t = self._count_step(segment)
            for piece in _pieces(segment.p, segment.g, m, v):
                self._update(*piece, t=t)
        return loss

    def _update(self, p, g, m, v, t: int) -> None:
        """One piece of step t, in place, in torch's order (see the class docstring)."""
        xp = self.xp
        beta1, beta2 = self.betas
        decayed, tmp, denom = self._work_buffers(g, 3)
        if self.weight_decay != 0:
            if self.decoupled:
                p *= 1 - self.lr * self.weight_decay
            else:
                xp.multiply(p, self.weight_decay, out=decayed)
                decayed += g                                   # g + wd·p
                g = decayed
        _lerp(m, g, 1 - beta1, tmp, xp)                        # m + (1 − β₁)·(g − m)
        v *= beta2
        xp.multiply(g, 1 - beta2, out=tmp)
        tmp *= g
        v += tmp                                               # β₂·v + (1 − β₂)·g²
        step_size = self.lr / (1 - beta1 ** t)
        xp.sqrt(v, out=denom)
        denom /= (1 - beta2 ** t) ** 0.5
        denom += self.eps                                      # √v / √(1 − β₂ᵗ) + ε
        xp.multiply(m, -step_size, out=tmp)
        tmp /= denom
        p += tmp


class AdamW(Adam):
    """Adam with decoupled weight decay: the decay shrinks p directly and never enters the moments.

    At each step, before the Adam update (which then uses the raw g):
        p ← p·(1 − lr·wd)
        m, v, m̂, v̂ as Adam;  p ← p − lr·m̂ / (√v̂ + ε)

    Torch twin: torch.optim.AdamW(lr, betas, eps, weight_decay) (Adam with decoupled_weight_decay).
    Note torch's AdamW defaults to weight_decay = 1e-2; the spec's default is 0 and is passed explicitly.
    """

    name = "adamw"
    decoupled = True


# ---------------------------------------------------------------------------- line search


class Armijo(Optimizer):
    """Gradient descent with Armijo backtracking line search.

    With g = ∇f(x) (all parameters as one vector) and d = −g, try t = lr·βˡ for l = 0, 1, ...,
    max_backtracks and take the first (the largest) t with
        f(x + t·d) ≤ f(x) + σ·t·∇f(x)ᵀd   (= f(x) − σ·t·‖g‖²),
    then x ← x + t·d. f is ``closure()``: f(x) is evaluated at the start of the step, and once per
    trial at x + t·d (each trial is computed from x, not from the previous trial).

    Cap: when none of the max_backtracks + 1 trials satisfies the condition, NO step is taken —
    the parameters are restored to x exactly, and ``last_step["accepted"]`` is False. (For a
    smooth f and g ≠ 0 some small t always passes, so failing every trial means the line search
    ran out of room or f is at rounding level: taking the last, failing trial could raise the loss.)

    ``last_step`` records the step: t (0.0 if none), backtracks (l of the accepted t, or the cap),
    accepted, loss_before, loss_after. ``step`` returns f(x), the loss before the step.
    The gradients used are the ones given (after any clipping by the training loop).

    Torch twin: torch_ref.optimizers.Armijo (torch has no line-search SGD), the same rule on p.grad.
    """

    name = "armijo"
    reads = ("sigma", "beta", "max_backtracks")
    extra_keys = ("last_step",)

    def __init__(self, params: dict, lr: float = 1.0, sigma: float = 1e-4, beta: float = 0.5,
                 max_backtracks: int = 30):
        super().__init__(params)
        if not (0 < sigma < 1 and 0 < beta < 1):
            raise ValueError("armijo: sigma and beta must lie in (0, 1)")
        if max_backtracks < 0:
            raise ValueError("armijo: max_backtracks must be >= 0")
        self.lr, self.sigma, self.beta, self.max_backtracks = lr, sigma, beta, max_backtracks
        self.last_step: dict = {}

    @classmethod
    def from_spec(cls, opt_spec, params, seed=None):
        return cls(params, lr=opt_spec.lr, sigma=opt_spec.sigma, beta=opt_spec.beta,
                   max_backtracks=opt_spec.max_backtracks)

    def step(self, grads: dict, closure=None):
        if closure is None:
            raise ValueError("armijo: step needs closure() returning the loss at the current parameters")
        grads = self._grads(grads)
        grads = {key: grads[key].copy() for key in self.params}  # the direction stays put
        x0 = {key: p.copy() for key, p in self.params.items()}
        f0 = self._host_float(closure())
        # ∇fᵀd with d = −g: each parameter's sum widened to float64 before they are added
        squares = [(grads[key] * grads[key]).sum().astype(self.xp.float64) for key in self.params]
        slope = -self._host_float(sum(squares[1:], squares[0]))
        for l in range(self.max_backtracks + 1):
            t = self.lr * self.beta ** l
            for key, p in self.params.items():
                p[...] = x0[key] - t * grads[key]
            f = self._host_float(closure())
            if f <= f0 + self.sigma * t * slope:
                self.last_step = dict(t=t, backtracks=l, accepted=True, loss_before=f0, loss_after=f)
                return f0
        for key, p in self.params.items():
            p[...] = x0[key]
        self.last_step = dict(t=0.0, backtracks=self.max_backtracks, accepted=False,
                              loss_before=f0, loss_after=f0)
        return f0


# --------------------------------------------------------------------------- random search


class RandomSearch(Optimizer):
    """Random-search baseline: perturb every parameter, keep the perturbation if the loss falls.

    Each step draws z ~ N(0, 1) for every element of every parameter, in the order of ``params``
    and in scratch's layout (weights (inputs, units)), from ``np.random.default_rng(seed)``:
        x' = x + lr·z;   x ← x' if f(x') < f(x), else x stays.
    f is ``closure()``; gradients are not used. A draw is made at every step, kept or not.
    ``last_step`` records accepted, loss_before, loss_after; ``step`` returns f(x) before the step.

    Torch twin: torch_ref.optimizers.RandomSearch, which draws the same z with NumPy from the same
    seed (it is a baseline, not maths under test: sharing the draws makes the trajectories comparable).
    """

    name = "random_search"
    reads = ("seed",)
    extra_keys = ("rng", "last_step")

    def __init__(self, params: dict, lr: float = 0.1, seed: int = 0):
        super().__init__(params)
        self.lr = lr
        self.rng = np.random.default_rng(seed)
        self.last_step: dict = {}

    @classmethod
    def from_spec(cls, opt_spec, params, seed=None):
        return cls(params, lr=opt_spec.lr, seed=_seed(opt_spec, seed))

    def get_state(self) -> tuple[dict, dict]:
        state, extra = super().get_state()
        return state, dict(extra, rng=self.rng.bit_generator.state)

    def set_state(self, state: dict, extra: dict) -> None:
        super().set_state(state, extra)
        if "rng" in extra:
            self.rng.bit_generator.state = extra["rng"]

    def step(self, grads: dict | None = None, closure=None):
        if closure is None:
            raise ValueError("random_search: step needs closure() returning the loss at the current parameters")
        x0 = {key: p.copy() for key, p in self.params.items()}
        f0 = self._host_float(closure())
        for key, p in self.params.items():
            noise = self.lr * self.rng.standard_normal(p.shape)   # drawn on the host, as torch's twin draws it
            p += self.xp.asarray(noise, dtype=p.dtype)
        f = self._host_float(closure())
        accepted = f < f0
        if not accepted:
            for key, p in self.params.items():
                p[...] = x0[key]
        self.last_step = dict(accepted=accepted, loss_before=f0, loss_after=f if accepted else f0)
        return f0


def _seed(opt_spec, seed: int | None) -> int:
    """The random-search seed: optimizer.seed, else the caller's (the spec's top-level seed), else 0."""
    own = getattr(opt_spec, "seed", None)
    if own is not None:
        return own
    return 0 if seed is None else seed


# ------------------------------------------------------------------------------- clipping


def global_norm(grads: dict):
    """The L2 norm of all gradients as one vector, as torch: ‖(‖g₁‖, ‖g₂‖, ...)‖, each ‖gᵢ‖ in gᵢ's
    dtype, the outer norm in float64. A float64 scalar on the gradients' device (a NumPy scalar,
    which is a float, on the CPU): reading it on the host is the caller's choice."""
    if not grads:
        return 0.0
    xp = namespace_of(next(iter(grads.values())))
    norms = []
    for g in grads.values():
        flat = g.reshape(-1)
        norms.append(xp.sqrt(flat.dot(flat)).astype(xp.float64))   # np.linalg.norm's own formula
    stacked = xp.stack(norms)
    return xp.sqrt(stacked.dot(stacked))


def clip_grad_norm(grads: dict, max_norm: float, total=None):
    """Scale all gradients in place so their global L2 norm is at most max_norm; return the norm before.

        total = ‖(‖g₁‖, ‖g₂‖, ...)‖₂;   c = min(max_norm / (total + 1e-6), 1);   gᵢ ← c·gᵢ
    (the 1e-6 and the multiply by c even when c = 1 are torch's). Torch twin:
    torch.nn.utils.clip_grad_norm_(parameters, max_norm), which also returns the total norm.
    ``total``: global_norm(grads) when the caller has it already (not computed again).
    No host read: c stays on the gradients' device.
    """
    total = global_norm(grads) if total is None else total
    if grads:
        xp = namespace_of(next(iter(grads.values())))
        coef = xp.minimum(float(max_norm) / (total + 1e-6), 1.0)   # once, on the gradients' device
        for g in grads.values():
            g *= xp.asarray(coef, dtype=g.dtype)   # c rounded to g's dtype first, as a Python float would be
    return total


def clip_grad_value(grads: dict, value: float, total=None):
    """Clamp every gradient element in place to [−value, value]; return the global norm before.

    Torch twin: torch.nn.utils.clip_grad_value_(parameters, value) (which returns None; the norm
    is returned here for the training history, as clip_grad_norm does). ``total``: as clip_grad_norm.
    """
    total = global_norm(grads) if total is None else total
    value = float(value)
    for g in grads.values():
        namespace_of(g).clip(g, -value, value, out=g)
    return total


def apply_clipping(opt_spec, grads: dict, total=None):
    """Clip ``grads`` in place as the spec asks (clip_norm, then clip_value); return the global norm
    before clipping (``total``, when the caller has it already). Torch twin:
    torch_ref.optimizers.apply_clipping. The scratch loop clips through it."""
    total = global_norm(grads) if total is None else total
    if opt_spec.clip_norm is not None:
        clip_grad_norm(grads, opt_spec.clip_norm, total)
    if opt_spec.clip_value is not None:
        clip_grad_value(grads, opt_spec.clip_value, total)   # its returned norm is not used
    return total


# ------------------------------------------------------------------------------- registry


OPTIMIZERS = {cls.name: cls for cls in (SGD, Adam, AdamW, Armijo, RandomSearch)}


def check_optimizer_fields(opt_spec) -> None:
    """Raise SpecError for a field set away from its default that the named optimizer does not read."""
    default = type(opt_spec)()
    reads = COMMON_FIELDS + OPTIMIZERS[opt_spec.name].reads
    for key in (f.name for f in dataclasses.fields(opt_spec)):
        if key in reads:
            continue
        value, base = getattr(opt_spec, key), getattr(default, key)
        if (tuple(value) if isinstance(value, list) else value) != base:
            users = [name for name, cls in OPTIMIZERS.items() if key in cls.reads]
            raise SpecError(f"optimizer.{key}", f"{opt_spec.name} does not use {key} "
                                                f"(it is for {', '.join(users)}); remove it")


def make_optimizer(opt_spec, params: dict, seed: int | None = None) -> Optimizer:
    """The optimizer an OptimizerSpec names, over ``params`` (a dict name -> live float array).

    ``seed`` (the spec's top-level seed) seeds random search when the optimizer table sets none.
    """
    if opt_spec.name not in OPTIMIZERS:
        raise SpecError("optimizer.name", f"unknown {opt_spec.name!r}; expected one of {', '.join(OPTIMIZERS)}")
    check_optimizer_fields(opt_spec)
    return OPTIMIZERS[opt_spec.name].from_spec(opt_spec, params, seed=seed)
