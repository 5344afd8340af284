"""A loss written as functions: ``loss(pred, target) -> L`` with ``loss_grad(pred, target) -> dL/dpred``,
or one function returning ``(L, dL/dpred)`` (the classic ``softmax_loss(x, y)``).

Read on one random batch before any check:

- the argument order: given by ``wrt`` (the CLI's ``--wrt NAME``, the argument differentiated),
  else from the parameter names: ``mse(y_true, y_pred)``, ``loss(target, pred)``, ``cost(y, yhat)``,
  ``ce(labels, logits)`` take the target first; the textbook letters of a divergence,
  ``kl(p, q)`` for KL(p‖q), make q (the model's distribution) the prediction; otherwise the
  prediction is first. The prediction is the argument differentiated, and the report says how it
  was chosen;
- the targets: values of pred's shape, one-hot rows, or class indices (N,). Values are tried
  first; when the gradient matches finite differences only with one-hot targets (a softmax-CE
  written as ``softmax(x) − y``), one-hot targets are used, and the report says so;
- the domain: predictions must be probabilities when real values give NaN, inf or an exception,
  or when the loss is flat outside (0, 1) (it clips them); the probes then stay 10× inside the
  loss's own clip bound ``np.clip(p, eps, 1 − eps)``.

Torch twin: autograd of the loss run on tensors (nnparity.verify.autograd).
"""
from __future__ import annotations

import numpy as np

from nnparity.verify import probes
from nnparity.verify.calls import array, call
from nnparity.verify.derivatives import required_parameters
from nnparity.verify.finite_diff import scalar_derivative
from nnparity.verify.function_pairs import fresh
from nnparity.verify.load import OpError, OpUnderTest
from nnparity.verify.rebind import with_array_module
from scratch.policy import rel_error

TARGET_NAMES = ("y", "t", "y_true", "ytrue", "y_target", "target", "targets", "label", "labels", "y_label",
                "truth", "ground_truth", "gt", "actual", "y_actual", "expected", "y_expected", "true", "y_train",
                "y_onehot", "onehot", "one_hot", "desired", "d", "y_batch", "yb")
PRED_NAMES = ("y_pred", "ypred", "yhat", "y_hat", "pred", "preds", "prediction", "predictions", "predicted",
              "y_predicted", "output", "outputs", "out", "logits", "scores", "a", "al", "a_l", "p", "probs",
              "prob", "activation", "activations", "y_out", "yp", "x", "z", "h", "s")
DETECT = 1e-5      # agreement with rough finite differences that identifies a target kind (not a verdict)
EDGES = (probes.NEAR_EDGE, 1e-4, 1e-3, 1e-2, 0.05)
TARGET_TEXT = {"values": "values of pred's shape", "onehot": "one-hot rows of pred's shape",
               "indices": "class indices (N,)",
               "distributions": "probability rows of pred's shape (positive, each row summing to 1)"}
DISTRIBUTIONS_NOTE = ("the loss is NaN or inf on real-valued probes and on targets holding 0 (0·log 0): "
                      "both arguments probed as probability rows (positive, each row summing to 1)")


# KL(p‖q), H(p, q): p the true distribution, q the model's (the prediction)
DIVERGENCE_NAMES = ("kl", "kld", "kullback", "divergence", "entropy", "xent")
TEXTBOOK_PAIRS = (("p", "q"),)


def textbook_order(params: list, name: str = "") -> bool:
    """(p, q) in a divergence's name (kl_loss(p, q) is KL(p‖q)): q, the second, is the prediction."""
    folded = name.lower().replace("-", "_")
    return (tuple(p.lower() for p in params[:2]) in TEXTBOOK_PAIRS
            and any(part in folded for part in DIVERGENCE_NAMES))


def target_first(params: list, name: str = "") -> bool | None:
    """True when the names say (target, pred), False for (pred, target), None when they say nothing."""
    if len(params) < 2:
        return None
    if textbook_order(params, name):
        return True
    first, second = params[0].lower(), params[1].lower()
    if (first in TARGET_NAMES and second not in TARGET_NAMES) or (second in PRED_NAMES and first not in PRED_NAMES):
        return True
    if first in PRED_NAMES or second in TARGET_NAMES:
        return False
    return None


