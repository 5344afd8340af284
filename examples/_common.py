"""Shared by the worked examples: the side-by-side table, ``--json``, and the parity measure.

Every example builds its network from one spec, runs it through scratch (NumPy, derivatives by
hand) and through torch_ref (torch.nn + autograd), records each quantity from both sides in a
``Comparison`` and ends with ``comparison.finish(args)``, which prints either the table
(scratch | torch | |diff|, then the largest difference) or, with ``--json``, one JSON object, and
returns that object (what the tests read).

Agreement is measured as the tolerance policy (scratch.policy) says: norm-relative error per
quantity, ‖scratch − torch‖ / ‖torch‖ (max abs error where ‖torch‖ = 0).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from scratch.policy import TOLERANCE, TRAJECTORY_TOL, max_abs_error, rel_error

# The tolerances the examples are held to (norm-relative, float64).
SINGLE_PASS_TOL = TOLERANCE["float64"]  # one forward, backward or optimizer step: 1e-12
TRAINING_TOL = TRAJECTORY_TOL           # whole training runs, per-step loss

EXAMPLES_DIR = Path(__file__).resolve().parent

LONG = 16  # arrays longer than this print as one row (last value, largest |diff|); JSON keeps them whole


def make_parser(doc: str) -> argparse.ArgumentParser:
    """The example's argument parser: its docstring's first line as description, and --json."""
    lines = (doc or "").strip().splitlines()
    parser = argparse.ArgumentParser(description=lines[0] if lines else None)
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object (every quantity from both sides) instead of the table")
    return parser


def _plain(value):
    """NumPy/torch values as JSON-ready floats and nested lists."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def as_array(value) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    return np.asarray(value, dtype=np.float64)


class Comparison:
    """The quantities of one example, each as computed by scratch and by torch."""

    def __init__(self, example: str, title: str, tol: float, notes: list[str] | None = None):
        self.example = example
        self.title = title
        self.tol = tol
        self.notes = list(notes or [])
        self.quantities: list[dict] = []
        self.results: dict = {}
        self.start = time.perf_counter()

    def add(self, section: str, name: str, scratch, torch_value, tol: float | None = None) -> None:
        """Record one quantity (a number or an array) from both sides."""
        ours, theirs = as_array(scratch), as_array(torch_value)
        if ours.shape != theirs.shape:
            raise ValueError(f"{section} {name}: scratch shape {ours.shape} vs torch {theirs.shape}")
        self.quantities.append({
            "section": section, "name": name, "tol": self.tol if tol is None else tol,
            "scratch": _plain(ours), "torch": _plain(theirs),
            "max_abs_diff": max_abs_error(ours, theirs), "rel_error": rel_error(ours, theirs)})

    def result(self, key: str, value) -> None:
        """Record a derived result that is not a side-by-side pair (e.g. a verdict)."""
        self.results[key] = _plain(value)

    # ---------------------------------------------------------------------------------- out

    def data(self) -> dict:
        diffs = [q["max_abs_diff"] for q in self.quantities]
        rels = [q["rel_error"] for q in self.quantities]
        return {
            "example": self.example, "title": self.title, "notes": self.notes,
            "tol": self.tol,
            "quantities": self.quantities,
            "max_abs_diff": max(diffs, default=0.0),
            "max_rel_error": max(rels, default=0.0),
            "agree": all(q["rel_error"] <= q["tol"] for q in self.quantities),
            "results": self.results,
            "seconds": time.perf_counter() - self.start,
        }

    def table(self, data: dict) -> str:
        rows = []  # (section, label, scratch, torch, diff)
        for q in self.quantities:
            ours, theirs = np.asarray(q["scratch"]), np.asarray(q["torch"])
            if ours.ndim == 0:
                rows.append((q["section"], q["name"], ours.item(), theirs.item()))
                continue
            if ours.size > LONG:  # a whole history: its last value, and the largest |diff| of all
                label = f"{q['name']}[-1] (of {ours.size})"
                rows.append((q["section"], label, ours.reshape(-1)[-1].item(), theirs.reshape(-1)[-1].item(),
                             q["max_abs_diff"]))
                continue
            for index in np.ndindex(ours.shape):
                label = f"{q['name']}[{','.join(map(str, index))}]"
                rows.append((q["section"], label, ours[index].item(), theirs[index].item()))
        width = max([len("quantity")] + [len(r[1]) for r in rows])
        head = f"{'quantity':<{width}}  {'scratch':>22}  {'torch':>22}  {'|diff|':>8}"
        lines = [self.title, *[f"  {n}" for n in self.notes], "", head, "-" * len(head)]
        section = None
        for sec, label, ours, theirs, *diff in rows:
            if sec != section:
                section = sec
                if sec:
                    lines.append(f"[{sec}]")
            diff = diff[0] if diff else abs(ours - theirs)
            lines.append(f"{label:<{width}}  {ours:>22.15g}  {theirs:>22.15g}  {diff:>8.1e}")
        lines.append("-" * len(head))
        for key, value in self.results.items():
            lines.append(f"{key}: {value}")
        verdict = "agree" if data["agree"] else "DISAGREE"
        lines.append(f"max |scratch - torch| = {data['max_abs_diff']:.3e}   "
                     f"max relative error = {data['max_rel_error']:.3e}   "
                     f"(tolerance {self.tol:.0e}: {verdict})   {data['seconds']:.2f} s")
        return "\n".join(lines)

    def finish(self, args) -> dict:
        """Print the table, or the JSON object with --json; return the data either way."""
        data = self.data()
        if args.json:
            print(json.dumps(data))
        else:
            print(self.table(data))
        return data


# -------------------------------------------------------------------- layer-by-layer traces


def scratch_trace(net, x) -> tuple[list, list]:
    """Every layer's z and a through a scratch Network (its own Dense and activation objects)."""
    zs, activations = [], []
    a = np.asarray(x, dtype=np.float64)
    for layer, activation in zip(net.layers, net.activations):
        z = layer.forward(a)
        a = activation.forward(z)
        zs.append(z)
        activations.append(a)
    return zs, activations


def torch_trace(model, x) -> tuple[list, list]:
    """Every layer's z and a through the torch twin (its nn.Linear and activation modules)."""
    zs, activations = [], []
    a = torch.as_tensor(np.asarray(x, dtype=np.float64))
    with torch.no_grad():
        for linear, activation in zip(model.linears, model.activations):
            z = linear(a)
            a = activation(z)
            zs.append(z.numpy())
            activations.append(a.numpy())
    return zs, activations


@contextlib.contextmanager
def torch_threads(n: int = 1):
    """Run torch with ``n`` intra-op threads, then restore the setting.

    The examples' networks are tiny: splitting a 32×64 matmul across threads only adds
    synchronization, and on a busy machine torch's worker threads spin waiting for a core
    (digits: ~0.4 s of torch training with one thread, 8-17 s with two on a loaded 2-core box).
    """
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def run_main(main) -> None:
    """``if __name__ == "__main__": run_main(main)``: exit 0 when the two sides agree, else 1."""
    try:
        data = main(sys.argv[1:])
        sys.stdout.flush()
    except BrokenPipeError:  # `python examples/0x_....py | head`
        sys.stderr.close()
        sys.exit(0)
    sys.exit(0 if data["agree"] else 1)
