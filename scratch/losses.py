"""Losses: one small class each, value and hand-derived gradient with respect to the prediction.

``forward(pred, target)`` returns the scalar loss and keeps what ``backward`` needs;
``backward()`` returns dL/dpred. Class-index targets (N,) are accepted by cce and softmax_cce and
turned into one-hot rows. Reductions follow torch: "mean" divides by the count torch divides by
(N·C for elementwise losses, N for the cross-entropies), "sum" does not divide.
"""
from __future__ import annotations

import numpy as np

LOG_CLAMP = -100.0      # torch's BCELoss clamps log(p) and log(1 - p) at -100
# torch's BCELoss backward divides by max(p(1 - p), EPSILON), EPSILON a C++ float 1e-12: in float64
# that is 9.999999960041972e-13, not 1e-12 (gradients at p = 0 or 1 differ by 4e-9 otherwise).
BCE_EPSILON = 9.999999960041972e-13


class Loss:
    """Base class. ``reductions`` lists what the loss accepts, the first being its default."""

    name = ""
    reductions: tuple[str, ...] = ("mean", "sum")
    accepts_class_indices = False
    per_step = False          # True: scores a (N, T, classes) sequence, one target per time step

    def __init__(self, reduction: str | None = None, xp=np):
        self.xp = xp
        self.reduction = reduction or self.reductions[0]
        if self.reduction not in self.reductions:
            raise ValueError(f"{self.name}: reduction {self.reduction!r}; expected one of {self.reductions}")

    def _targets(self, pred, target):
        """Class indices -> one-hot rows in pred's dtype (only for the cross-entropies)."""
        xp = self.xp
        target = xp.asarray(target)
        if target.ndim == 1 and pred.ndim == 2 and self.accepts_class_indices:
            onehot = xp.zeros_like(pred)
            onehot[xp.arange(pred.shape[0]), target.astype(int)] = 1
            return onehot
        return target.astype(pred.dtype).reshape(pred.shape)

    def _reduce(self, per_element, divisor):
        total = per_element.sum()
        return total / divisor if self.reduction == "mean" else total

    def _scale(self, divisor):
        return 1.0 / divisor if self.reduction == "mean" else 1.0

    def forward(self, pred, target):
        raise NotImplementedError

    def backward(self):
        raise NotImplementedError


class MSE(Loss):
    """L = Σ (a - t)² / (N·C)  (sum: no division).

    Backward: dL/da = 2 (a - t) / (N·C).  Torch twin: nn.MSELoss(reduction).
    """

    name = "mse"

    def forward(self, pred, target):
        self.diff = pred - self._targets(pred, target)
        self.count = pred.size
        return self._reduce(self.diff * self.diff, self.count)

    def backward(self):
        return self.diff * (2 * self._scale(self.count))   # scaled before doubled: finite while torch's is


class SSE(Loss):
    """L = Σ (a - t)².  Backward: dL/da = 2 (a - t).  Torch twin: nn.MSELoss(reduction="sum")."""

    name = "sse"
    reductions = ("sum",)

    def forward(self, pred, target):
        self.diff = pred - self._targets(pred, target)
        return (self.diff * self.diff).sum()

    def backward(self):
        return 2 * self.diff


class HalfSSE(Loss):
    """The textbook E = ½ Σ (t - a)².  Backward: dE/da = a - t.

    Torch twin: 0.5 · nn.MSELoss(reduction="sum").
    """

    name = "half_sse"
    reductions = ("sum",)

    def forward(self, pred, target):
        self.diff = pred - self._targets(pred, target)
        return 0.5 * (self.diff * self.diff).sum()

    def backward(self):
        return self.diff


