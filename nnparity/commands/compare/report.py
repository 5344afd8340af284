"""The compare report: three backends' results compared step by step, as data, a table and a plot.

Report: final train loss (the last epoch's mean step loss) and test accuracy per backend; the
largest per-step relative loss difference of torch and Lightning from scratch; the median time
per step after warm-up (the first epoch, or the first tenth of the steps for a one-epoch run); the
training time and the whole child's time (imports and all runs included); Lightning's per-step
overhead over the torch loop; peak RSS per backend (the child's high-water mark).
"""
from __future__ import annotations

import math
import statistics

from scratch.data import batch_order
from scratch.policy import rel_error

BACKENDS = ("scratch", "torch", "lightning")


def runs_per_backend(world_size: int, repeat: int) -> int:
    """Training runs per backend: timings are the best of them (DDP: one run, see --repeat)."""
    return 1 if world_size > 1 else repeat


def step_rel_diff(losses, reference) -> list[float]:
    """|a − s| / |s| per step (|a − s| where s = 0), over the steps both runs made."""
    n = min(len(losses), len(reference))
    out = []
    for a, s in zip(losses[:n], reference[:n]):
        d = abs(a - s)
        out.append(d / abs(s) if s != 0 else d)
    return out


def warmup_steps(n_steps: int, steps_per_epoch: int) -> int:
    """Steps left out of the median: the first epoch, or the first tenth of a one-epoch run."""
    return steps_per_epoch if n_steps > steps_per_epoch else n_steps // 10


def _median(values) -> float | None:
    return statistics.median(values) if values else None


def _param_rel_diff(params: dict, reference: dict) -> float:
    """The largest norm-relative difference over the parameters (the policy's measure, rel_error)."""
    return max((rel_error(params[name], ref) for name, ref in reference.items()), default=0.0)


def backend_entry(backend: str, result: dict, reference: dict, per_epoch: int) -> dict:
    """One backend's row of the report; torch and Lightning are compared with ``reference`` (scratch)."""
    steps = len(result["step_loss"])
    skip = warmup_steps(steps, per_epoch)
    medians = [_median(seconds[skip:]) for seconds in result["step_seconds_runs"]]
    best = min(range(len(medians)), key=lambda i: medians[i] if medians[i] is not None else math.inf)
    entry = {
        "steps": steps,
        "epochs": len(result["epoch_loss"]),
        "stopped": result["stopped"],
        "final_train_loss": result["epoch_loss"][-1] if result["epoch_loss"] else None,
        "final_train_accuracy": result["epoch_accuracy"][-1] if result["epoch_accuracy"] else None,
        "test_loss": result["test_loss"],
        "test_accuracy": result["test_accuracy"],
        "median_step_seconds": medians[best],
        "median_step_seconds_runs": medians,
        "warmup_steps": skip,
        "train_seconds": min(result["train_seconds_runs"]),
        "train_seconds_runs": result["train_seconds_runs"],
        "process_seconds": result["process_seconds"],
        "startup_seconds": result["startup_seconds"],
        "peak_rss_mib": result["peak_rss_bytes"] / 2**20,
        "rss_before_training_mib": result["rss_before_bytes"] / 2**20,
        "step_loss": result["step_loss"],
    }
    if backend != "scratch":
        diff = step_rel_diff(result["step_loss"], reference["step_loss"])
        entry["step_rel_diff"] = diff
        entry["max_step_rel_diff"] = max(diff) if diff else 0.0
        entry["param_rel_diff"] = _param_rel_diff(result["params"], reference["params"])
        entry["same_steps"] = steps == len(reference["step_loss"])
    if backend == "lightning":
        entry["fit_seconds"] = min(result["call_seconds_runs"])
        entry["world_size"] = result["lightning"]["world_size"]
        entry["strategy"] = result["lightning"]["strategy"]
    return entry


def analyze(results: dict, spec, tol: float, n_rows: int, devices: int = 1, num_nodes: int = 1,
            strategy: str = "ddp", threads: int = 1, repeat: int = 1) -> dict:
    """The comparison report as plain data (what --json prints); ``n_rows``: the training rows."""
    per_epoch = len(batch_order(n_rows, spec.train.batch_size, False, spec.seed, 0))
    backends = {b: backend_entry(b, results[b], results["scratch"], per_epoch) for b in BACKENDS}
    t, lt = backends["torch"]["median_step_seconds"], backends["lightning"]["median_step_seconds"]
    overhead = {"per_step_seconds": lt - t, "ratio": lt / t} if t and lt else {"per_step_seconds": None, "ratio": None}
    worst = max(backends[b]["max_step_rel_diff"] for b in ("torch", "lightning"))
    same_steps = all(backends[b]["same_steps"] for b in ("torch", "lightning"))
    return {
        "dtype": spec.dtype,
        "device": spec.device,
        "tol": tol,
        "ok": bool(same_steps and worst <= tol),
        "max_step_rel_diff": worst,
        "steps_per_epoch": per_epoch,
        "epochs": spec.train.epochs,
        "batch_size": spec.train.batch_size,
        "devices": devices,
        "num_nodes": num_nodes,
        "strategy": strategy if devices * num_nodes > 1 else None,
        "threads": threads,
        "runs_per_backend": runs_per_backend(devices * num_nodes, repeat),
        "lightning_overhead": overhead,
        "backends": backends,
    }


