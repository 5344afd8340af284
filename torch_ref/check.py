"""Parity reports: one forward and backward through both networks, compared tensor by tensor."""
from __future__ import annotations

import numpy as np
import torch

from scratch.data import inline_data, random_batch
from scratch.limits import check_memory
from scratch.policy import NOT_COMPARED, PASS, TOLERANCE, gradient_scale, json_safe, verdict
from scratch.network import Network, build_loss as scratch_loss
from scratch.data import check_inputs, check_targets
from scratch.sequence_data import check_tokens
from scratch.device import array_module, to_device, to_host
from scratch.errors import SpecError
from scratch.norm_kinds import check_batch_rows
from scratch.spec import Spec
from torch_ref.model import TORCH_DTYPES, build, buffers_to_scratch, build_loss as torch_loss, gradients_to_scratch


MODES = ("train", "eval")


def run_scratch(spec: Spec, x: np.ndarray, y: np.ndarray, xp=np, mode: str = "train") -> dict:
    """Forward and backward through the scratch network on xp's device (NumPy: the CPU), in
    ``mode``: output, activations, loss, gradients and the buffers after the pass, brought back
    to the host once at the end."""
    dtype = np.dtype(spec.dtype)
    net = Network.from_spec(spec, xp=xp).train(mode == "train")
    loss = scratch_loss(spec, xp=xp)
    x = to_device(np.asarray(x, dtype=np.int64 if spec.vocab is not None else dtype), xp)
    y = np.asarray(y) if np.asarray(y).dtype.kind in "iu" else np.asarray(y, dtype=dtype)
    out, trace = net.forward_trace(x)
    value = loss.forward(out, to_device(y, xp))
    grad_x = net.backward(loss.backward())
    grads = dict(net.gradients())
    if spec.vocab is None:   # token ids have no gradient
        grads["input"] = grad_x
    return {"output": to_host(out, xp), "activations": [to_host(a, xp) for a in trace],
            "loss": float(to_host(value, xp)), "grads": {k: to_host(g, xp) for k, g in grads.items()},
            "buffers": {k: to_host(b, xp) for k, b in net.buffers().items()}}


def run_torch(spec: Spec, x: np.ndarray, y: np.ndarray, device: str = "cpu", mode: str = "train") -> dict:
    """The same through the torch twin on ``device``, gradients by torch autograd."""
    dtype = TORCH_DTYPES[spec.dtype]
    model = build(spec).to(device).train(mode == "train")
    loss_fn = torch_loss(spec)
    tokens = spec.vocab is not None
    xt = torch.tensor(np.asarray(x), dtype=torch.long if tokens else dtype, device=device, requires_grad=not tokens)
    y = np.asarray(y)
    yt = torch.tensor(y, dtype=torch.long if y.dtype.kind in "iu" else dtype, device=device)
    out, trace = model.forward_trace(xt)
    try:
        value = loss_fn(out, yt)
    except RuntimeError:
        if bool(torch.isfinite(out).all()):
            raise
        # torch's BCELoss refuses a NaN probability: the output already overflowed, so the loss and
        # every gradient are not numbers on torch's side (the verdict reports the overflow)
        return _not_numbers(model, xt, out, trace)
    if value.requires_grad:
        value.backward()
    grads = gradients_to_scratch(model)
    if not tokens:
        grads["input"] = (xt.grad if xt.grad is not None else torch.zeros_like(xt)).cpu().numpy().copy()
    return {"output": out.detach().cpu().numpy(), "activations": [a.detach().cpu().numpy() for a in trace],
            "loss": float(value.detach()), "grads": grads, "buffers": buffers_to_scratch(model)}


def _not_numbers(model, xt, out, trace) -> dict:
    """run_torch's result when torch's loss refused a non-finite output: NaN loss and gradients."""
    grads = {name: np.full_like(g, np.nan) for name, g in gradients_to_scratch(model).items()}
    if xt.requires_grad:
        grads["input"] = np.full(tuple(xt.shape), np.nan, dtype=xt.detach().cpu().numpy().dtype)
    return {"output": out.detach().cpu().numpy(), "activations": [a.detach().cpu().numpy() for a in trace],
            "loss": float("nan"), "grads": grads, "buffers": buffers_to_scratch(model)}


def check_batch(spec: Spec, batch: int | None = None):
    """The inputs a check runs on: the spec's inline data, or a seeded random batch."""
    data = inline_data(spec) if batch is None else None
    return data if data is not None else random_batch(spec, batch or 4)


def validated_batch(spec: Spec, batch: int | None = None, x=None, y=None):
    """(x, y) checked against the spec (shapes, finite values that fit its dtype, labels in range):
    the given ones, else the spec's inline data, else a seeded random batch. Raises SpecError."""
    if x is None and y is None:
        inline = spec.data.x is not None and batch is None
        x, y = check_batch(spec, batch)
        where_x, where_y = ("data.x", "data.y") if inline else ("x", "y")
    elif x is None or y is None:
        raise SpecError("x" if x is None else "y", "missing; give both x and y, or neither")
    else:
        where_x, where_y = "x", "y"
    if spec.vocab is not None:
        x = check_tokens(x, spec.shapes[0][0], spec.vocab, where_x)
    else:
        x = check_inputs(x, spec.shapes[0], where_x, spec.dtype)
    return x, check_targets(y, x.shape[0], spec.outputs, spec.loss.name, where_y, spec.dtype, spec.loss.ignore)


