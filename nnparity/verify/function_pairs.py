"""A function and its hand-written derivative, ``f(z)`` and ``df``, checked as an op.

How the pair is read (on one batch of random z, before any check):

- *mode*: ``elementwise`` (f(z)[:, 0] depends on column 0 only), ``rows`` (each row on its own),
  ``row`` (f takes one 1-D row: a tutorial softmax; it is run row by row), or ``batch-wide``
  (a row of f(z) changes with the other rows: a softmax normalising over the whole array, which is
  reported as a failed check);
- the derivative's form (nnparity.verify.derivatives): elementwise, Jacobian or VJP;
- the *convention*: df called with z, or with the activation a = f(z) (``s*(1-s)`` vs
  ``a*(1-a)``). Both are tried against finite differences; the one that matches is used and
  reported. A convention declared by ``convention=`` or by the parameter's name (``a``, ``s``,
  ``out`` for a; ``z``, ``logits`` for z) that the values contradict is the z-for-a confusion,
  a failed check.
"""
from __future__ import annotations

import numpy as np

from nnparity.verify import probes
from nnparity.verify.calls import array, call
from nnparity.verify.derivatives import FORM_TEXT, Derivative, DerivativeShapeError, keyword_defaults, vjp
from nnparity.verify.finite_diff import elementwise_derivative, jacobian_rows
from nnparity.verify.load import OpError, OpUnderTest
from nnparity.verify.rebind import with_array_module
from nnparity.verify.report import Check
from scratch.policy import FD_PRECISIONS, fd_tolerance, rel_error

DETECT = 1e-5     # agreement with rough finite differences that identifies a convention (not a verdict)
CONVENTION_TEXT = {"z": "derivative of a = f(z), expressed in z: call it with z",
                   "a": "derivative of a = f(z), expressed in a: call it with the activation"}


def fresh(value):
    """A copy for user code, which may write into its argument (x[x < 0] = 0); a tensor keeps its graph."""
    return value.clone() if hasattr(value, "clone") else np.array(value, copy=True)


def run_forward(f, mode: str, z, xp=np, **kw):
    """f over a batch as the mode reads it (row by row for a one-row function), on a copy of z."""
    fn = with_array_module(f, xp)
    z = fresh(z)
    if mode == "row":
        return xp.stack([fn(row, **kw) for row in z])
    return fn(z, **kw)


def run_backward(d: Derivative, mode: str, g, arg, **kw) -> tuple[np.ndarray, str]:
    """(Jᵀ·g for the batch, the derivative's form), on copies of g and arg."""
    g, arg = fresh(g), fresh(arg)
    if mode == "row":
        rows = [vjp(d, g[i], arg[i], **kw) for i in range(len(g))]
        return np.stack([r[0] for r in rows]), rows[0][1]
    return vjp(d, g, arg, **kw)


def read_mode(f, name: str, z: np.ndarray, kw: dict) -> str:
    """elementwise | rows | batch-wide | row (f refuses a 2-D batch but takes a 1-D row)."""
    try:
        full = array(f"{name} on a {z.shape} batch of random z", call(name, f, z.copy(), **kw), z.shape)
    except OpError as batch_error:
        try:
            array(f"{name} on one row", call(name, f, z[0].copy(), **kw), z[0].shape)
        except OpError:
            raise batch_error from None
        return "row"
    col = array(name, call(name, f, z[:, :1].copy(), **kw), (z.shape[0], 1))
    if np.allclose(full[:, :1], col, rtol=1e-12, atol=1e-300, equal_nan=True):
        return "elementwise"
    rows = np.concatenate([array(name, call(name, f, z[i:i + 1].copy(), **kw), (1, z.shape[1]))
                           for i in range(z.shape[0])])
    return "rows" if np.allclose(full, rows, rtol=1e-12, atol=1e-300, equal_nan=True) else "batch-wide"


def reference_vjp(f, mode: str, z, g, kw, precision: str = "float64") -> np.ndarray:
    """Rough finite-difference Jᵀ·g (NaN where it is not to be trusted): for reading the form only."""
    forward = lambda t: run_forward(f, mode, t, **kw)  # noqa: E731
    if mode == "elementwise":
        fd = elementwise_derivative(forward, z, precision=precision)
        return fd.value * g
    return np.einsum("nkc,nk->nc", jacobian_rows(forward, z.copy(), precision=precision), g)


