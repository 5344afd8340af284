"""The machine a benchmark ran on, the thread counts every side gets, and the GEMM limit.

``machine_info()``: CPU model, cores, BLAS (and the kernel OpenBLAS picked) via threadpoolctl,
library versions. ``fix_threads(n)``: the same thread count for torch (intra-op), OpenMP and
every BLAS. ``gemm_rates(cfg, dtype, threads)``: the matrix-product rate NumPy's BLAS and torch
reach at the configuration's own GEMM shapes (forward x @ W, backward xᵀ @ g and g @ Wᵀ), the
hardware limit each train step is measured against.
"""
from __future__ import annotations

import os
import platform
import socket
import time
from importlib import metadata


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def thread_info() -> list[dict]:
    """threadpoolctl's view: every BLAS and OpenMP pool loaded, its threads and kernel."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return [{"note": "threadpoolctl is not installed (pip install -e '.[bench]')"}]
    keys = ("user_api", "internal_api", "prefix", "version", "num_threads", "threading_layer", "architecture")
    return [{k: pool.get(k) for k in keys if pool.get(k) is not None} for pool in threadpool_info()]


def machine_info() -> dict:
    import numpy as np

    info = {
        "host": socket.gethostname(),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": {name: _version(name) for name in
                     ("numpy", "torch", "lightning", "jax", "jaxlib", "micrograd", "threadpoolctl")},
        "numpy_blas": np.show_config(mode="dicts").get("Build Dependencies", {}).get("blas", {}),
        "env": {k: os.environ[k] for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OMP_NUM_THREADS",
                                           "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS") if k in os.environ},
    }
    try:
        import torch

        info["torch_blas"] = "MKL" if torch.backends.mkl.is_available() else "other"
        info["torch_cpu_capability"] = torch.backends.cpu.get_cpu_capability()
    except ImportError:
        pass
    return info


#: seconds to wait before timing a side: OpenBLAS's threads spin for ~0.1 s after a product
#: returns (THREAD_TIMEOUT) and torch's OpenMP pool spins too; on 2 cores a pool still spinning
#: halves the next library's rate (torch.mm right after np.matmul: 71 instead of 149 GFLOP/s).
SETTLE_S = 0.25


def settle() -> None:
    """Let the previous side's thread pools go idle before the next side is timed."""
    time.sleep(SETTLE_S)


def fix_threads(n: int):
    """Every pool at ``n`` threads: torch's intra-op pool, OpenMP and BLAS (threadpoolctl).
    Returns the threadpoolctl limiter (keep a reference) or None without threadpoolctl."""
    try:
        import torch

        torch.set_num_threads(n)
    except ImportError:
        pass
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return None
    return threadpool_limits(limits=n)


# ------------------------------------------------------------------------------------- GEMMs

#: cold operands: enough distinct copies to pass this many bytes, so no copy is in cache when used
COLD_BYTES = 64 * 2**20
COLD_MAX_COPIES = 32


def gemm_list(cfg) -> list[tuple[str, int, int, int]]:
    """(layout, m, k, n) of every product in one train step, as ``Config.gemm_shapes`` counts them:
    NN forward, TN weight gradient, NT input gradient (none for the first layer); a CNN's
    (configs.ImageConfig) as its layers do them (im2col convolutions)."""
    if hasattr(cfg, "gemm_list"):
        return cfg.gemm_list()
    out = []
    for i, (k, n) in enumerate(zip(cfg.widths[:-1], cfg.widths[1:])):
        out += [("NN", cfg.batch, k, n), ("TN", k, cfg.batch, n)]
        if i > 0:
            out.append(("NT", cfg.batch, n, k))
    return out