def _ordered(fn, first: bool):
    """fn as fn(pred, target) whatever its own order."""
    if not first:
        return fn

    def swapped(pred, target, *args, **kw):
        return fn(target, pred, *args, **kw)
    swapped.__name__ = getattr(fn, "__name__", "loss")
    swapped.__wrapped_loss__ = fn
    return swapped


def _labels(target, xp):
    """Class indices as the array module indexes with (floats in the probes)."""
    return target.long() if hasattr(target, "long") else np.asarray(target).astype(np.int64)


def _value(out):
    return out[0] if isinstance(out, tuple) else out


def _probe(targets: str, domain: str, seed: int, edge: float = probes.NEAR_EDGE):
    p = probes.target_probes(seed, domain, targets, edge)[0]
    return p.x, (p.target.astype(np.int64) if targets == "indices" else p.target)


def _value_at(f, name, pred, target):
    return array(f"{name}(pred, target)", _value(call(f"{name}(pred, target)", f, pred.copy(), target.copy())))


def _runs(f, name: str, seed: int) -> list:
    """Every (targets, domain) the loss returns a finite scalar for; the first error when none."""
    found, first_error = [], None
    for targets, domain in (("values", "real"), ("values", "probability"), ("indices", "real"),
                            ("indices", "probability")):
        if found and (targets == "indices") != (found[0][0] == "indices"):
            break
        pred, target = _probe(targets, domain, seed)
        try:
            out = call(f"{name}(pred, target)", f, pred.copy(), target.copy())
            value = array(f"{name}(pred, target)", _value(out))
        except OpError as err:
            first_error = first_error or err
            continue
        if value.size == 1 and np.isfinite(value).all():
            found.append((targets, domain, isinstance(out, tuple) and len(out) == 2))
        else:
            first_error = first_error or OpError(f"{name}(pred, target) returned shape {value.shape}, "
                                                 f"expected a scalar")
    if not found:
        found = _distribution_run(f, name, seed, first_error)
    return found


def _distribution_run(f, name: str, seed: int, first_error: OpError) -> list:
    """[("distributions", "probability", pair)] when the loss is finite on probability rows (an unclipped
    KL); else the first error, with what to do about it."""
    pred, target = _probe("distributions", "probability", seed)
    try:
        out = call(f"{name}(pred, target)", f, pred.copy(), target.copy())
        value = array(f"{name}(pred, target)", _value(out))
        if value.size == 1 and np.isfinite(value).all():
            return [("distributions", "probability", isinstance(out, tuple) and len(out) == 2)]
    except OpError:
        pass
    raise OpError(f"{first_error}; it was tried on real values, probabilities in (0, 1), class indices and "
                  f"probability rows (positive, summing to 1): give it a domain where it is finite (clip its "
                  f"inputs, e.g. q = np.clip(q, 1e-7, 1)), or say which argument is the prediction with --wrt NAME")


def _clips(f, name: str, seed: int) -> bool:
    """Flat at every prediction outside (0, 1) and not inside: the loss clips p to [eps, 1 − eps]."""
    pred, target = _probe("values", "real", seed)
    base = float(_value_at(f, name, pred, target).reshape(()))
    outside = (pred < 0) | (pred > 1)
    if not outside.any():
        return False
    for i in zip(*np.nonzero(outside)):
        moved = pred.copy()
        moved[i] *= 1.01
        if float(_value_at(f, name, moved, target).reshape(())) != base:
            return False
    inside = pred.copy()
    inside[outside] = 0.5
    return float(_value_at(f, name, inside * 0.99, target).reshape(())) != \
        float(_value_at(f, name, inside, target).reshape(()))


def _edge(f, name: str, targets: str, seed: int) -> float:
    """The probability probes' distance from 0 and 1: 10× inside where the loss still responds."""
    pred, target = _probe(targets, "probability", seed)
    for edge in EDGES:
        near = edge / 10
        for p in (near, 1 - near):
            try:
                a = _value_at(f, name, np.full(pred.shape, p), target)
                b = _value_at(f, name, np.full(pred.shape, p + (near / 2 if p < 0.5 else -near / 2)), target)
            except OpError:
                break
            if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))) or np.array_equal(a, b):
                break
        else:
            return edge
    return EDGES[-1]