def pair_precision(f, mode: str, z, kw) -> str:
    """float64, or float32 where f computes in float32 (its finite differences are read at that precision)."""
    try:
        dtype = np.asarray(call("forward", run_forward, f, mode, z, **kw)).dtype
    except OpError:
        return "float64"
    return dtype.name if dtype.kind == "f" and dtype.name in FD_PRECISIONS else "float64"


def try_convention(f, d, mode, z, g, kw, dkw, convention):
    """(Jᵀ·g, form) with df called with z or with a = f(z); the OpError when the call fails."""
    try:
        a = array("forward", call("forward", run_forward, f, mode, z, **kw))
        arg = z if convention == "z" else a
        what = f"{d.name} called with {'z' if convention == 'z' else 'the activation'}"
        return call(what, run_backward, d, mode, g, arg, **dkw)
    except DerivativeShapeError as err:
        return OpError(f"{d.name}: {err}")
    except OpError as err:
        return err


def matches(got, ref, detect: float = DETECT) -> bool:
    use = np.isfinite(ref) & np.isfinite(got)
    return bool(use.sum() >= ref.size // 2) and rel_error(got[use], ref[use]) <= detect


def read_pair(f, fname: str, d: Derivative, kw: dict, dkw: dict, declared: str | None, seed: int = 0):
    """(mode, convention, form, notes, confusion text or None) for the pair, or OpError."""
    z = probes.rowwise_probes(seed)[0].x
    g = probes.upstream_gradient(z.shape, seed, "detect")
    mode = read_mode(f, fname, z, kw)
    tries = {c: try_convention(f, d, mode, z, g, kw, dkw, c) for c in ("z", "a")}
    if mode != "elementwise" and all(isinstance(t, OpError) for t in tries.values()):
        try:
            call(fname, f, z[0].copy(), **kw)
            row_tries = {c: try_convention(f, d, "row", z, g, kw, dkw, c) for c in ("z", "a")}
        except OpError:
            row_tries = {}
        if row_tries and not all(isinstance(t, OpError) for t in row_tries.values()):
            mode, tries = "row", row_tries
    worked = {c: t for c, t in tries.items() if not isinstance(t, OpError)}
    if not worked:
        raise tries["z"]
    precision = pair_precision(f, mode, z, kw)
    detect = max(DETECT, fd_tolerance(precision))
    ref = reference_vjp(f, mode, z, g, kw, precision)
    matched = [c for c, (got, _) in worked.items() if matches(got, ref, detect)]
    simple = [c for c, (got, _) in worked.items() if not matched and simply_off(got, ref, g, detect)]
    return (mode, *_convention(d, matched, worked, declared, simple))


def simply_off(got, ref, g, detect: float = DETECT) -> bool:
    """got is ref times a constant, or its derivative ref/g plus a constant: a slip in this convention."""
    use = np.isfinite(ref) & np.isfinite(got)
    if use.sum() < ref.size // 2:
        return False
    got, ref, g = got[use], ref[use], g[use]
    if np.any(ref):
        c = float(np.dot(got, ref) / np.dot(ref, ref))
        if c != 0 and rel_error(got, c * ref) <= detect:
            return True
    offset = (got - ref) / g
    return bool(np.ptp(offset) <= detect * max(1.0, float(np.abs(offset).max())))


def _convention(d: Derivative, matched: list, worked: dict, declared: str | None, simple: list = ()):
    """(convention used, form, notes, confusion) from which conventions reproduce the derivative."""
    notes, confusion = [], None
    if len(matched) == 2:
        use = declared or "z"
        notes.append("convention: either — the derivative gives the same values called with z and with "
                     "a = f(z) on these probes; checked as called with " + ("z" if use == "z" else "the activation"))
    elif len(matched) == 1:
        use = matched[0]
        notes.append(f"convention: {CONVENTION_TEXT[use]}")
        if declared and declared != use:
            confusion = _confusion_text(d, use, declared)
            use = declared
    elif len(simple) == 1 and not declared:
        use = simple[0]
        notes.append("convention: matches neither z nor a = f(z); called with " + ("z" if use == "z" else "the activation")
                     + " it is off by a constant factor or a constant term only: checked so")
    else:
        use = declared or next(iter(worked))
        notes.append("convention: matches neither z nor a = f(z); checked as called with "
                     + ("z" if use == "z" else "the activation") + (" (as declared)" if declared else ""))
    form = worked[use][1] if use in worked else next(iter(worked.values()))[1]
    notes.append(f"derivative form: {FORM_TEXT[form]}")
    return use, form, notes, confusion


def _confusion_text(d: Derivative, actual: str, declared: str) -> str:
    said = {"z": "z", "a": "the activation a = f(z)"}
    return (f"z-for-a confusion: {d.name}({d.arg}) is the derivative expressed in {actual} "
            f"(right only when called with {said[actual]}), but it is declared to be called with "
            f"{said[declared]}: called so, it computes the wrong values")


MODE_TEXT = {"elementwise": "elementwise", "rows": "row-wise over a batch (N, C)",
             "row": "one row at a time (it takes a 1-D row; run row by row)",
             "batch-wide": "not row-wise: a row of f(z) changes with the other rows"}


def _adapter(f, d: Derivative, mode: str, convention: str, kw: dict, dkw_names: set):
    """A class in the op form (forward/backward) running the pair."""

    class FunctionPair:
        kind = "activation" if mode == "elementwise" else "vector"
        elementwise = mode == "elementwise"
        params = dict(kw)

        def __init__(self, xp=np, **params):
            self.xp, self.kw = xp, params

        def forward(self, z):
            self.z = z
            self.a = run_forward(f, mode, z, self.xp, **self.kw)
            return self.a

        def backward(self, grad_out):
            arg = self.z if convention == "z" else self.a
            dkw = {k: v for k, v in self.kw.items() if k in dkw_names}
            return run_backward(d, mode, np.asarray(grad_out), np.asarray(arg, dtype=np.float64), **dkw)[0]

    FunctionPair.__qualname__ = FunctionPair.__name__ = f"{getattr(f, '__name__', 'f')}+{d.name}"
    return FunctionPair


def batch_wide_check(f, kw: dict, seed: int):
    """The failed check of a forward that normalises over the whole batch instead of each row."""
    z = probes.rowwise_probes(seed)[0].x
    full = np.asarray(call("forward", f, z.copy(), **kw), dtype=np.float64)
    rows = np.concatenate([np.asarray(call("forward", f, z[i:i + 1].copy(), **kw), dtype=np.float64)
                           for i in range(len(z))])
    err = rel_error(full, rows)
    text = ("the forward normalises over the whole batch, not each row: row i of f(z) changes with the other "
            "rows (a softmax summing over the whole array? sum over axis=-1 with keepdims=True)")
    return Check(name="forward row by row vs the whole batch", wrt="output", reference="forward row by row",
                 tol=0.0, ok=False, error=err, groups={"random": err}, diagnosis=text, compared=int(z.size))


def review(mode: str, confusion: str | None, f, kw: dict, seed: int):
    """The review hook: the batch-wide forward's check first, the confusion named on failed checks."""

    def hook(evaluation, checks):
        if confusion:
            for c in checks:
                if not c.ok and c.checked:
                    c.diagnosis = confusion
        if mode == "batch-wide":
            extra = batch_wide_check(f, kw, seed)
            for c in checks:
                if not c.ok and c.checked:
                    c.diagnosis = extra.diagnosis
            checks = [extra] + checks
        return checks
    return hook


def pair_ops(f, d: Derivative, target: str, how: str, convention: str | None = None, seed: int = 0) -> list:
    """The pair as ops: one per value of f's keyword parameters (defaults, then a second value)."""
    if convention not in (None, "z", "a"):
        raise OpError(f"convention: unknown {convention!r}; expected z or a")
    fname = getattr(f, "__name__", "f")
    defaults = keyword_defaults(f)
    dkw_names = set(keyword_defaults(d.fn)) & set(defaults)
    variants = [defaults] + ([{k: _second(v) for k, v in defaults.items()}] if defaults else [])
    ops = []
    for kw in variants:
        declared = convention or d.declared()
        mode, use, form, notes, confusion = read_pair(f, fname, d, kw, {k: kw[k] for k in dkw_names}, declared, seed)
        cls = _adapter(f, d, mode, use, kw, dkw_names)
        head = [f"form: function pair {fname} and its derivative {d.name} ({how})",
                f"mode: {MODE_TEXT[mode]}"] if not ops else []
        if kw:
            head.append("parameters: " + ", ".join(f"{k}={v:g}" for k, v in kw.items())
                        + (" (the defaults)" if kw is defaults else " (a second value)"))
        if set(defaults) - dkw_names and kw is defaults:
            head.append(f"note: {d.name} takes no {', '.join(sorted(set(defaults) - dkw_names))}: "
                        f"it is called without them")
        op = OpUnderTest(cls, cls.kind, target, notes=head + notes, input_name="z")
        op.review = review(mode, confusion, f, kw, seed)
        ops.append(op)
    return ops


def _second(value):
    """A second value for a keyword parameter: 3× the default (0.5 for a default of 0)."""
    return 3 * value if value else 0.5