def _fmt(value, spec: str, none: str = "–") -> str:
    return none if value is None else format(value, spec)


def format_table(report: dict) -> str:
    w = report["backends"]
    world = w["lightning"]["world_size"]
    lines = [
        f"nnparity compare  {report['spec']}",
        f"dtype={report['dtype']}  {w['scratch']['steps']} steps ({report['epochs']} epochs x "
        f"{report['steps_per_epoch']} batches of {report['batch_size'] or 'all'})  threads={report['threads']}  "
        f"timings: best of {report['runs_per_backend']} run(s) per backend"
        + (f"  Lightning DDP: {world} processes ({report['strategy']})" if world > 1 else ""),
        "",
        f"{'backend':<10} {'final loss':>11} {'test acc':>9} {'max step diff':>14} {'median step':>12} "
        f"{'train':>8} {'process':>8} {'peak RSS':>9}",
    ]
    for backend in BACKENDS:
        e = w[backend]
        diff = "(reference)" if backend == "scratch" else _fmt(e["max_step_rel_diff"], ".2e")
        acc = None if e["test_accuracy"] is None else f"{100 * e['test_accuracy']:.2f}%"
        med = None if e["median_step_seconds"] is None else f"{1e3 * e['median_step_seconds']:.3f} ms"
        lines.append(f"{backend:<10} {_fmt(e['final_train_loss'], '.6g'):>11} {acc or '–':>9} {diff:>14} "
                     f"{med or '–':>12} {e['train_seconds']:>7.2f}s {e['process_seconds']:>7.2f}s "
                     f"{e['peak_rss_mib']:>6.0f} MiB")
    o = report["lightning_overhead"]
    if o["ratio"] is not None:
        lines.append("")
        who = "Lightning" if world == 1 else f"Lightning DDP ({world} processes)"
        lines.append(f"{who} over the torch loop: {1e3 * o['per_step_seconds']:+.3f} ms per step "
                     f"({o['ratio']:.2f}x the torch loop's median step)")
    lines.append("")
    if report["ok"]:
        kind = "parity" if report["dtype"] == "float64" else "float32 drift within the bound"
        lines.append(f"{kind}: the three per-step loss trajectories agree to {report['max_step_rel_diff']:.2e} "
                     f"<= {report['tol']:.0e} (relative)")
    else:
        why = [f"{backend} made {w[backend]['steps']} steps, scratch {w['scratch']['steps']}"
               for backend in ("torch", "lightning") if not w[backend]["same_steps"]]
        why += [f"{backend} differs from scratch by {w[backend]['max_step_rel_diff']:.2e} > {report['tol']:.0e}"
                for backend in ("torch", "lightning") if w[backend]["max_step_rel_diff"] > report["tol"]]
        lines.append("FAIL: " + "; ".join(why))
    lines.append("max step diff: the largest |loss - scratch loss| / |scratch loss| over the steps. median step: "
                 "after the first epoch. train: the training loop. process: the backend's whole child process, "
                 "imports and all runs included. peak RSS: that process's high-water mark.")
    if report.get("plot"):
        lines.append(f"plot: {report['plot']}")
    return "\n".join(lines)


def plot_report(report: dict, results: dict, path: str) -> None:
    """Two panels: the per-step loss of the three backends; the per-step relative difference from
    scratch of torch and Lightning, on a log scale (exact agreement is drawn at the floor)."""
    import matplotlib   # only when a plot is asked for

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    w = report["backends"]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 7), sharex=True)
    styles = {"scratch": dict(lw=2.6, alpha=0.45, color="tab:blue"),
              "torch": dict(lw=1.4, ls="--", color="tab:orange"),
              "lightning": dict(lw=1.0, ls=":", color="tab:green")}
    for backend in BACKENDS:
        losses = w[backend]["step_loss"]
        top.plot(range(1, len(losses) + 1), losses, label=backend, **styles[backend])
    if all(v > 0 for backend in BACKENDS for v in w[backend]["step_loss"]):
        top.set_yscale("log")
    top.set_ylabel("loss (each step, before its update)")
    top.set_title(f"{report['spec']}\n{w['scratch']['steps']} steps, {report['dtype']}: the three backends, same batches",
                  fontsize=10)
    top.legend()
    floor = 1e-18
    for backend in ("torch", "lightning"):
        diff = [max(d, floor) for d in w[backend]["step_rel_diff"]]
        bottom.plot(range(1, len(diff) + 1), diff, label=f"{backend} vs scratch", **{**styles[backend], "alpha": 0.9})
    bottom.axhline(report["tol"], color="tab:red", lw=1, label=f"tolerance {report['tol']:.0e}")
    bottom.set_yscale("log")
    # head-room above the tolerance line keeps the legend off the data
    bottom.set_ylim(floor / 2, report["tol"] * 1e6)
    bottom.set_xlabel("step")
    bottom.set_ylabel("|loss - scratch| / |scratch|")
    bottom.text(1.0, floor, " exact", va="center", ha="left", fontsize=8, color="gray",
                transform=bottom.get_yaxis_transform())
    bottom.legend(loc="upper right", framealpha=0.9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