def _fit(got, ref) -> float:
    """Relative residual of the best constant fit got ≈ c·ref (0: a constant factor explains got)."""
    use = np.isfinite(got) & np.isfinite(ref)
    g, r = got[use], ref[use]
    if not r.size or not np.any(r):
        return float("inf")
    c = float(np.dot(g, r) / np.dot(r, r))
    return float(np.linalg.norm(g - c * r) / np.linalg.norm(r))


def _choose_targets(f, grad, name: str, kinds: list, domain: str, seed: int):
    """(targets kind, note): the kind whose gradient matches finite differences, else the closest."""
    if len(kinds) == 1:
        return kinds[0], None
    scores = {}
    for kind in kinds:
        pred, target = _probe(kind, domain, seed)
        try:
            got = array(f"{name}'s gradient", call(f"{name}'s gradient", grad, pred.copy(), target.copy()), pred.shape)
        except OpError:
            continue

        def fun():
            v = float(np.asarray(_value(call(f"{name}(pred, target)", f, pred.copy(), target.copy())),
                                 dtype=np.float64).reshape(()))
            return v, abs(v)
        ref = scalar_derivative(fun, pred, domain).value
        use = np.isfinite(ref) & np.isfinite(got)
        if use.sum() >= ref.size // 2 and rel_error(got[use], ref[use]) <= DETECT:
            if kind == kinds[0]:
                return kind, None
            return kind, (f"the gradient matches only with {TARGET_TEXT[kind]} (not with real-valued targets): "
                          f"checked with {TARGET_TEXT[kind]}")
        scores[kind] = _fit(got, ref)
    if not scores:
        return kinds[0], None
    # a constant factor explains both (a slip in the factor): values, the general reading
    best = min(scores, key=lambda k: (max(scores[k], DETECT), kinds.index(k)))
    return best, None


def order_from_wrt(wrt: str, params: list, name: str) -> bool:
    """target_first's answer from ``--wrt NAME`` (the prediction's name); OpError naming the choices."""
    if wrt in params[:2]:
        return wrt == params[1]
    raise OpError(f"--wrt {wrt}: {name} takes ({', '.join(params)}); --wrt names the prediction, the argument "
                  f"the gradient is taken with respect to: one of {', '.join(params[:2])}")


def order_text(name: str, params: list, first: bool | None, wrt: str | None) -> str:
    """How the prediction argument was chosen, for the report."""
    pred = params[1] if first else params[0]
    head = f"argument order: {name}({', '.join(params[:2])}): the prediction {pred} is differentiated"
    if wrt is not None:
        return head + " (given by --wrt)"
    if first and textbook_order(params, name):
        return head + f" (read from the names: {params[0]}, {params[1]} as in KL({params[0]}‖{params[1]}), " \
                      f"{params[1]} the model's distribution; --wrt {params[0]} for the other)"
    if first:
        return head + " (read from the names: it takes the target first)"
    if first is None:
        return head + f" (the first argument: the names do not say; --wrt {params[1]} for the other)"
    return head + " (read from the names)"