class BCE(Loss):
    """Binary cross-entropy on probabilities p:
    L = -Σ [t·max(log p, -100) + (1 - t)·max(log1p(-p), -100)] / (N·C).

    Backward (torch's convention): dL/dp = (p - t) / max(p(1 - p), ε) / (N·C), ε = float32(1e-12).
    Torch twin: nn.BCELoss(reduction).
    """

    name = "bce"

    def _clamped_log(self, p):
        xp = self.xp
        positive = p > 0
        return xp.maximum(xp.where(positive, xp.log(xp.where(positive, p, 1)), LOG_CLAMP), LOG_CLAMP)

    def _clamped_log1m(self, p):
        """max(log(1 - p), -100) as log1p(-p), as torch computes it: exact for tiny p (p = 1e-218
        gives 1e-218, where log(1 - p) rounds to 0)."""
        xp = self.xp
        below = p < 1
        return xp.maximum(xp.where(below, xp.log1p(-xp.where(below, p, 0)), LOG_CLAMP), LOG_CLAMP)

    def forward(self, pred, target):
        self.p = pred
        self.t = self._targets(pred, target)
        per = -(self.t * self._clamped_log(pred) + (1 - self.t) * self._clamped_log1m(pred))
        return self._reduce(per, pred.size)

    def backward(self):
        xp = self.xp
        denom = xp.maximum((1 - self.p) * self.p, BCE_EPSILON)
        return (self.p - self.t) / denom * self._scale(self.p.size)


class BCEWithLogits(Loss):
    """Binary cross-entropy on logits x, fused and stable:
    L = Σ [max(x, 0) - x·t + log(1 + exp(-|x|))] / (N·C).

    Backward: dL/dx = (σ(x) - t) / (N·C).  Torch twin: nn.BCEWithLogitsLoss(reduction).
    """

    name = "bce_logits"

    def forward(self, pred, target):
        xp = self.xp
        self.x = pred
        self.t = self._targets(pred, target)
        per = xp.maximum(pred, 0) - pred * self.t + xp.log1p(xp.exp(-xp.abs(pred)))
        return self._reduce(per, pred.size)

    def backward(self):
        xp = self.xp
        e = xp.exp(-xp.abs(self.x))
        sigmoid = xp.where(self.x >= 0, 1 / (1 + e), e / (1 + e))
        return (sigmoid - self.t) * self._scale(self.x.size)


class CCE(Loss):
    """Categorical cross-entropy on probabilities p (e.g. a softmax output):
    L = -Σ_n Σ_c t_nc log p_nc / N   (terms with t = 0 contribute 0).

    Backward: dL/dp = -t / p / N.
    Torch twin: nn.KLDivLoss(reduction)(log p, t) plus the targets' entropy (a constant in p).
    Where t > 0 and p = 0 the loss is +inf and its gradient -inf, as in torch, without a
    divide-by-zero or overflow warning (so is a gradient t/p beyond the float range).
    """

    name = "cce"
    accepts_class_indices = True

    def forward(self, pred, target):
        xp = self.xp
        self.p = pred
        self.t = self._targets(pred, target)
        hot = self.t != 0
        positive = pred > 0
        log_p = xp.log(xp.where(hot & positive, pred, 1))
        per = xp.where(hot, xp.where(positive, -self.t * log_p, xp.inf), 0)
        return self._reduce(per, pred.shape[0])

    def backward(self):
        xp = self.xp
        # t/p stays finite exactly when p >= t/max (2/max: a margin for the rounding of t·(2/max))
        finite = self.p >= self.t * (2 / xp.finfo(self.p.dtype).max)
        hot = self.t != 0
        p_div = xp.where(hot & finite, self.p, 1)
        grad = xp.where(hot, xp.where(finite, -self.t / p_div, -xp.inf), 0)
        return grad * self._scale(self.p.shape[0])