def _operands(layout, m, k, n, dtype, rng):
    """(a, b) as the product uses them, views of arrays stored in the layout's order."""
    if layout == "NN":
        return rng.standard_normal((m, k)).astype(dtype), rng.standard_normal((k, n)).astype(dtype)
    if layout == "TN":   # a stored (k, m), used transposed
        return rng.standard_normal((k, m)).astype(dtype).T, rng.standard_normal((k, n)).astype(dtype)
    return rng.standard_normal((m, k)).astype(dtype), rng.standard_normal((n, k)).astype(dtype).T


def cold_copies(a, b) -> int:
    """Distinct operand pairs to rotate through so that none is still cached when used again."""
    return int(min(COLD_MAX_COPIES, max(1, -(-COLD_BYTES // max(a.nbytes + b.nbytes, 1)))))


def _timers(shape, dtype, rng, threads, temperatures):
    """(lib, temperature) -> torch.utils.benchmark Timer of one product at ``shape``."""
    import itertools

    import numpy as np
    import torch
    from torch.utils.benchmark import Timer

    layout, m, k, n = shape
    a, b = _operands(layout, m, k, n, dtype, rng)
    pairs = {"warm": [(a, b)]}
    if "cold" in temperatures:
        pairs["cold"] = [(a, b)] + [_operands(layout, m, k, n, dtype, rng) for _ in range(cold_copies(a, b) - 1)]
    out = np.empty((m, n), dtype=dtype)
    timers = {}
    for temp in temperatures:
        np_next = itertools.cycle(pairs[temp]).__next__
        torch_next = itertools.cycle([(torch.from_numpy(x), torch.from_numpy(y)) for x, y in pairs[temp]]).__next__
        timers["numpy", temp] = Timer("np.matmul(*nxt(), out=o)", globals={"np": np, "nxt": np_next, "o": out},
                                      num_threads=threads)
        timers["torch", temp] = Timer("torch.mm(*nxt())", globals={"torch": torch, "nxt": torch_next},
                                      num_threads=threads)
    return timers


def gemm_rates(cfg, dtype: str, threads: int, min_run_time: float = 0.05,
               temperatures: tuple[str, ...] = ("warm", "cold")) -> dict:
    """FLOP/s of NumPy's BLAS and torch at every GEMM of the configuration's train step, on warm
    operands (the same pair each call) and cold ones (a rotation of pairs past the cache), each
    over the whole step's set (Σ flops / Σ seconds, products counted as often as the step does
    them) with its spread (Σ IQR / Σ median of the blocks). ``best_flops``: the highest set rate."""
    import numpy as np

    started = time.perf_counter()
    rng = np.random.default_rng(1)
    shapes = gemm_list(cfg)
    per_shape = {shape: {"layout": shape[0], "m": shape[1], "k": shape[2], "n": shape[3]}
                 for shape in dict.fromkeys(shapes)}
    timers = {shape: _timers(shape, dtype, rng, threads, temperatures) for shape in per_shape}
    total = sum(2 * m * k * n for _, m, k, n in shapes)
    result = {"shapes": list(per_shape.values()), "min_run_time_s": min_run_time, "sets": {}}
    # one library at a time, each after the other's threads went idle (see settle)
    for lib in ("numpy", "torch"):
        for temp in temperatures:
            settle()
            for shape, row in per_shape.items():
                meas = timers[shape][lib, temp].blocked_autorange(min_run_time=min_run_time)
                row[f"{lib}_{temp}_s"], row[f"{lib}_{temp}_iqr_s"] = meas.median, meas.iqr
            seconds = sum(per_shape[s][f"{lib}_{temp}_s"] for s in shapes)
            result["sets"][f"{lib}_{temp}"] = {"flops": total / seconds,
                                               "spread": sum(per_shape[s][f"{lib}_{temp}_iqr_s"] for s in shapes) / seconds}
    best = max(result["sets"], key=lambda key: result["sets"][key]["flops"])
    result.update(best_flops=result["sets"][best]["flops"], best_spread=result["sets"][best]["spread"], best_set=best,
                  seconds=time.perf_counter() - started)
    return result
