"""Parity reports: one forward and backward through both networks, compared tensor by tensor."""
from __future__ import annotations

import numpy as np
import torch

from scratch.data import inline_data, random_batch
from scratch.gradcheck import max_abs_error, rel_error
from scratch.network import Network, build_loss as scratch_loss
from scratch.spec import Spec, SpecError
from torch_ref.model import TORCH_DTYPES, build, build_loss as torch_loss, gradients_to_scratch

# The tolerance policy of DESIGN.md (norm-relative error), shared by the CLI and the tests.
TOLERANCE = {"float64": 1e-12, "float32": 1e-5}


def _error(got, expected) -> dict:
    return {"max_abs": max_abs_error(got, expected), "rel": rel_error(got, expected)}


def run_scratch(spec: Spec, x: np.ndarray, y: np.ndarray) -> dict:
    """Forward and backward through the scratch network: output, activations, loss, gradients."""
    dtype = np.dtype(spec.dtype)
    net = Network.from_spec(spec)
    loss = scratch_loss(spec)
    x = np.asarray(x, dtype=dtype)
    y = np.asarray(y) if np.asarray(y).dtype.kind in "iu" else np.asarray(y, dtype=dtype)
    out, trace = net.forward_trace(x)
    value = loss.forward(out, y)
    grad_x = net.backward(loss.backward())
    grads = dict(net.gradients())
    grads["input"] = grad_x
    return {"output": out, "activations": trace, "loss": float(value), "grads": grads}


def run_torch(spec: Spec, x: np.ndarray, y: np.ndarray) -> dict:
    """The same through the torch twin, gradients by torch autograd."""
    dtype = TORCH_DTYPES[spec.dtype]
    model = build(spec)
    loss_fn = torch_loss(spec)
    xt = torch.tensor(np.asarray(x), dtype=dtype, requires_grad=True)
    y = np.asarray(y)
    yt = torch.tensor(y, dtype=torch.long) if y.dtype.kind in "iu" else torch.tensor(y, dtype=dtype)
    out, trace = model.forward_trace(xt)
    value = loss_fn(out, yt)
    if value.requires_grad:
        value.backward()
    grads = gradients_to_scratch(model)
    grads["input"] = (xt.grad if xt.grad is not None else torch.zeros_like(xt)).numpy().copy()
    return {"output": out.detach().numpy(), "activations": [a.detach().numpy() for a in trace],
            "loss": float(value.detach()), "grads": grads}


def check_batch(spec: Spec, batch: int | None = None):
    """The inputs a check runs on: the spec's inline data, or a seeded random batch."""
    data = inline_data(spec) if batch is None else None
    return data if data is not None else random_batch(spec, batch or 4)


def check(spec: Spec, dtype: str | None = None, batch: int | None = None, tol: float | None = None,
          x=None, y=None) -> dict:
    """One forward and backward through both networks; the report as plain data.

    Keys: dtype, tol, ok, scratch / torch (output, activations, loss, grads incl. "input"),
    errors (output, activations, loss, grads): each {"max_abs", "rel", "ok"}.
    """
    if dtype is not None:
        spec = spec.replace(dtype=dtype)
    if x is None:
        x, y = check_batch(spec, batch)
    tol = TOLERANCE[spec.dtype] if tol is None else tol
    ours, theirs = run_scratch(spec, x, y), run_torch(spec, x, y)

    def err(a, b):
        e = _error(a, b)
        if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
            e["rel"] = float("nan") if not np.array_equal(a, b, equal_nan=True) else 0.0
        e["ok"] = bool(e["rel"] <= tol)
        return e

    errors = {
        "output": err(ours["output"], theirs["output"]),
        "activations": {f"layers.{i}": err(a, b)
                        for i, (a, b) in enumerate(zip(ours["activations"], theirs["activations"]))},
        "loss": err(ours["loss"], theirs["loss"]),
        "grads": {name: err(g, theirs["grads"][name]) for name, g in ours["grads"].items()},
    }
    flat = [errors["output"], errors["loss"], *errors["activations"].values(), *errors["grads"].values()]
    return {"dtype": spec.dtype, "tol": tol, "ok": all(e["ok"] for e in flat),
            "scratch": ours, "torch": theirs, "errors": errors}


def report_to_json(report: dict) -> dict:
    """The report with arrays as nested lists (weights and gradients in (inputs, units) layout)."""
    def plain(value):
        if isinstance(value, np.ndarray):
            return value.tolist()
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, list):
            return [plain(v) for v in value]
        if isinstance(value, float) and not np.isfinite(value):
            return None if np.isnan(value) else value
        return value

    return plain(report)


def largest_error(report: dict) -> float:
    e = report["errors"]
    flat = [e["output"], e["loss"], *e["activations"].values(), *e["grads"].values()]
    return max(x["rel"] for x in flat)


__all__ = ["TOLERANCE", "check", "report_to_json", "run_scratch", "run_torch", "largest_error", "SpecError"]
