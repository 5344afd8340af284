"""Find the first wrong layer: a network's gradients compared with torch's, from the output back.

Backprop runs the layers in reverse, so a wrong backward in layer k corrupts every gradient below
it while everything above still agrees. Comparing in backprop order —

    dL/d(output) (the loss), then for i = L−1 … 0:  dL/dz_i (activation i), each parameter's
    gradient of layer i, dL/d(input of layer i)

— the first disagreement names the culprit: the loss, activation i, or layer i's backward. A
block is opened: a residual block's body layers and projection, a transformer block's layernorms,
attention and MLP, each as above, and its joins where a skip's gradient is added back (ops.py). Every
layer kind is compared this way.

The scratch side runs the network's own forward and backward (a spec's custom activation by import
path, or a Network whose layers or ops the caller replaced, e.g. a user subclass of a scratch
layer), each op's output and the gradients it took and gave recorded as they pass; the torch side
is the spec's torch twin (a user op's ``torch_module()``), differentiated by autograd, each
module's output and input gradient retained by hooks. Forward values are compared first: a twin
that computes a different function makes the gradients incomparable.
"""
from __future__ import annotations

import functools
import inspect
import math
import time
import warnings
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from nnparity.verify.autograd.attention_blocks import in_projection_blocks
from nnparity.verify.autograd.ops import (Entry, Op, backward_order, forward_order, join_message, network_ops,
                                          parameter_names, tensor_name, walk)
from nnparity.verify.child import isolated
from nnparity.verify.diagnosis import GroupData, compare
from nnparity.verify.errors import OpError
from nnparity.verify.load import layer_gradients
from nnparity.verify.time_limit import SPEC_TIME_LIMIT, ProbeTimeout, checked_limit, time_limit
from scratch.errors import SpecError
from scratch.limits import check_memory
from scratch.network import Network, build_loss as scratch_loss
from scratch.norm_kinds import check_batch_rows
from scratch.policy import TOLERANCE, gradient_scale, json_safe, rel_error
from scratch.spec import Spec, load_spec
from torch_ref.check import MODES, validated_batch
from torch_ref.model import TORCH_DTYPES, build, build_loss as torch_loss, tensor_to_scratch


@dataclass
class Row:
    """One compared tensor."""

    name: str                 # e.g. layers.2.dL/dz, layers.3.body.1.dL/dW
    layer: int | None         # the top-level layer it belongs to; None: the loss
    part: str                 # loss | activation | the layer's kind (dense, conv2d, ...) | residual | forward
    error: float              # norm-relative error against torch
    ok: bool


@dataclass
class LayerwiseReport:
    """Every gradient from the output back, and the first layer whose gradient disagrees."""

    activations: list[str]            # each layer's activation, by spec name
    loss: str
    dtype: str
    tol: float
    kinds: list[str] = field(default_factory=list)   # each layer's kind
    mode: str = "train"
    forward: list[Row] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)
    first_wrong: dict | None = None   # layer, path, part, tensor, message, diagnosis
    findings: list[str] = field(default_factory=list)  # warnings the scratch network raised

    @property
    def ok(self) -> bool:
        return self.first_wrong is None

    def to_json(self) -> dict:
        data = asdict(self)
        data["ok"] = self.ok
        return json_safe(data)

    def format(self) -> str:
        n = len(self.activations)
        shown = [act if kind == "dense" else (kind if act == "identity" else f"{kind}+{act}")
                 for kind, act in zip(self.kinds or ["dense"] * n, self.activations)]
        mode = "" if all(k == "dense" for k in self.kinds) else f", {self.mode} mode"
        width = max([28] + [len(row.name) for row in self.rows])
        lines = [f"nnparity verify --spec: {n} layers ({', '.join(shown)}), loss {self.loss}, "
                 f"{self.dtype}{mode}, tol {self.tol:.0e}",
                 "gradients from the output back, scratch against torch autograd:",
                 f"  {'tensor':<{width}} {'rel err':>9}  result"]
        first = self.first_wrong["tensor"] if self.first_wrong else None
        for row in self.rows:
            mark = "  <- first disagreement" if row.name == first else ""
            lines.append(f"  {row.name:<{width}} {row.error:9.1e}  {'pass' if row.ok else 'FAIL'}{mark}")
        bad_forward = [r for r in self.forward if not r.ok]
        if bad_forward:
            lines.append(f"  forward: {bad_forward[0].name} differs (rel err {bad_forward[0].error:.1e})")
        lines += [f"  finding: {f}" for f in self.findings]
        if self.ok:
            lines.append("PASS: every layer's gradient agrees with torch")
        else:
            lines.append(f"FAIL: {self.first_wrong['message']}")
            if self.first_wrong.get("diagnosis"):
                lines.append(f"diagnosis: {self.first_wrong['diagnosis']}")
        return "\n".join(lines)