class SoftmaxCCE(Loss):
    """Cross-entropy on logits z: L = -Σ_n Σ_c t_nc log_softmax(z)_nc / N, with
    log_softmax(z) = z - max z - log Σ exp(z - max z) (stable for any finite logits).

    Backward: dL/dz = (softmax(z)·Σ_c t_nc - t) / N  (= (softmax - t)/N for one-hot rows).
    Torch twin: nn.CrossEntropyLoss(reduction), class indices or probability targets.
    """

    name = "softmax_cce"
    accepts_class_indices = True

    def forward(self, pred, target):
        xp = self.xp
        shifted = pred - pred.max(axis=1, keepdims=True)
        exp = xp.exp(shifted)
        total = exp.sum(axis=1, keepdims=True)
        exp /= total
        self.softmax = exp
        target = xp.asarray(target)
        if target.ndim == 1 and pred.ndim == 2:
            # class indices: the one-hot t picks one log-probability per row, so pick it directly
            # (no one-hot matrix, no N·C products with zeros); −Σ x = Σ −x exactly, one pass fewer
            self.t, self.labels = None, target.astype(np.int64, copy=False)
            picked = shifted[self._rows(pred.shape[0]), self.labels] - xp.log(total[:, 0])
            return -self._reduce(picked, pred.shape[0])
        self.t, self.labels = self._targets(pred, target), None
        log_softmax = shifted - xp.log(total)
        return self._reduce(-self.t * log_softmax, pred.shape[0])

    def backward(self):
        scale = self._scale(self.softmax.shape[0])
        if self.labels is not None:
            # the fused softmax-CE gradient (softmax - onehot)·scale: one copy, one scatter, one scale
            grad = self.softmax.copy()
            grad[self._rows(grad.shape[0]), self.labels] -= 1
            grad *= scale
            return grad
        row_mass = self.t.sum(axis=1, keepdims=True)
        return (self.softmax * row_mass - self.t) * scale

    def _rows(self, n: int):
        """0, 1, ..., n − 1 on the device, made once per batch size."""
        rows = getattr(self, "_row_index", None)
        if rows is None or rows.shape[0] != n:
            rows = self._row_index = self.xp.arange(n)
        return rows


IGNORE_INDEX = -100     # torch's default ignore_index: a target of -100 is no token


class TokenCCE(Loss):
    """Softmax cross-entropy at every time step, on logits z (N, T, V) and token-id targets y (N, T):

        L = −Σ_{(n, t): y ≠ ignore} log_softmax(z[n, t])[y[n, t]] / M,

    M the count of targets that are not ``ignore_index`` (sum: no division; no target left: NaN,
    as torch). Backward: dL/dz[n, t] = (softmax(z[n, t]) − onehot(y[n, t])) / M where y ≠ ignore,
    0 at the ignored steps. Torch twin: nn.CrossEntropyLoss(ignore_index, reduction) on the logits as
    (N·T, V) and the targets as (N·T,).
    """

    name = "token_cce"
    accepts_class_indices = True
    per_step = True

    def __init__(self, reduction: str | None = None, xp=np, ignore_index: int = IGNORE_INDEX):
        super().__init__(reduction, xp)
        self.ignore_index = ignore_index

    def forward(self, pred, target):
        xp = self.xp
        self.shape = pred.shape
        logits = pred.reshape(-1, pred.shape[-1])
        labels = xp.asarray(target).reshape(-1).astype(np.int64, copy=False)
        self.keep = labels != self.ignore_index
        self.labels = xp.where(self.keep, labels, 0)
        shifted = logits - logits.max(axis=1, keepdims=True)
        exp = xp.exp(shifted)
        total = exp.sum(axis=1, keepdims=True)
        exp /= total
        self.softmax = exp
        self.rows = xp.arange(logits.shape[0])
        picked = shifted[self.rows, self.labels] - xp.log(total[:, 0])
        loss = -xp.where(self.keep, picked, 0).sum()
        count = self.keep.sum().astype(pred.dtype)
        self.scale = 1 / xp.maximum(count, 1) if self.reduction == "mean" else xp.ones((), dtype=pred.dtype)
        if self.reduction == "sum":
            return loss
        return xp.where(count > 0, loss * self.scale, xp.nan)

    def backward(self):
        grad = self.softmax.copy()
        grad[self.rows, self.labels] -= 1
        grad *= self.keep[:, None]
        grad *= self.scale
        return grad.reshape(self.shape)


LOSSES: dict[str, type[Loss]] = {cls.name: cls for cls in (MSE, SSE, HalfSSE, BCE, BCEWithLogits, CCE, SoftmaxCCE,
                                                           TokenCCE)}


# The losses on a network's [features] output (every one but the per-step losses).
FEATURE_LOSSES = {name: cls for name, cls in LOSSES.items() if not cls.per_step}


def make_loss(name: str, reduction: str | None = None, xp=np, ignore_index: int | None = None) -> Loss:
    if name == TokenCCE.name:
        return TokenCCE(reduction, xp, IGNORE_INDEX if ignore_index is None else ignore_index)
    return LOSSES[name](reduction=reduction, xp=xp)
