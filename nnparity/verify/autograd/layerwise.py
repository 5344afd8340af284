"""Find the first wrong layer: a network's gradients compared with torch's, from the output back.

Backprop runs the layers in reverse, so a wrong backward in layer k corrupts every gradient below
it while everything above still agrees. Comparing in backprop order —

    dL/d(output) (the loss), then for i = L−1 … 0:  dL/dz_i (activation i), dL/dW_i, dL/db_i,
    dL/d(input of layer i) (Dense i)

— the first disagreement names the culprit: the loss, activation i, or Dense i. The scratch side
runs the network's own op objects (a spec's custom activation by import path, or a Network whose
ops the caller replaced, e.g. a user subclass of a scratch op); the torch side is the spec's
torch twin (a user op's ``torch_module()``), differentiated by autograd. Forward values are
compared first: a twin that computes a different function makes the gradients incomparable.
"""
from __future__ import annotations

import math
import time
import warnings
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from nnparity.verify.child import isolated
from nnparity.verify.diagnosis import GroupData, compare
from nnparity.verify.errors import OpError
from nnparity.verify.load import layer_gradients
from nnparity.verify.time_limit import SPEC_TIME_LIMIT, ProbeTimeout, checked_limit, time_limit
from scratch.errors import SpecError
from scratch.layer_kinds import require_kinds
from scratch.network import Network, build_loss as scratch_loss
from scratch.policy import TOLERANCE, json_safe, rel_error
from scratch.spec import Spec, load_spec
from torch_ref.check import validated_batch
from torch_ref.model import TORCH_DTYPES, build, build_loss as torch_loss


@dataclass
class Row:
    """One compared tensor."""

    name: str                 # e.g. layers.2.dL/dz
    layer: int | None         # None: the loss
    part: str                 # loss | activation | dense | forward
    error: float              # norm-relative error against torch
    ok: bool


@dataclass
class LayerwiseReport:
    """Every gradient from the output back, and the first layer whose gradient disagrees."""

    activations: list[str]            # each layer's activation, by spec name
    loss: str
    dtype: str
    tol: float
    forward: list[Row] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)
    first_wrong: dict | None = None   # layer, part, tensor, message, diagnosis
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
        lines = [f"nnparity verify --spec: {n} layers ({', '.join(self.activations)}), loss {self.loss}, "
                 f"{self.dtype}, tol {self.tol:.0e}",
                 "gradients from the output back, scratch against torch autograd:",
                 f"  {'tensor':<28} {'rel err':>9}  result"]
        first = self.first_wrong["tensor"] if self.first_wrong else None
        for row in self.rows:
            mark = "  <- first disagreement" if row.name == first else ""
            lines.append(f"  {row.name:<28} {row.error:9.1e}  {'pass' if row.ok else 'FAIL'}{mark}")
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


def _scratch_pass(net: Network, loss, x, y):
    """Forward keeping z_i and a_i, then the network's own backward, one op at a time."""
    zs, acts = [], []
    a = x
    for layer, act in zip(net.layers, net.activations):
        z = layer.forward(a)
        a = act.forward(z)
        zs.append(z)
        acts.append(a)
    loss.forward(a, y)
    grads = {"output": loss.backward()}
    g = grads["output"]
    for i in reversed(range(len(net.layers))):
        layer, act = net.layers[i], net.activations[i]
        grads[f"{i}.a"] = g
        gz = act.backward(g)
        grads[f"{i}.z"] = gz
        g = layer.backward(gz)
        names = ["weight"] + (["bias"] if getattr(layer, "bias", None) is not None else [])
        for name, value in layer_gradients(layer, names).items():
            grads[f"{i}.{name}"] = value
        grads[f"{i}.input"] = g
    return zs, acts, grads


