"""torch's own functions as references for course layer functions named after a layer
(nnparity.verify.layer_functions): autograd of the twin on the same inputs checks every gradient
the backward returns, kinks included.

    affine           F.linear(x.reshape(N, -1), w.T, b)     temporal_affine  F.linear(x, w.T, b)
    conv             F.conv2d(x, w, b, stride, padding=pad) max_pool         F.max_pool2d
    batchnorm        F.batch_norm(training=True)            layernorm        F.layer_norm
    word_embedding   F.embedding                            rnn_step / rnn   torch.rnn_tanh_cell
    lstm_step / lstm torch.lstm_cell                        temporal_softmax_loss  F.cross_entropy
    dropout          x · m, m the forward's own mask and scale read from forward(ones): torch's
                     dropout draws its own mask, so the twin applies the user's

The course's LSTM gate order is (i, f, o, g), torch's (i, f, g, o): the weights' columns are
reordered, the maths is torch's. A twin is used only where it reproduces the user's forward on
the example inputs (else a layer named conv that is not a convolution would be judged against
one); the report says which twin ran, or why none did. Batchnorm's running stats, updated in
bn_param by the forward, are checked against F.batch_norm's own update (course momentum m is
torch's 1 − m; the course keeps the biased batch variance, torch the unbiased: either is
accepted and the report says which).
"""
from __future__ import annotations

import inspect

import numpy as np
import torch
import torch.nn.functional as F

from scratch.policy import TOLERANCE
from nnparity.verify.course_inputs import layer_kind
from nnparity.verify.calls import call
from nnparity.verify.diagnosis import GroupData, compare
from nnparity.verify.layer_functions import join
from nnparity.verify.load import OpUnderTest
from nnparity.verify.report import Check

TORCH_TOLERANCE = TOLERANCE["float64"]


def _t(value, dtype=torch.float64):
    return value if isinstance(value, torch.Tensor) else torch.as_tensor(np.asarray(value), dtype=dtype)


def _gates(w, hidden: int):
    """Course gate columns (i, f, o, g) in torch's order (i, f, g, o)."""
    return torch.cat([w[..., :2 * hidden], w[..., 3 * hidden:], w[..., 2 * hidden:3 * hidden]], dim=-1)


def _rnn_cell(x, h, wx, wh, b):
    return torch.rnn_tanh_cell(x, h, wx.T, wh.T, b, torch.zeros_like(b))


def _lstm_cell(x, h, c, wx, wh, b):
    hidden = h.shape[-1]
    return torch.lstm_cell(x, (h, c), _gates(wx, hidden).T, _gates(wh, hidden).T, _gates(b, hidden),
                           torch.zeros_like(b))


def _over_time(step, x, state):
    hs = []
    for t in range(x.shape[1]):
        state = step(x[:, t, :], state)
        hs.append(state[0])
    return torch.stack(hs, dim=1)


def _batch_norm(x, gamma, beta, bn_param):
    mean = bn_param.get("running_mean", np.zeros(x.shape[1]))
    var = bn_param.get("running_var", np.zeros(x.shape[1]))
    return F.batch_norm(x, _t(mean).clone(), _t(var).clone(), gamma, beta, training=bn_param.get("mode") != "test",
                        momentum=1 - bn_param.get("momentum", 0.9), eps=bn_param.get("eps", 1e-5))


def _mask(pair, x):
    """The user's dropout mask and scale: its forward applied to ones of x's shape."""
    floats = {pair.differentiated[0]: np.ones(tuple(x.shape))}
    return _t(np.asarray(pair.run(floats)[0][0], dtype=np.float64))


def _temporal_loss(x, y, mask):
    n, steps, v = x.shape
    losses = F.cross_entropy(x.reshape(n * steps, v), _t(y, torch.long).reshape(-1), reduction="none")
    return (losses * _t(mask).reshape(-1).to(x.dtype)).sum() / n


