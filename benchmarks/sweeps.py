"""Scaling sweeps, scratch and torch eager: SGD train-step time against batch size (the
mnist-like 784-128-10 network) and against width (w-w-w-10 networks at batch 64)."""
from __future__ import annotations

from benchmarks import sides
from benchmarks.configs import Config

BATCHES = (1, 4, 16, 64, 256, 1024, 4096)
WIDTHS = (16, 64, 256, 1024, 4096)
QUICK_BATCHES = (1, 16, 256)
QUICK_WIDTHS = (16, 256)
SWEEP_SIDES = ("scratch", "torch_eager")


def sweep(dtype: str, threads: int, quick: bool, bar=None) -> dict:
    from benchmarks.run import measure_step

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
                row[side] = measure_step(step, threads, 0.05 if quick else 0.15, 3)["median_s"]
                if bar is not None:
                    bar.update(1)
            rows.append(row)
        out[axis] = rows
    return out


def sweep_steps(quick: bool) -> int:
    return len(SWEEP_SIDES) * ((len(QUICK_BATCHES) + len(QUICK_WIDTHS)) if quick else (len(BATCHES) + len(WIDTHS)))


def plot(sweeps: dict, path: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, axis, label in ((axes[0], "batch", "batch size (784-128-10)"), (axes[1], "width", "width w (w-w-w-10, batch 64)")):
        rows = sweeps.get(axis, [])
        xs = [r[axis] for r in rows]
        for side, style in (("scratch", "o-"), ("torch_eager", "s--")):
            ax.loglog(xs, [r[side] * 1e6 for r in rows], style, label=side.replace("_", " "), base=2)
        ax.set_xlabel(label)
        ax.set_ylabel("SGD train step (µs)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
