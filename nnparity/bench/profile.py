"""Where a scratch train step's time goes: each stage timed alone, next to NumPy's per-call floor.

    python -m nnparity.bench.profile [--dtype float32|float64] [--threads N] [--json] [CONFIG ...]

A stage is one call of the step (a layer's forward, an activation's backward, the loss, the SGD
update, ...), timed on the state the step leaves, with torch.utils.benchmark's blocked_autorange.
``glue`` is the whole step less the sum of its stages: Network's loops, the batch rotation and
the gradient dict. The floors are the cheapest NumPy calls at the configuration's shapes: a
same-shape ufunc, a ufunc broadcasting a row, a row reduction, a matrix product. On a tiny
network every stage costs a few floors, whatever its arithmetic: that is the profile's point.
"""
from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from nnparity.bench.configs import CONFIGS, config, make_batches, make_spec
from nnparity.bench.machine import fix_threads


def _median(fn, threads: int, min_run_time: float = 0.2) -> float:
    from torch.utils.benchmark import Timer

    return Timer("fn()", globals={"fn": fn}, num_threads=threads).blocked_autorange(min_run_time=min_run_time).median


def stages(cfg, dtype: str) -> list[tuple[str, object]]:
    """(name, call) for every stage of one SGD train step, in the order the step runs them."""
    from scratch.network import Network, build_loss
    from scratch.optimizers import make_optimizer

    spec = make_spec(cfg.widths, cfg.batch, dtype)
    net, loss = Network.from_spec(spec), build_loss(spec)
    optimizer = make_optimizer(spec.optimizer, net.parameters())
    x, y = make_batches(cfg.widths, cfg.batch, dtype, 1)[0]
    inputs, outputs = [], []          # what each layer and activation saw in the step
    a = x
    for layer, activation in zip(net.layers, net.activations):
        inputs.append(a)
        z = layer.forward(a)
        outputs.append(z)
        a = activation.forward(z)
    loss.forward(a, y)
    grad = loss.backward()
    grads_in = []                     # dL/d(activation output) of each layer, last layer first
    for i in reversed(range(len(net.layers))):
        grads_in.append(grad)
        grad = net.layers[i].backward(net.activations[i].backward(grad), input_grad=i > 0)
    grads = net.gradients()
    out = []
    for i, (layer, activation) in enumerate(zip(net.layers, net.activations)):
        out.append((f"layers.{i} forward", lambda layer=layer, a=inputs[i]: layer.forward(a)))
        out.append((f"{activation.name} {i} forward", lambda act=activation, z=outputs[i]: act.forward(z)))
    out.append(("loss forward", lambda: loss.forward(a, y)))
    out.append(("loss backward", loss.backward))
    for k, i in enumerate(reversed(range(len(net.layers)))):
        act_grad = net.activations[i].backward(grads_in[k])
        out.append((f"{net.activations[i].name} {i} backward", lambda act=net.activations[i], g=grads_in[k]: act.backward(g)))
        out.append((f"layers.{i} backward", lambda layer=net.layers[i], g=act_grad, i=i: layer.backward(g, input_grad=i > 0)))
    out.append(("gradients()", net.gradients))
    out.append(("sgd step", lambda: optimizer.step(grads)))
    return out


def floors(cfg, dtype: str) -> dict[str, object]:
    """The cheapest NumPy calls at the configuration's first layer's shapes."""
    rng = np.random.default_rng(0)
    batch, units = cfg.batch, cfg.widths[1]
    z = rng.standard_normal((batch, units)).astype(dtype)
    other, out, row = z.copy(), np.empty_like(z), z[0].copy()
    x, w = rng.standard_normal((batch, cfg.widths[0])).astype(dtype), rng.standard_normal(cfg.widths[:2]).astype(dtype)
    return {"ufunc, same shapes": lambda: np.add(z, other, out=out),
            "ufunc, a row broadcast": lambda: np.add(z, row, out=out),
            "row reduction (sum, axis 0)": lambda: z.sum(axis=0),
            "matrix product x @ W": lambda: x @ w}


def profile(name: str, dtype: str, threads: int) -> dict:
    """Every stage's median time, the whole step's, the glue between them, and the floors."""
    from nnparity.bench import sides

    cfg = config(name)
    rows = [{"stage": stage, "seconds": _median(call, threads)} for stage, call in stages(cfg, dtype)]
    step = _median(sides.scratch(cfg, "train_sgd", dtype, threads), threads)
    total = sum(r["seconds"] for r in rows)
    return {"config": name, "dtype": dtype, "threads": threads, "stages": rows, "step_seconds": step,
            "glue_seconds": step - total,
            "floors": {label: _median(call, threads) for label, call in floors(cfg, dtype).items()}}


def format_profile(result: dict) -> str:
    step = result["step_seconds"]
    lines = [f"scratch SGD train step, {result['config']} {result['dtype']}: {step * 1e6:.1f} µs"]
    for row in result["stages"] + [{"stage": "glue (Network's loops, batch rotation)", "seconds": result["glue_seconds"]}]:
        lines.append(f"  {row['stage']:<40} {row['seconds'] * 1e6:8.2f} µs  {100 * row['seconds'] / step:5.1f}%")
    lines.append("  NumPy per-call floors here: " + ", ".join(
        f"{label} {seconds * 1e6:.2f} µs" for label, seconds in result["floors"].items()))
    return "\n".join(lines)


def _usage_error(prog: str, message: str):
    print(f"{prog}: {message}", file=sys.stderr)
    sys.exit(2)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m nnparity.bench.profile", description=__doc__.splitlines()[0])
    p.add_argument("configs", nargs="*", default=["tiny"], help=f"any of {', '.join(CONFIGS)} (default tiny)")
    p.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    p.add_argument("--threads", type=int, default=1, help="threads for NumPy's BLAS (default 1)")
    p.add_argument("--json", action="store_true", help="print one JSON object (a list, one entry per "
                   "configuration) instead of the tables")
    p.error = lambda message: _usage_error(p.prog, message)   # one line, exit 2
    args = p.parse_args(argv)
    unknown = [c for c in args.configs if c not in CONFIGS]
    if unknown:
        print(f"python -m nnparity.bench.profile: {unknown[0]!r}; expected one of {', '.join(CONFIGS)}", file=sys.stderr)
        return 2
    limiter = fix_threads(args.threads)   # noqa: F841  (kept alive while timing)
    results = [profile(name, args.dtype, args.threads) for name in args.configs]
    if args.json:
        print(json.dumps(results, indent=1))
        return 0
    for result in results:
        print(format_profile(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
