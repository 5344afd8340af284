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


def gemm_list(cfg) -> list[tuple[str, int, int, int]]:
    """(layout, m, k, n) of every product in one train step, first layer's dL/dx included
    (as the 6·batch·Σ inputs·units count is): NN forward, TN weight gradient, NT input gradient."""
    out = []
    for k, n in zip(cfg.widths[:-1], cfg.widths[1:]):
        out += [("NN", cfg.batch, k, n), ("TN", k, cfg.batch, n), ("NT", cfg.batch, n, k)]
    return out


def _operands(layout, m, k, n, dtype, rng):
    if layout == "NN":
        a, b = rng.standard_normal((m, k)), rng.standard_normal((k, n))
        return a.astype(dtype), b.astype(dtype), False, False
    if layout == "TN":   # a stored (k, m), used transposed
        return rng.standard_normal((k, m)).astype(dtype), rng.standard_normal((k, n)).astype(dtype), True, False
    return rng.standard_normal((m, k)).astype(dtype), rng.standard_normal((n, k)).astype(dtype), False, True


def gemm_rates(cfg, dtype: str, threads: int, min_run_time: float = 0.05) -> dict:
    """FLOP/s of NumPy's BLAS and torch at each distinct GEMM of the configuration, and over the
    whole train step's set (Σ flops / Σ seconds, products counted as often as the step does them)."""
    import numpy as np
    import torch
    from torch.utils.benchmark import Timer

    rng = np.random.default_rng(1)
    shapes = gemm_list(cfg)
    per_shape = {}
    operands = {}
    for shape in dict.fromkeys(shapes):
        layout, m, k, n = shape
        a, b, ta, tb = _operands(layout, m, k, n, dtype, rng)
        ta_, tb_ = torch.from_numpy(a), torch.from_numpy(b)
        operands[shape] = {"numpy": {"np": np, "a": a.T if ta else a, "b": b.T if tb else b,
                                     "o": np.empty((m, n), dtype=dtype)},
                           "torch": {"torch": torch, "a": ta_.T if ta else ta_, "b": tb_.T if tb else tb_}}
        per_shape[shape] = {"layout": layout, "m": m, "k": k, "n": n}
    # one library at a time, each after the other's threads went idle (see settle)
    for lib, stmt in (("numpy", "np.matmul(a, b, out=o)"), ("torch", "torch.mm(a, b)")):
        settle()
        for shape, row in per_shape.items():
            _, m, k, n = shape
            meas = Timer(stmt, globals=operands[shape][lib], num_threads=threads).blocked_autorange(
                min_run_time=min_run_time)
            row[f"{lib}_s"] = meas.median
            row[f"{lib}_flops"] = 2 * m * k * n / meas.median
    total = sum(2 * m * k * n for _, m, k, n in shapes)
    result = {"shapes": list(per_shape.values())}
    for lib in ("numpy", "torch"):
        seconds = sum(per_shape[s][f"{lib}_s"] for s in shapes)
        result[f"{lib}_set_flops"] = total / seconds
        result[f"{lib}_best_shape_flops"] = max(r[f"{lib}_flops"] for r in per_shape.values())
    result["best_flops"] = max(result["numpy_set_flops"], result["torch_set_flops"])
    result["best_lib"] = "numpy" if result["numpy_set_flops"] >= result["torch_set_flops"] else "torch"
    return result