# ------------------------------------------------------------------------------- recording passes


def _host(value):
    return None if value is None else np.array(value, copy=True)


def _takes_input_grad(backward) -> bool:
    try:
        parameters = inspect.signature(backward).parameters.values()
    except (TypeError, ValueError):
        return True
    return any(p.name == "input_grad" or p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL) for p in parameters)


@contextmanager
def _recording(ops: list[Op]):
    """Each scratch op's forward output, and the gradient its backward took and gave, recorded under
    (path, "layer" | "act") while the network runs its own passes; the ops' methods restored after."""
    seen = {"forward": {}, "grad_out": {}, "grad_in": {}}
    patched = []

    def wrap(obj, key):
        forward, backward = obj.forward, obj.backward

        def recorded_forward(*args, **kwargs):
            out = forward(*args, **kwargs)
            seen["forward"][key] = _host(out)
            return out

        takes_flag = _takes_input_grad(backward)

        def recorded_backward(grad, *args, **kwargs):
            seen["grad_out"][key] = _host(grad)
            if not takes_flag:    # a user's layer written as backward(grad_out): it always gives dL/dx
                args, kwargs = (), {}
            got = backward(grad, *args, **kwargs)
            seen["grad_in"][key] = _host(got)
            return got

        # set on the instance itself, past a __setattr__ of its own (a user op's wrapper forwards it)
        had = {name: name in vars(obj) for name in ("forward", "backward")}
        object.__setattr__(obj, "forward", recorded_forward)
        object.__setattr__(obj, "backward", recorded_backward)
        patched.append((obj, had, forward, backward))

    try:
        for op in walk(ops):
            wrap(op.layer, (op.path, "layer"))
            if op.scratch_act is not None:
                wrap(op.scratch_act, (op.path, "act"))
        yield seen
    finally:
        for obj, had, forward, backward in reversed(patched):
            for name, value in (("forward", forward), ("backward", backward)):
                if had[name]:
                    object.__setattr__(obj, name, value)
                else:
                    object.__delattr__(obj, name)


def _scratch_pass(net: Network, ops: list[Op], loss, x, y) -> tuple[dict, dict]:
    """The network's own forward and backward: (forward outputs, gradients), keyed as _torch_pass's."""
    with _recording(ops) as seen:
        value = loss.forward(net.forward(x), y)
        del value
        grad_output = _host(loss.backward())
        net.backward(grad_output)
    outputs, grads = {}, {"output": grad_output}
    for op in walk(ops):
        outputs[f"{op.path}.z"] = seen["forward"].get((op.path, "layer"))
        grads[f"{op.path}.input"] = seen["grad_in"].get((op.path, "layer"))
        grads[f"{op.path}.z"] = seen["grad_out"].get((op.path, "layer"))
        if op.scratch_act is not None:
            outputs[f"{op.path}.a"] = seen["forward"].get((op.path, "act"))
            grads[f"{op.path}.a"] = seen["grad_out"].get((op.path, "act"))
            grads[f"{op.path}.z"] = seen["grad_in"].get((op.path, "act"))
        if not op.inner:
            for name, value in _layer_gradients(op.layer, parameter_names(op)).items():
                grads[f"{op.path}.{name}"] = _host(value)
    return outputs, grads


def _layer_gradients(layer, names) -> dict:
    """name -> the gradient the layer's last backward left, under its torch module's name (a layer
    holding them under names of its own maps them: an attention's out_proj.weight)."""
    if callable(getattr(layer, "named_arrays", None)) and not callable(getattr(layer, "gradients", None)):
        held = layer.named_arrays("grad_")
        return {name: held.get(name) for name in names}
    return layer_gradients(layer, names)


