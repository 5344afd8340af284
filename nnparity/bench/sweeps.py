"""Scaling sweeps, scratch and torch eager: SGD train-step time against batch size (the
mnist-like 784-128-10 network) and against width (w-w-w-10 networks at batch 64), each point
with its spread (the IQR of its blocks), and the crossovers: where scratch's speed relative to
torch eager (torch's time / scratch's) crosses 1.0 between two neighbouring points."""
from __future__ import annotations

from nnparity.bench import sides
from nnparity.bench.configs import Config

BATCHES = (1, 4, 16, 64, 256, 1024, 4096)
WIDTHS = (16, 64, 256, 1024, 4096)
QUICK_BATCHES = (1, 16, 256)
QUICK_WIDTHS = (16, 256)
SWEEP_SIDES = ("scratch", "torch_eager")


def sweep(dtype: str, threads: int, quick: bool, bar=None) -> dict:
    from nnparity.bench.run import measure_step

    runs = {"batch": [Config(f"batch{b}", (784, 128, 10), b) for b in (QUICK_BATCHES if quick else BATCHES)],
            "width": [Config(f"width{w}", (w, w, w, 10), 64) for w in (QUICK_WIDTHS if quick else WIDTHS)]}
    out = {}
    for axis, cfgs in runs.items():
        rows = []
        for cfg in cfgs:
            row = {"batch": cfg.batch, "width": cfg.widths[1], "widths": list(cfg.widths), "flops": cfg.train_flops}
            for side in SWEEP_SIDES:
                if bar is not None:
                    bar.set_postfix_str(f"sweep {axis} {cfg.name} {side}")
                step = getattr(sides, side)(cfg, "train_sgd", dtype, threads)
                timed = measure_step(step, threads, 0.05 if quick else 0.15, 3)
                row[side], row[f"{side}_iqr"] = timed["median_s"], timed["iqr_s"]
                if bar is not None:
                    bar.update(1)
            row["speedup"] = row["torch_eager"] / row["scratch"]
            rows.append(row)
        out[axis] = rows
        out[f"{axis}_crossovers"] = crossovers([(r[axis], r["speedup"]) for r in rows])
    return out


def crossovers(points: list[tuple[float, float]]) -> list[dict]:
    """Where ``speedup`` (torch's time / scratch's) crosses 1.0 between neighbouring (x, speedup)
    points: x found by interpolating log(speedup) linearly in log(x); ``to`` says which side is
    faster past it. A point exactly at 1.0 is passed over: the sides swap across it or not at all."""
    import math

    out = []
    signs = [(x, math.log(s)) for x, s in points if s > 0 and s != 1]
    for (x0, l0), (x1, l1) in zip(signs, signs[1:]):
        if (l0 > 0) == (l1 > 0):
            continue
        t = l0 / (l0 - l1)
        at = math.exp(math.log(x0) + t * (math.log(x1) - math.log(x0)))
        out.append({"between": [x0, x1], "at": at, "to": "torch_eager" if l1 < 0 else "scratch"})
    return out


def sweep_steps(quick: bool) -> int:
    return len(SWEEP_SIDES) * ((len(QUICK_BATCHES) + len(QUICK_WIDTHS)) if quick else (len(BATCHES) + len(WIDTHS)))


def _tick_label(x, _pos=None) -> str:
    return f"{x:g}"


def _time_label(seconds, _pos=None) -> str:
    """A tick's time in the unit that keeps it between 1 and 1000: 100 µs, 1 ms, 10 ms."""
    for scale, unit in ((1e-6, "µs"), (1e-3, "ms")):
        if seconds < 1000 * scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds:.3g} s"


def plot(sweeps: dict, path: str, title: str) -> None:
    """Both sweeps, log-log with decimal ticks at the points measured, times in µs/ms, each
    point's IQR as an error bar, and every crossover marked and named."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4))
    for ax, axis, label in ((axes[0], "batch", "batch size (784-128-10)"),
                            (axes[1], "width", "width w (w-w-w-10, batch 64)")):
        rows = sweeps.get(axis, [])
        xs = [r[axis] for r in rows]
        for side, style in (("scratch", "o-"), ("torch_eager", "s--")):
            half = [r.get(f"{side}_iqr", 0) / 2 for r in rows]
            ax.errorbar(xs, [r[side] for r in rows], yerr=half, fmt=style, capsize=3,
                        label=side.replace("_", " ") + " (bars: IQR)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.xaxis.set_major_locator(FixedLocator(xs))
        ax.xaxis.set_major_formatter(FuncFormatter(_tick_label))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.yaxis.set_major_formatter(FuncFormatter(_time_label))
        ax.yaxis.set_minor_formatter(NullFormatter())
        for cross in sweeps.get(f"{axis}_crossovers", []):
            ax.axvline(cross["at"], color="grey", linestyle=":")
            ax.annotate(f"crossover ≈ {cross['at']:.0f}\n{cross['to'].replace('_', ' ')} faster past it",
                        (cross["at"], 0.95), xycoords=("data", "axes fraction"), ha="center", va="top",
                        fontsize=8, backgroundcolor="white")
        ax.set_xlabel(label)
        ax.set_ylabel("SGD train step (median)")
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
