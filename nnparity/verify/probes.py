"""Input probes for checking a hand-derived derivative: where derivations usually break.

Every op is probed in separate *groups*, each its own batch, so one group's large values never
drown another's rounding (a loss over a batch holding 700 and 0.3 cannot resolve the 0.3):

- ``random``      seeded normal draws, the ordinary case;
- ``kink``        exactly 0 (and -0.0), ties at a row's max, pred == target: where max, abs, relu,
                  huber and friends switch branch;
- ``saturation``  |z| = 20, 100, 700 (exp(710) overflows a float64): sigmoid, tanh, softplus, softmax
                  tails; for probability-valued predictions, p at 1e-6 and 1 - 1e-6;
- ``tiny``        |z| = 1e-8: cancellations such as (1 - cos z) / z, x·log x, √(z² + ε).

Losses also get targets of exactly 0 and 1 in every group. Probes are float64 and reproducible
from ``seed``. The batch has ``ROWS`` rows and ``COLS`` columns: 6 and 5, so a gradient off by the
batch size (6) or the element count (30) is told apart from one off by 2 or ½.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

ROWS, COLS = 6, 5
SATURATION = (20.0, 100.0, 700.0)
TINY = 1e-8
NEAR_EDGE = 1e-6      # probabilities 1e-6 and 1 - 1e-6



@dataclass
class Probe:
    """One probe group: the input batch (and, for losses, the targets) it evaluates the op on."""

    group: str                        # random | kink | saturation | tiny
    x: np.ndarray                     # the input (activations, layers) or the prediction (losses)
    target: np.ndarray | None = None  # losses only
    kink_mask: np.ndarray | None = field(default=None, repr=False)  # elements placed on a kink


def _signs(shape, rng):
    return rng.choice((-1.0, 1.0), size=shape)


SEED_MAX = 2**32 - 1    # np.random.seed's range (a network's constructor is seeded with it)


def checked_seed(seed) -> int:
    """``seed`` if it is an integer in [0, SEED_MAX]; TypeError or ValueError naming ``seed`` otherwise."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed: expected an integer from 0 to {SEED_MAX}, got {seed!r} ({type(seed).__name__})")
    if not 0 <= seed <= SEED_MAX:
        raise ValueError(f"seed: expected an integer from 0 to {SEED_MAX}, got {seed}")
    return int(seed)


def elementwise_probes(seed: int = 0) -> list[Probe]:
    """Probes for an elementwise activation z -> f(z)."""
    rng = np.random.default_rng(seed)
    random = rng.normal(0.0, 2.0, size=(ROWS, COLS))
    kink = np.zeros((2, COLS))
    kink[:, 1::2] = -0.0
    sat = np.array([[s * sign for s in SATURATION for sign in (1.0, -1.0)]])
    saturation = np.concatenate([sat, sat[:, ::-1]])
    tiny = TINY * np.array([[1.0, -1.0, 3.0, -3.0, 0.5], [-0.5, 2.0, -2.0, 1.0, -1.0]])
    return [Probe("random", random), Probe("kink", kink, kink_mask=np.ones(kink.shape, bool)),
            Probe("saturation", saturation), Probe("tiny", tiny)]


def rowwise_probes(seed: int = 0) -> list[Probe]:
    """Probes for a row-wise vector function (softmax-like) of (N, C) rows."""
    rng = np.random.default_rng(seed)
    random = rng.normal(0.0, 2.0, size=(ROWS, COLS))
    kink = np.array([[0.0, 0.0, 0.0, 0.0, 0.0],
                     [1.0, 1.0, 0.0, -1.0, -1.0],       # tie at the max
                     [2.0, -1.0, 2.0, 0.0, -2.0],
                     [-3.0, 0.5, 0.0, 0.5, -0.0]])
    saturation = np.array([[700.0, 0.0, -700.0, 20.0, -20.0],
                           [100.0, 99.0, -100.0, 0.0, 1.0],
                           [-700.0, -699.0, -700.0, -698.5, -700.0],
                           [20.0, -20.0, 19.0, 0.0, -100.0]])
    tiny = TINY * rng.normal(0.0, 1.0, size=(ROWS, COLS))
    return [Probe("random", random), Probe("kink", kink, kink_mask=kink == 0),
            Probe("saturation", saturation), Probe("tiny", tiny)]


def label_probes(seed: int = 0, domain: str = "real", edge: float = NEAR_EDGE) -> list[Probe]:
    """Probes for a loss whose targets are class indices: logits (N, C), labels (N,) as floats."""
    rng = np.random.default_rng([seed, 1])
    labels = np.arange(ROWS, dtype=np.float64) % COLS
    groups = loss_probes(seed, domain, edge)
    tie = 0.0 if domain == "real" else 0.5
    out = []
    for p in groups:
        x = np.full((ROWS, COLS), tie) if p.group == "kink" else p.x    # ties at every row's max
        out.append(Probe(p.group, x, rng.permutation(labels)))
    return out


def onehot_probes(seed: int = 0, domain: str = "real", edge: float = NEAR_EDGE) -> list[Probe]:
    """label_probes with each label as a one-hot row of pred's shape (a softmax-CE written for one-hot)."""
    return [Probe(p.group, p.x, np.eye(COLS)[p.target.astype(np.int64)]) for p in label_probes(seed, domain, edge)]


def target_probes(seed: int = 0, domain: str = "real", targets: str = "values", edge: float = NEAR_EDGE):
    """The loss probes for targets given as ``values`` of pred's shape, ``onehot`` rows, ``indices``,
    or ``distributions`` (both arguments probability rows)."""
    make = {"values": loss_probes, "onehot": onehot_probes, "indices": label_probes,
            "distributions": distribution_probes}[targets]
    return make(seed, domain, edge)