def _torch_pass(model, ops: list[Op], loss_fn, x, y, dtype) -> tuple[dict, dict]:
    """The same through the torch twin: every module's input replaced by a view of it whose gradient
    is retained (the gradient through that module alone), its output retained; autograd fills them."""
    x = np.asarray(x)
    xt = (torch.tensor(x, dtype=torch.long) if x.dtype.kind in "iu" else    # token ids: no gradient
          torch.tensor(x, dtype=dtype, requires_grad=True))
    yt = torch.tensor(y, dtype=torch.long) if np.asarray(y).dtype.kind in "iu" else torch.tensor(y, dtype=dtype)
    inputs, outputs, handles = {}, {}, []

    def retain(t):
        if t.requires_grad:
            t.retain_grad()
        return t

    def hook(module, key):
        def before(_, args):
            alias = retain(args[0].view_as(args[0]))
            inputs[key] = alias
            # self-attention's query, key and value are one tensor: all three become the view
            return tuple(alias if arg is args[0] else arg for arg in args)

        def after(_, args, out):
            outputs[key] = retain(out[0] if isinstance(out, tuple) else out)   # attention's (output, weights)
        handles.append(module.register_forward_pre_hook(before))
        handles.append(module.register_forward_hook(after))

    try:
        for op in walk(ops):
            hook(op.module, (op.path, "layer"))
            if op.torch_act is not None:
                hook(op.torch_act, (op.path, "act"))
        value = loss_fn(model(xt), yt)
        if value.requires_grad:
            value.backward()
    finally:
        for handle in handles:
            handle.remove()

    def grad(t):   # None: the module never ran (nothing to compare: an infinite error)
        return None if t is None else np.zeros(tuple(t.shape)) if t.grad is None else t.grad.detach().numpy().copy()

    def value(t):
        return None if t is None else t.detach().numpy().copy()

    last = ops[-1]
    grads = {"output": grad(outputs.get((last.path, "act")))}
    forward = {}
    for op in walk(ops):
        forward[f"{op.path}.z"] = value(outputs.get((op.path, "layer")))
        grads[f"{op.path}.input"] = grad(inputs.get((op.path, "layer")))
        grads[f"{op.path}.z"] = grad(outputs.get((op.path, "layer")))
        if op.torch_act is not None:
            forward[f"{op.path}.a"] = value(outputs.get((op.path, "act")))
            grads[f"{op.path}.a"] = grad(outputs.get((op.path, "act")))
            grads[f"{op.path}.z"] = grad(inputs.get((op.path, "act")))
        if not op.inner:
            for name, tensor in op.module.named_parameters():
                full = f"{op.path}.{name}"
                grads[full] = (np.zeros(tuple(tensor.shape)) if tensor.grad is None else
                               tensor_to_scratch(full, tensor.grad, model.transposed))
    return forward, grads


def _as_torch_rows(ops: list[Op], scratch: tuple, torch_side: tuple) -> None:
    """An op scratch runs on (N·T, features) rows has its recorded tensors put in torch's (N, T,
    features) shape: the same numbers, in the same order."""
    for op in walk(ops):
        if not op.rows:
            continue
        for ours, theirs in zip(scratch, torch_side):
            for key in (f"{op.path}.{name}" for name in ("z", "a", "input")):
                got, expected = ours.get(key), theirs.get(key)
                if got is not None and expected is not None and expected.ndim == 3 and \
                        got.shape == (expected.shape[0] * expected.shape[1], expected.shape[2]):
                    ours[key] = got.reshape(expected.shape)


def _shape_safe_rel(got, expected, scale: float = 0.0, dtype: str = "float64") -> float:
    """The policy's error (``scale``: the network's gradient scale, where a reference is zero up to
    rounding); a missing value or a shape mismatch is an infinite error (the layer is wrong), not a crash."""
    if got is None or expected is None:
        return float("inf")
    got, expected = np.asarray(got), np.asarray(expected)
    return rel_error(got, expected, scale, dtype) if got.shape == expected.shape else float("inf")


# ---------------------------------------------------------------------------------- the comparison