TWINS = {
    "affine": ("F.linear", lambda p, x, w, b: [F.linear(x.reshape(x.shape[0], -1), w.T, b)]),
    "temporal_affine": ("F.linear", lambda p, x, w, b: [F.linear(x, w.T, b)]),
    "conv": ("F.conv2d", lambda p, x, w, b, cp: [F.conv2d(x, w, b, stride=cp["stride"], padding=cp["pad"])]),
    "max_pool": ("F.max_pool2d", lambda p, x, pp: [F.max_pool2d(x, (pp["pool_height"], pp["pool_width"]),
                                                                stride=pp["stride"])]),
    "batchnorm": ("F.batch_norm", lambda p, x, g, b, bn: [_batch_norm(x, g, b, bn)]),
    "spatial_batchnorm": ("F.batch_norm", lambda p, x, g, b, bn: [_batch_norm(x, g, b, bn)]),
    "layernorm": ("F.layer_norm", lambda p, x, g, b, ln: [F.layer_norm(x, (x.shape[-1],), g, b, ln.get("eps", 1e-5))]),
    "word_embedding": ("F.embedding", lambda p, x, w: [F.embedding(_t(x, torch.long), w)]),
    "rnn_step": ("torch.rnn_tanh_cell", lambda p, x, h, wx, wh, b: [_rnn_cell(x, h, wx, wh, b)]),
    "rnn": ("torch.rnn_tanh_cell", lambda p, x, h0, wx, wh, b: [
        _over_time(lambda xt, s: (_rnn_cell(xt, s[0], wx, wh, b),), x, (h0,))]),
    "lstm_step": ("torch.lstm_cell", lambda p, x, h, c, wx, wh, b: list(_lstm_cell(x, h, c, wx, wh, b))),
    "lstm": ("torch.lstm_cell", lambda p, x, h0, wx, wh, b: [
        _over_time(lambda xt, s: _lstm_cell(xt, s[0], s[1], wx, wh, b), x, (h0, torch.zeros_like(h0)))]),
    "dropout": ("x · mask", lambda p, x, dp: [x * _mask(p, x)]),
    "temporal_softmax_loss": ("F.cross_entropy", lambda p, x, y, mask: [_temporal_loss(x, y, mask)]),
}
HOW = {"rnn": "torch.rnn_tanh_cell at each of the T steps",
       "lstm": "torch.lstm_cell at each of the T steps, the course's gate columns (i, f, o, g) reordered to "
               "torch's (i, f, g, o)",
       "lstm_step": "the course's gate columns (i, f, o, g) reordered to torch's (i, f, g, o)",
       "dropout": "x · m with m your forward's own mask and scale, read from forward(ones) (torch's dropout "
                  "draws its own mask)",
       "temporal_softmax_loss": "F.cross_entropy per step, summed over the steps where mask holds, ÷N"}


def twin_module(pair, fn):
    """module(x, **parameters) -> the twin's output in the layout of the op's forward."""
    diff = pair.differentiated

    def module(x, **params):
        floats = {diff[0]: x, **{i: params[pair.names[i]] for i in diff[1:]}}
        args = [_t(v) if i in floats else v for i, v in enumerate(pair.arguments(floats))]
        outs = fn(pair, *args)
        return outs[0].reshape(1) if pair.backward is None else join(outs, torch)
    return module


def _reproduces(pair, module) -> float:
    """The twin's largest relative difference from the user's forward on the example inputs."""
    floats = {i: pair.values[i] for i in pair.differentiated}
    mine = np.concatenate([np.asarray(o, dtype=np.float64).reshape(-1) for o in pair.run(floats)[0]])
    params = {pair.names[i]: _t(pair.values[i]) for i in pair.differentiated[1:]}
    theirs = module(_t(pair.values[pair.differentiated[0]]), **params).detach().numpy().reshape(-1)
    if mine.shape != theirs.shape:
        return float("inf")
    return float(np.max(np.abs(mine - theirs), initial=0.0) / max(1.0, float(np.max(np.abs(theirs), initial=0.0))))