def check(spec: Spec, dtype: str | None = None, batch: int | None = None, tol: float | None = None,
          x=None, y=None, allow_overflow: bool = False, mode: str = "train") -> dict:
    """One forward and backward through both networks, on the spec's ``device`` (scratch on CuPy
    and torch on CUDA for ``cuda``), in ``mode`` (train: batch statistics, running statistics
    updated, dropout on the shared mask stream; eval: the initial running statistics, no dropout);
    the report as plain data.

    Keys: dtype, mode, tol, ok, overflow (how many tensors overflowed on both sides), allow_overflow,
    scratch / torch (output, activations, loss, grads incl. "input", buffers after the pass), errors
    (output, activations, loss, grads, buffers): each {"max_abs", "rel", "result", "ok"}. A tensor
    that overflowed (inf or NaN) on both sides is "overflow", in torch alone "torch overflow": ok
    only with ``allow_overflow``.
    """
    if dtype is not None:
        spec = spec.replace(dtype=dtype)
    if batch is not None:
        check_memory(spec, rows=batch, rows_field="--batch")
    x, y = validated_batch(spec, batch, x, y)
    tol = TOLERANCE[spec.dtype] if tol is None else tol
    if mode not in MODES:
        raise SpecError("--mode", f"unknown {mode!r}; expected one of {', '.join(MODES)}")
    if mode == "train":
        check_batch_rows(spec, len(x), "--batch" if batch is not None else "x")
    ours = run_scratch(spec, x, y, xp=array_module(spec.device), mode=mode)
    theirs = run_torch(spec, x, y, device=spec.device, mode=mode)

    # a gradient is measured against the network's gradient scale where torch's is zero up to rounding
    scale = gradient_scale(theirs["grads"].values())

    def err(a, b, gradient=False):
        e = verdict(a, b, tol, scale if gradient else 0.0, spec.dtype)
        e["ok"] = e["result"] == PASS or (allow_overflow and e["result"] in NOT_COMPARED)
        return e

    errors = {
        "output": err(ours["output"], theirs["output"]),
        "activations": {f"layers.{i}": err(a, b)
                        for i, (a, b) in enumerate(zip(ours["activations"], theirs["activations"]))},
        "loss": err(ours["loss"], theirs["loss"]),
        "grads": {name: err(g, theirs["grads"][name], gradient=True) for name, g in ours["grads"].items()},
        "buffers": {name: err(np.asarray(b, dtype=np.float64), np.asarray(theirs["buffers"][name], dtype=np.float64))
                    for name, b in ours["buffers"].items()},
    }
    flat = [errors["output"], errors["loss"], *errors["activations"].values(), *errors["grads"].values(),
            *errors["buffers"].values()]
    return {"dtype": spec.dtype, "mode": mode, "tol": tol, "ok": all(e["ok"] for e in flat),
            "overflow": sum(e["result"] in NOT_COMPARED for e in flat), "allow_overflow": allow_overflow,
            "scratch": ours, "torch": theirs, "errors": errors}


def report_to_json(report: dict) -> dict:
    """The report in the JSON schema of `nnparity check --json`, as plain data:

    {"dtype", "ok", "scratch": {"output", "loss", "grads": {<parameter>..., "input"}}, "torch": {same},
     "errors": {"output": {"max_abs", "rel"}, "loss": {...}, "grads": {<name>: {...}}}}

    and, for a network with buffers (running statistics, dropout's draw counts), "buffers" in each
    side and in "errors", as the grads.

    Arrays become nested lists (weights' gradients in the (inputs, units) layout); non-finite
    numbers become null, so the text is strict JSON.
    """
    plain = json_safe

    def side(run):
        out = {"output": run["output"], "loss": run["loss"], "grads": run["grads"]}
        return dict(out, buffers=run["buffers"]) if run.get("buffers") else out

    def error(e):
        return {"max_abs": e["max_abs"], "rel": e["rel"], "result": e["result"]}

    e = report["errors"]
    buffers = {"buffers": {name: error(err) for name, err in e["buffers"].items()}} if e.get("buffers") else {}
    return plain({
        "dtype": report["dtype"],
        "ok": bool(report["ok"]),
        "scratch": side(report["scratch"]),
        "torch": side(report["torch"]),
        "errors": {"output": error(e["output"]), "loss": error(e["loss"]),
                   "grads": {name: error(err) for name, err in e["grads"].items()}, **buffers},
    })


__all__ = ["check", "report_to_json", "run_scratch", "run_torch", "SpecError"]