def loss_op(f, target: str, find_grad, seed: int = 0, wrt: str | None = None) -> OpUnderTest:
    """The loss as an op; ``find_grad()`` gives (gradient function, how found) when f returns no pair;
    ``wrt``: the name of the prediction argument (default: read from the names)."""
    name = getattr(f, "__name__", "loss")
    params = required_parameters(f)
    first = order_from_wrt(wrt, params, name) if wrt is not None else target_first(params, name)
    loss = _ordered(f, bool(first))
    runs = _runs(loss, name, seed)
    targets, domain, pair = runs[0]
    order_note = order_text(name, params, first, wrt)
    clip_note = None
    if domain == "real" and targets != "indices" and _clips(loss, name, seed):
        domain = "probability"
        clip_note = "predictions are probabilities: the loss is flat outside (0, 1) (it clips them)"
    grad, how = (None, "it returns (value, gradient)") if pair else find_grad()
    gname = getattr(grad, "__name__", name)
    if pair:
        gradient = lambda p, t: loss(p, t)[1]  # noqa: E731
    else:
        if not callable(grad) or len(required_parameters(grad)) != 2:
            raise OpError(f"{gname}: a loss gradient takes (pred, target) — e.g.  def mse(pred, target): "
                          f"return np.mean((pred - target) ** 2)  |  def mse_grad(pred, target): "
                          f"return 2 * (pred - target) / pred.size")
        gfirst = None if wrt is not None else target_first(required_parameters(grad), name)
        gradient = _ordered(grad, first if gfirst is None else gfirst)
    kinds = ["values", "onehot"] if targets == "values" else [targets]
    edge = _edge(loss, name, kinds[0], seed) if domain == "probability" else probes.NEAR_EDGE
    targets, kind_note = _choose_targets(loss, gradient, name, kinds, domain, seed)
    pred, tgt = _probe(targets, domain, seed, edge)
    what = f"{name}(pred, target)[1]" if pair else f"{gname}(pred, target)"
    array(what, call(what, gradient, pred.copy(), tgt.copy()), pred.shape)
    labels = targets == "indices"

    class LossFunction:
        kind = "loss"

        def __init__(self, xp=np):
            self.xp = xp

        def forward(self, pred, tgt):
            self.pred, self.target = pred, _labels(tgt, self.xp) if labels else tgt
            out = _ordered(with_array_module(f, self.xp), bool(first))(fresh(self.pred), fresh(self.target))
            self.grad = out[1] if pair else None
            return _value(out)

        def backward(self):
            if pair:
                return self.grad
            return gradient(fresh(self.pred), fresh(self.target))

    LossFunction.domain = domain
    LossFunction.targets = targets
    LossFunction.edge = edge
    if targets == "distributions":
        LossFunction.probe_text = probes.DISTRIBUTION_TEXT
    LossFunction.__qualname__ = LossFunction.__name__ = name
    notes = [f"form: loss function {name}" + ("" if pair else f" and its gradient {gname}") + f" ({how})"]
    spread_note = DISTRIBUTIONS_NOTE if targets == "distributions" else None
    notes += [n for n in (order_note, clip_note, spread_note, kind_note) if n]
    notes.append("targets: " + TARGET_TEXT[targets]
                 + ("; predictions are probabilities in (0, 1)" if domain == "probability" else "")
                 + (f", probed at least {edge:g} from 0 and 1" if domain == "probability" and edge != probes.NEAR_EDGE
                    else ""))
    pred_name = params[1] if first else (params[0] if params else None)
    return OpUnderTest(LossFunction, "loss", target, notes=notes, input_name=pred_name, labels=labels)


def with_index_targets(op: OpUnderTest) -> OpUnderTest:
    """A loss class whose forward raises on float targets of pred's shape but takes class indices
    (N,): the op with integer indices passed to it, and the report saying why; else the op as given."""
    if op.kind != "loss" or getattr(op.cls, "targets", None) is not None:
        return op
    shown = f"{op.cls.__name__}.forward(pred, target)"
    pred, values = _probe("values", "real", 0)
    try:
        array(shown, call(shown, op.new().forward, pred.copy(), values.copy()))
        return op
    except OpError as err:
        refused = str(err)
    pred, indices = _probe("indices", "real", 0)
    try:
        value = array(shown, call(shown, op.new().forward, pred.copy(), indices.copy()))
    except OpError:
        return op
    if value.size != 1:
        return op

    def forward(self, pred, target, *args, **kwargs):
        return op.cls.forward(self, pred, _labels(target, getattr(self, "xp", np)), *args, **kwargs)

    cls = type(op.cls.__name__, (op.cls,), {"forward": forward, "targets": "indices", "__module__": op.cls.__module__})
    cls.__qualname__ = op.cls.__qualname__
    note = f"targets: class indices (N,), as integers — with float targets of pred's shape {refused}"
    return OpUnderTest(cls, "loss", op.target, notes=op.notes + [note], input_name=op.input_name, labels=True)