def first_wrong_layer(spec: Spec, net: Network | None = None, x=None, y=None, batch: int | None = None,
                      tol: float | None = None, loss=None, mode: str = "train") -> LayerwiseReport:
    """Compare a network's gradients with torch's layer by layer; name the first that disagrees.

    ``net``: the scratch network to check (default: Network.from_spec(spec)); its parameters and
    buffers are copied into the torch twin, and its buffers and mode are as they were afterwards.
    ``loss``: the scratch loss object (default: the spec's; e.g. a user subclass of a scratch loss,
    checked against the spec loss's torch twin). ``x``, ``y``: the batch (default: the spec's data,
    else a seeded random batch of ``batch`` rows). ``mode``: train (batch statistics, dropout on the
    shared mask stream) or eval.
    """
    if mode not in MODES:
        raise SpecError("--mode", f"unknown {mode!r}; expected one of {', '.join(MODES)}")
    net = Network.from_spec(spec) if net is None else net
    x, y = validated_batch(spec, batch, x, y)
    if mode == "train":
        check_batch_rows(spec, len(x), "--batch" if batch is not None else "x")
    tol = TOLERANCE[spec.dtype] if tol is None else tol
    params = {k: np.array(v) for k, v in net.parameters().items()}
    buffers = {k: np.array(v) for k, v in net.buffers().items()}
    model = build(spec, params=params, buffers=buffers or None).train(mode == "train")
    dtype = np.dtype(spec.dtype)
    x = np.asarray(x) if spec.vocab is not None else np.asarray(x, dtype=dtype)    # token ids stay integers
    y = np.asarray(y) if np.asarray(y).dtype.kind in "iu" else np.asarray(y, dtype=dtype)
    ops = network_ops(spec, net, model)
    was_training = net.training
    net.train(mode == "train")
    try:
        with warnings.catch_warnings(record=True) as caught, \
                np.errstate(over="warn", divide="warn", invalid="warn", under="ignore"):
            warnings.simplefilter("always")
            s_out, s_g = _scratch_pass(net, ops, scratch_loss(spec) if loss is None else loss, x, y)
    finally:
        net.train(was_training)
        if buffers:
            net.load_buffers(buffers)
    t_out, t_g = _torch_pass(model, ops, torch_loss(spec), x, y, TORCH_DTYPES[spec.dtype])
    _as_torch_rows(ops, (s_out, s_g), (t_out, t_g))
    report = LayerwiseReport(activations=[layer.activation for layer in spec.layers], loss=spec.loss.name,
                             dtype=spec.dtype, tol=tol, kinds=[layer.kind for layer in spec.layers], mode=mode)
    report.findings = sorted({f"{w.category.__name__} in the scratch network: {w.message}" for w in caught})
    for label, op in forward_order(ops):
        err = _shape_safe_rel(s_out[label], t_out[label])
        report.forward.append(Row(label, op.top, "forward", err, err <= tol))
    bad = next((r for r in report.forward if not r.ok), None)
    if bad is not None:
        report.first_wrong = _forward_culprit(bad, ops, s_out[bad.name] is None, t_out[bad.name] is None)
        return report
    scale = gradient_scale(value for value in t_g.values() if value is not None)
    measure = functools.partial(_shape_safe_rel, scale=scale, dtype=spec.dtype)
    compared = functools.partial(_row, s_g=s_g, t_g=t_g, tol=tol, measure=measure)
    report.rows.append(compared("output", "dL/d(output)", None, "loss"))
    if not report.rows[-1].ok:
        report.first_wrong = _loss_culprit(report.rows[-1], spec, s_g, t_g, tol)
    for entry in backward_order(ops):
        row = compared(entry.key, entry.label, entry.op.top, entry.part)
        report.rows.append(row)
        if report.first_wrong is None and not row.ok:
            report.first_wrong = _culprit(entry, row, s_out, s_g, t_g, tol, measure, len(x))
    return report


def _row(key, label, layer, part, s_g, t_g, tol, measure) -> Row:
    err = measure(s_g.get(key), t_g.get(key))
    return Row(label, layer, part, err, err <= tol)


def _forward_culprit(bad: Row, ops: list[Op], unrecorded: bool, torch_missing: bool) -> dict:
    path, _, what = bad.name.rpartition(".")
    op = next(op for op in walk(ops) if op.path == path)
    part = f"activation {op.activation!r}" if what == "a" else op.kind
    if unrecorded or torch_missing:
        side = "the scratch network's forward" if unrecorded else "the torch twin's forward"
        why = f"{side} never ran it, so it and the gradients are not compared"
    else:
        why = "its NumPy and torch forwards compute different functions, so gradients are not compared"
    return {"layer": bad.layer, "path": path, "part": "forward", "tensor": bad.name, "diagnosis": None,
            "message": f"the forward already differs at {bad.name} ({op.where}, {part}): {why}"}