def _torch_pass(model, loss_fn, x, y, dtype):
    """The same through the torch twin; autograd fills every .grad (retained on z_i and a_i)."""
    xt = torch.tensor(np.asarray(x), dtype=dtype, requires_grad=True)
    yt = torch.tensor(y, dtype=torch.long) if np.asarray(y).dtype.kind in "iu" else torch.tensor(y, dtype=dtype)
    zs, acts = [], []
    a = xt
    for linear, act in zip(model.linears, model.activations):
        z = linear(a)
        z.retain_grad()
        a = act(z)
        if a.requires_grad and a is not z:
            a.retain_grad()
        zs.append(z)
        acts.append(a)
    value = loss_fn(a, yt)
    if value.requires_grad:
        value.backward()

    def grad(t):
        return np.zeros(tuple(t.shape)) if t.grad is None else t.grad.detach().numpy().copy()

    grads = {"output": grad(acts[-1])}
    for i in reversed(range(len(zs))):
        grads[f"{i}.a"] = grad(acts[i])
        grads[f"{i}.z"] = grad(zs[i])
        linear = model.linears[i]
        grads[f"{i}.weight"] = grad(linear.weight).T
        if linear.bias is not None:
            grads[f"{i}.bias"] = grad(linear.bias)
        grads[f"{i}.input"] = grad(xt) if i == 0 else grad(acts[i - 1])
    return ([z.detach().numpy() for z in zs], [a.detach().numpy() for a in acts], grads)


def _shape_safe_rel(got, expected) -> float:
    """The policy's error; a shape mismatch is an infinite error (the layer is wrong), not a crash."""
    got, expected = np.asarray(got), np.asarray(expected)
    return rel_error(got, expected) if got.shape == expected.shape else float("inf")


TENSOR = {"z": "dL/dz", "weight": "dL/dW", "bias": "dL/db", "input": "dL/d(input)"}


def first_wrong_layer(spec: Spec, net: Network | None = None, x=None, y=None, batch: int | None = None,
                      tol: float | None = None, loss=None) -> LayerwiseReport:
    """Compare a network's gradients with torch's layer by layer; name the first that disagrees.

    ``net``: the scratch network to check (default: Network.from_spec(spec)); its parameters are
    copied into the torch twin. ``loss``: the scratch loss object (default: the spec's; e.g. a
    user subclass of a scratch loss, checked against the spec loss's torch twin). ``x``, ``y``:
    the batch (default: the spec's data, else a seeded random batch of ``batch`` rows).
    """
    require_kinds(spec, ("dense",), "nnparity verify --spec")
    net = Network.from_spec(spec) if net is None else net
    x, y = validated_batch(spec, batch, x, y)
    tol = TOLERANCE[spec.dtype] if tol is None else tol
    params = {k: np.array(v) for k, v in net.parameters().items()}
    model = build(spec, params=params)
    dtype = np.dtype(spec.dtype)
    x = np.asarray(x, dtype=dtype)
    y = np.asarray(y) if np.asarray(y).dtype.kind in "iu" else np.asarray(y, dtype=dtype)
    with warnings.catch_warnings(record=True) as caught, \
            np.errstate(over="warn", divide="warn", invalid="warn", under="ignore"):
        warnings.simplefilter("always")
        s_z, s_a, s_g = _scratch_pass(net, scratch_loss(spec) if loss is None else loss, x, y)
    t_z, t_a, t_g = _torch_pass(model, torch_loss(spec), x, y, TORCH_DTYPES[spec.dtype])
    names = [layer.activation for layer in spec.layers]
    report = LayerwiseReport(activations=names, loss=spec.loss.name, dtype=spec.dtype, tol=tol)
    report.findings = sorted({f"{w.category.__name__} in the scratch network: {w.message}" for w in caught})
    n = len(names)
    for i in range(n):
        for label, ours, theirs in (("z", s_z[i], t_z[i]), ("a", s_a[i], t_a[i])):
            err = _shape_safe_rel(ours, theirs)
            report.forward.append(Row(f"layers.{i}.{label}", i, "forward", err, err <= tol))
    bad = next((r for r in report.forward if not r.ok), None)
    if bad is not None:
        report.first_wrong = {
            "layer": bad.layer, "part": "forward", "tensor": bad.name, "diagnosis": None,
            "message": f"the forward already differs at {bad.name} (layer {bad.layer + 1} of {n}, activation "
                       f"{names[bad.layer]!r}): its NumPy and torch forwards compute different functions, "
                       f"so gradients are not compared"}
        return report
    order = [("output", None, "loss", "dL/d(output)")]
    for i in reversed(range(n)):
        order.append((f"{i}.z", i, "activation", f"layers.{i}.dL/dz"))
        for key in ("weight", "bias", "input"):
            if f"{i}.{key}" in s_g:
                order.append((f"{i}.{key}", i, "dense", f"layers.{i}.{TENSOR[key]}"))
    for key, layer, part, label in order:
        err = _shape_safe_rel(s_g[key], t_g[key])
        report.rows.append(Row(label, layer, part, err, err <= tol))
        if report.first_wrong is None and not err <= tol:
            report.first_wrong = _culprit(key, layer, part, label, names, spec, s_z, s_g, t_g, tol)
    return report