def attach_course_twin(op: OpUnderTest) -> None:
    """Give a course layer the torch function of its name as ``torch_module``, if it reproduces the forward."""
    pair = getattr(op.cls, "course", None)
    if pair is None or hasattr(op.cls, "torch_module"):
        return
    kind = layer_kind(pair.base)
    if kind not in TWINS:
        if kind != "relu":     # relu: torch.nn.ReLU by name (twins.py)
            op.notes.append(f"torch twin: none for {pair.base!r} (known: {', '.join(TWINS)}); references are "
                            f"autograd of your forward on tensors where it runs, and finite differences")
        return
    label, fn = TWINS[kind]
    takes = len(inspect.signature(fn).parameters) - 1
    if takes != len(pair.values):
        op.notes.append(f"torch twin {label}: not applicable, it takes {takes} inputs and {pair.fname} "
                        f"{len(pair.values)}; references are your forward on tensors where it runs, and finite "
                        f"differences")
        return
    module = twin_module(pair, fn)
    try:
        differs = _reproduces(pair, module)
    except Exception as err:
        op.notes.append(f"torch twin {label}: not applicable to these inputs ({type(err).__name__}: "
                        f"{str(err).splitlines()[0] if str(err) else ''})")
        return
    if not differs <= 1e-10:
        op.notes.append(f"torch twin {label}: not used, your forward computes something else on the example "
                        f"inputs (largest difference {differs:.1e}); gradients are checked against your own forward")
        return
    op.cls.torch_module = classmethod(lambda cls, **p: module)
    op.cls.twin_label = label
    if kind in HOW:
        op.notes.append(f"torch twin {label}: {HOW[kind]}")
    if kind in ("batchnorm", "spatial_batchnorm"):
        _add_running_stats(op, pair)


# ------------------------------------------------------------------- batchnorm running stats


def _bn_position(pair) -> int | None:
    return next((i for i, v in enumerate(pair.values) if isinstance(v, dict) and "momentum" in v
                 or pair.names[i] == "bn_param" and isinstance(v, dict)), None)


def _running_stats(pair, where: int):
    """(the user's bn_param after one forward, torch's running mean, unbiased and biased var)."""
    args = pair.arguments({})
    call(f"{pair.fname} (running stats)", pair.forward, *args)
    mine, start = args[where], pair.values[where]
    x, gamma, beta = (_t(pair.values[i]) for i in pair.differentiated[:3])
    channels = x.shape[1]
    mean = _t(start.get("running_mean", np.zeros(channels))).clone()
    var = _t(start.get("running_var", np.zeros(channels))).clone()
    keep = start.get("momentum", 0.9)
    F.batch_norm(x, mean, var, gamma, beta, training=True, momentum=1 - keep, eps=start.get("eps", 1e-5))
    n = x.numel() // channels
    old = np.asarray(start.get("running_var", np.zeros(channels)), dtype=np.float64)
    biased = keep * old + (var.numpy() - keep * old) * (n - 1) / n
    return mine, mean.numpy(), var.numpy(), biased


def _stat_check(name: str, got, expected, what: str) -> Check:
    cmp = compare([GroupData("random", np.asarray(got, dtype=np.float64).reshape(np.shape(expected)), expected)],
                  TORCH_TOLERANCE, kind="forward", wrt=name)
    diagnosis = None if cmp.ok else f"bn_param['{name}'] after one forward differs from F.batch_norm's {what}: " \
                                    f"{cmp.diagnosis}"
    return Check(name=f"bn_param {name} vs F.batch_norm", wrt=name, reference="F.batch_norm running stats",
                 tol=TORCH_TOLERANCE, ok=cmp.ok, error=cmp.error, groups=cmp.groups, worst=cmp.worst,
                 diagnosis=diagnosis, compared=cmp.compared, checked=True)


def _add_running_stats(op: OpUnderTest, pair) -> None:
    where = _bn_position(pair)
    if where is None or pair.values[where].get("mode") != "train":
        op.notes.append("running stats: not checked (no bn_param in train mode among the inputs)")
        return
    mine, mean, unbiased, biased = _running_stats(pair, where)
    if not all(k in mine for k in ("running_mean", "running_var")):
        op.notes.append("running stats: not checked (the forward left no running_mean and running_var in bn_param)")
        return
    got_var = np.asarray(mine["running_var"], dtype=np.float64).reshape(-1)
    course = np.allclose(got_var, biased, rtol=1e-10, atol=0) or not np.allclose(got_var, unbiased, rtol=1e-10, atol=0)
    expected_var, what = (biased, "update (biased batch variance, the course's)") if course else \
        (unbiased, "update (unbiased batch variance, torch's)")
    checks = [_stat_check("running_mean", mine["running_mean"], mean, "update (momentum m: m·old + (1 − m)·batch)"),
              _stat_check("running_var", mine["running_var"], expected_var, what)]
    op.notes.append(f"running stats: bn_param's running_mean and running_var after one forward vs F.batch_norm's "
                    f"(momentum {pair.values[where].get('momentum', 0.9)}; variance {what.split('(')[1][:-1]})")
    review = op.review

    def with_stats(evaluation, found):
        return (review(evaluation, found) if review else found) + checks
    op.review = with_stats