def _rows(weights):
    return weights / weights.sum(axis=1, keepdims=True)


DISTRIBUTION_TEXT = {"kink": "pred = target, the minimum", "saturation": "peaked rows, entries 1e-4",
                     "tiny": "pred = target ± 1e-8 relative"}


def distribution_probes(seed: int = 0, domain: str = "probability", edge: float = NEAR_EDGE) -> list[Probe]:
    """Probes for a divergence of two distributions (an unclipped KL(p‖q)): target and prediction are
    both probability rows, every entry positive (at least ``edge``), each row summing to 1. Groups:
    random rows; pred = target (the minimum, not a kink); peaked rows (one entry near 1, the rest
    near ``edge``, the saturation of p·log p); pred a tiny relative change from the target."""
    rng = np.random.default_rng([seed, 2])
    shape = (ROWS, COLS)
    target = _rows(rng.uniform(0.1, 1.0, size=shape))
    random = _rows(rng.uniform(0.1, 1.0, size=shape))
    small = max(edge, 1e-4)
    peaked = np.full(shape, small)
    peaked[np.arange(ROWS), rng.integers(0, COLS, ROWS)] = 1.0 - small * (COLS - 1)
    tiny = _rows(target * (1 + TINY * _signs(shape, rng)))
    return [Probe("random", random, target.copy()), Probe("kink", target.copy(), target.copy()),
            Probe("saturation", peaked, target.copy()), Probe("tiny", tiny, target.copy())]


def loss_probes(seed: int = 0, domain: str = "real", edge: float = NEAR_EDGE) -> list[Probe]:
    """Probes for a loss (pred, target) -> scalar over a (ROWS, COLS) batch.

    domain "real": predictions are any real numbers (logits, regression outputs);
    domain "probability": predictions lie in (0, 1) (after a sigmoid or softmax), at least
    ``edge`` from 0 and 1 (a loss that clips p to [eps, 1 − eps] is probed 10·eps inside).
    Targets lie in [0, 1] and every group holds targets of exactly 0 and 1.
    """
    rng = np.random.default_rng(seed)
    shape = (ROWS, COLS)
    target = rng.uniform(0.0, 1.0, size=shape)
    target[0] = 0.0
    target[1] = 1.0
    target[2, ::2] = 0.0
    target[2, 1::2] = 1.0
    if domain == "probability":
        random = rng.uniform(0.05, 0.95, size=shape)
        kink = target.copy()
        kink[(kink == 0.0)] = 0.25       # p = t is the kink of |p - t|; p stays inside (0, 1)
        kink[(kink == 1.0)] = 0.75
        kink = np.clip(kink, edge, 1 - edge)     # a target near 0 or 1 would put p inside the clip
        saturation = np.where(rng.uniform(size=shape) < 0.5, edge, 1.0 - edge)
        tiny = np.clip(np.where(target > 0.5, target - TINY, target + TINY), max(TINY, edge), 1 - max(TINY, edge))
        kink_mask = np.isclose(kink, target, rtol=0, atol=0)
    elif domain == "real":
        random = rng.normal(0.0, 2.0, size=shape)
        kink = target.copy()                # pred == target everywhere
        saturation = _signs(shape, rng) * rng.choice(SATURATION, size=shape)
        tiny = target + TINY * _signs(shape, rng)
        kink_mask = np.ones(shape, bool)
    else:
        raise ValueError(f"domain: unknown {domain!r}; expected real or probability")
    return [Probe("random", random, target.copy()), Probe("kink", kink, target.copy(), kink_mask),
            Probe("saturation", saturation, target.copy()), Probe("tiny", tiny, target.copy())]


def layer_probes(inputs: int, seed: int = 0) -> list[Probe]:
    """Probes for a layer's input x of shape (ROWS, inputs)."""
    rng = np.random.default_rng(seed)
    random = rng.normal(0.0, 1.0, size=(ROWS, inputs))
    kink = np.zeros((ROWS, inputs))
    saturation = _signs((ROWS, inputs), rng) * rng.choice(SATURATION, size=(ROWS, inputs))
    tiny = TINY * rng.normal(0.0, 1.0, size=(ROWS, inputs))
    return [Probe("random", random), Probe("kink", kink, kink_mask=np.ones(kink.shape, bool)),
            Probe("saturation", saturation), Probe("tiny", tiny)]


def describe(kind: str, domain: str = "real") -> dict:
    """What each group's values are, for the report."""
    name = {"activation": "z", "vector": "z", "loss": "pred", "layer": "x"}[kind]
    text = {"kink": f"{name} = 0", "saturation": f"|{name}| = 20, 100, 700", "tiny": f"|{name}| ~ 1e-8"}
    if kind == "vector":
        text["kink"] = "zeros, ties at the max"
    if kind == "loss":
        text["kink"] = "pred = target"
        text["tiny"] = "pred − target = ±1e-8"
        if domain == "probability":
            text["saturation"] = "p = 1e-6, 1 − 1e-6"
    return text


def upstream_gradient(shape, seed: int = 0, group: str = "") -> np.ndarray:
    """The seeded dL/d(output) fed to backward: random, so a backward that ignores it is caught.

    Values lie in ±[0.5, 1.5] (never near 0, so the ratio got/expected stays informative).
    """
    rng = np.random.default_rng([seed, sum(map(ord, group))])
    return _signs(shape, rng) * rng.uniform(0.5, 1.5, size=shape)