def _culprit(key, layer, part, label, names, spec, s_z, s_g, t_g, tol) -> dict:
    n = len(names)
    if part == "loss":
        message = f"the loss {spec.loss.name!r}: its backward dL/d(output) disagrees with torch"
        group = GroupData("random", s_g[key], t_g[key])
        kind, batch = "loss", s_g[key].shape if np.ndim(s_g[key]) == 2 else None
    elif part == "activation":
        message = (f"layers.{layer} (layer {layer + 1} of {n}): the backward of its activation {names[layer]!r} — "
                   f"dL/dz disagrees while dL/da from the layers above agrees")
        group = GroupData("random", s_g[key], t_g[key], inputs=s_z[layer], upstream=s_g[f"{layer}.a"])
        kind, batch = "activation", None
    else:
        message = (f"layers.{layer} (layer {layer + 1} of {n}): its Dense backward — {label.split('.', 2)[2]} "
                   f"disagrees while dL/dz agrees")
        group = GroupData("random", np.asarray(s_g[key]), np.asarray(t_g[key]))
        kind, batch = "layer", (s_z[layer].shape[0], 1)
    diagnosis = compare([group], tol, kind=kind, batch=batch, wrt="z").diagnosis
    return {"layer": layer, "part": part, "tensor": label, "message": message, "diagnosis": diagnosis}


def verify_spec(path: str, batch: int | None = None, time_limit_s: float | None = SPEC_TIME_LIMIT) -> LayerwiseReport:
    """``first_wrong_layer`` of the spec at ``path``, in a child process (nnparity.verify.child): its user
    activations run there (their import, __init__, forward, backward, torch_module()), the whole check
    under ``time_limit_s`` seconds (None: no limit). A hang past it, or user code that ends the process,
    is an OpError; what the spec or its user code gets wrong, a SpecError."""
    seconds = checked_limit(time_limit_s)
    try:
        return isolated(_spec_check, path, batch, seconds)
    except ProbeTimeout as err:
        ended = "; it did not stop when interrupted, so it was ended" if "did not stop" in str(err) else ""
        raise ProbeTimeout(f"{path}: the check of its network ran for more than {seconds:g} s (a user activation "
                           f"in an endless loop?); the whole check gets {seconds:g} s (--time-limit){ended}") from None


def _spec_check(path: str, batch: int | None, seconds: float | None) -> LayerwiseReport:
    deadline = time.monotonic() + (math.inf if seconds is None else seconds)
    try:
        with time_limit(seconds, f"the check of {path}"):
            return first_wrong_layer(load_spec(path), batch=batch)
    except SpecError as err:     # the spec, or its user code (scratch.user_code), at fault: its one line
        if time.monotonic() >= deadline:    # the time limit, raised in user code and reported as its error
            raise ProbeTimeout(str(err)) from None
        raise OpError(str(err)) from None