def _loss_culprit(row: Row, spec, s_g, t_g, tol) -> dict:
    got = s_g["output"]
    message = f"the loss {spec.loss.name!r}: its backward dL/d(output) disagrees with torch"
    return _verdict(row, None, message, tol, "loss", got.shape if np.ndim(got) == 2 else None, got, t_g["output"])


def _culprit(entry: Entry, row: Row, s_out, s_g, t_g, tol, measure, rows: int) -> dict:
    """The first wrong gradient's verdict (``measure(got, expected)``: the rows' error)."""
    op, key = entry.op, entry.key.rpartition(f"{entry.op.path}.")[2]
    got, expected = s_g.get(entry.key), t_g.get(entry.key)
    if entry.part == "activation":
        message = (f"{op.where}: the backward of its activation {op.activation!r} — "
                   f"dL/dz disagrees while dL/da from the layers above agrees")
        return _verdict(row, op, message, tol, "activation", None, got, expected,
                        inputs=s_out[f"{op.path}.z"], upstream=s_g[f"{op.path}.a"])
    if op.inner:
        message = join_message(entry)
    else:
        name = "Dense" if op.kind == "dense" else f"{op.kind} ({type(op.layer).__name__})"
        above = "dL/dz" if op.activation is not None else "the gradient of its output"
        message = f"{op.where}: its {name} backward — {tensor_name(key)} disagrees while {above} agrees"
        if op.kind == "attention" and key.startswith("in_proj") and got is not None and expected is not None:
            message += in_projection_blocks(got, expected, tol, measure)
    return _verdict(row, op, message, tol, "layer", (rows, 1), got, expected)


def _verdict(row: Row, op, message: str, tol, kind: str, batch, got, expected, **context) -> dict:
    """The first wrong tensor's verdict: what is wrong, and the diagnosis of how (``context``: the
    GroupData fields an activation's diagnosis reads)."""
    if got is None or expected is None:
        side = "the scratch network" if got is None else "the torch twin"
        diagnosis = f"{side} left no value for it (its pass never ran that layer, or kept no gradient)"
    elif np.shape(got) != np.shape(expected):
        diagnosis = f"shape {np.shape(got)} where torch's is {np.shape(expected)}"
    else:
        group = GroupData("random", np.asarray(got), np.asarray(expected), **context)
        diagnosis = compare([group], tol, kind=kind, batch=batch, wrt="z").diagnosis
    return {"layer": row.layer, "path": None if op is None else op.path, "part": row.part, "tensor": row.name,
            "message": message, "diagnosis": diagnosis}


def verify_spec(path: str, batch: int | None = None, mode: str = "train",
                time_limit_s: float | None = SPEC_TIME_LIMIT) -> LayerwiseReport:
    """``first_wrong_layer`` of the spec at ``path``, in a child process (nnparity.verify.child): its user
    activations run there (their import, __init__, forward, backward, torch_module()), the whole check
    under ``time_limit_s`` seconds (None: no limit). A hang past it, or user code that ends the process,
    is an OpError; what the spec or its user code gets wrong, a SpecError."""
    seconds = checked_limit(time_limit_s)
    try:
        return isolated(_spec_check, path, batch, mode, seconds)
    except ProbeTimeout as err:
        ended = "; it did not stop when interrupted, so it was ended" if "did not stop" in str(err) else ""
        raise ProbeTimeout(f"{path}: the check of its network ran for more than {seconds:g} s (a user activation "
                           f"in an endless loop, or a network or batch too large for the limit?); the whole check gets {seconds:g} s (--time-limit){ended}") from None


def _spec_check(path: str, batch: int | None, mode: str, seconds: float | None) -> LayerwiseReport:
    deadline = time.monotonic() + (math.inf if seconds is None else seconds)
    try:
        with time_limit(seconds, f"the check of {path}"):
            spec = load_spec(path)
            if batch is not None:
                check_memory(spec, rows=batch, rows_field="--batch")
            return first_wrong_layer(spec, batch=batch, mode=mode)
    except SpecError as err:     # the spec, or its user code (scratch.user_code), at fault: its one line
        if time.monotonic() >= deadline:    # the time limit, raised in user code and reported as its error
            raise ProbeTimeout(str(err)) from None
        raise OpError(str(err)) from None
