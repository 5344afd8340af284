"""The benchmark run: every configuration, operation and side timed in one process, interleaved.

For each configuration and operation the sides run back to back (scratch, torch eager, then the
others), so the ratios come from the same minutes of the machine's load. Timing is
torch.utils.benchmark's: ``blocked_autorange`` (warm-up, blocks of calls, the median of the
blocks and their interquartile range); a step over 0.1 s is timed ``repeats`` times one call each
instead. Each side's inputs rotate through distinct batches (``configs.rotation_count``).
"""
from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time

from benchmarks import sides
from benchmarks.configs import CONFIGS, OPS, QUICK_SKIPS, config
from benchmarks.machine import gemm_rates, settle

#: the sides timed by the harness itself, in the report's order
STEP_SIDES = ("scratch", "torch_eager", "torch_compile", "jax_jit", "micrograd")
LOOP_SIDES = ("scratch_loop", "torch_loop", "lightning")
COMPILE_OPS = ("train_sgd",)            # torch.compile: the train step only (each compile ~10 s)
MEMORY_SIDES = ("scratch", "torch_eager", "jax_jit")


def measure_step(step, threads: int, min_run_time: float, repeats: int) -> dict:
    """Median and spread of one step's wall time (torch.utils.benchmark)."""
    from torch.utils.benchmark import Timer

    settle()
    t0 = time.perf_counter()
    step()
    first = time.perf_counter() - t0
    timer = Timer("step()", globals={"step": step}, num_threads=threads)
    if first > 0.1:
        runs = [timer.timeit(1).median for _ in range(repeats)]
        q = statistics.quantiles(runs, n=4) if len(runs) > 1 else [runs[0]] * 3
        return {"median_s": statistics.median(runs), "iqr_s": q[2] - q[0], "runs": len(runs), "per_run": 1}
    m = timer.blocked_autorange(min_run_time=min_run_time)
    return {"median_s": m.median, "iqr_s": m.iqr, "runs": len(m.times), "per_run": m.number_per_run}


def each_side(ops, side_names, bar, label: str):
    """(op, side) for every operation and side, in the order they are timed, with the progress
    bar showing each and counting it once done (skipped ones too)."""
    for op in ops:
        for side in side_names:
            if bar is not None:
                bar.set_postfix_str(f"{label} {op} {side}")
            yield op, side
            if bar is not None:
                bar.update(1)


def _side_ops(side: str, quick: bool) -> tuple[str, ...]:
    if side == "torch_compile":
        return () if quick else COMPILE_OPS
    return OPS


def run_config(cfg, dtype: str, threads: int, quick: bool, bar=None) -> dict:
    large = cfg.batch * sum(k * n for k, n in zip(cfg.widths[:-1], cfg.widths[1:])) > 1e9
    min_run_time = 0.1 if quick else 0.3
    repeats = 3 if large else 5
    gemm_min_run_time = 0.02 if quick else 0.05
    gemm_before = gemm_rates(cfg, dtype, threads, min_run_time=gemm_min_run_time)
    results: dict[str, dict] = {side: {} for side in STEP_SIDES}
    for op, side in each_side(OPS, STEP_SIDES, bar, cfg.name):
        if op not in _side_ops(side, quick):
            results[side][op] = {"skipped": "--quick: torch.compile takes ~10 s per step" if quick
                                 else "torch.compile: timed on the SGD train step only"}
            continue
        try:
            step = getattr(sides, side)(cfg, op, dtype, threads)
            row = measure_step(step, threads, min_run_time, repeats)
            if hasattr(step, "compile_seconds"):
                row["compile_s"] = step.compile_seconds
            results[side][op] = row
        except sides.Skip as exc:
            results[side][op] = {"skipped": str(exc)}
        finally:
            step = None
    for backend, side in zip(("scratch", "torch", "lightning"), LOOP_SIDES):
        if bar is not None:
            bar.set_postfix_str(f"{cfg.name} loop {backend}")
        if quick or large:
            results[side] = {"train_sgd": {"skipped": "--quick" if quick else
                                           "the large configuration: its loop is the train step's GEMMs"}}
        else:
            median, iqr, n = sides.training_loop(backend, cfg, dtype, threads, steps=40 if cfg.batch < 256 else 12)
            results[side] = {"train_sgd": {"median_s": median, "iqr_s": iqr, "runs": n, "per_run": 1}}
        if bar is not None:
            bar.update(1)
    gemm = bracketing_rate(gemm_before, gemm_rates(cfg, dtype, threads, min_run_time=gemm_min_run_time))
    summary = {}
    torch_t = {op: results["torch_eager"].get(op, {}).get("median_s") for op in OPS}
    for side, ops in results.items():
        for op, row in ops.items():
            t = row.get("median_s")
            if t is None:
                continue
            if torch_t.get(op):
                row["speedup_vs_torch_eager"] = torch_t[op] / t
            if op.startswith("train"):
                row["achieved_flops"] = cfg.train_flops / t
                row["fraction_of_best_gemm"] = row["achieved_flops"] / gemm["best_flops"]
                if row["fraction_of_best_gemm"] > 1:
                    row["yardstick_fault"] = ("faster than the GEMM rate measured at its own products: "
                                              "the rate was under-measured (load or drift); no %peak")
    return {"widths": list(cfg.widths), "batch": cfg.batch, "train_flops": cfg.train_flops,
            "gemm": gemm, "results": results, **summary}


def bracketing_rate(before: dict, after: dict) -> dict:
    """The GEMM rate measured before and after a configuration's sides: the higher of the two
    (a shared machine only ever slows a product down), with how far they lay apart."""
    best = before if before["best_flops"] >= after["best_flops"] else after
    drift = abs(before["best_flops"] - after["best_flops"]) / best["best_flops"]
    return {**best, "before_flops": before["best_flops"], "after_flops": after["best_flops"], "drift": drift}


def measure_memory(names, dtype: str, threads: int, fresh: bool = True) -> dict:
    """Each side in a process of its own (benchmarks.memory), and with ``fresh`` one per
    configuration too: a process that ran a smaller configuration first keeps memory its
    allocator reuses (torch's does), which would flatter the next configuration's delta."""
    out = {}
    for side in MEMORY_SIDES:
        rows = {}
        for group in ([[name] for name in names] if fresh else [list(names)]):
            proc = subprocess.run([sys.executable, "-m", "benchmarks.memory", side, dtype, str(threads), *group],
                                  capture_output=True, text=True)
            if proc.returncode:
                rows.update({name: {"error": (proc.stderr.strip().splitlines() or ["failed"])[-1]} for name in group})
            else:
                rows.update(json.loads(proc.stdout.strip().splitlines()[-1]))
        out[side] = rows
    return out


def config_names(quick: bool) -> list[str]:
    return [n for n in CONFIGS if not (quick and n in QUICK_SKIPS)]


def steps_total(names, quick: bool) -> int:
    return len(names) * (len(OPS) * len(STEP_SIDES) + len(LOOP_SIDES))


def run_all(dtype: str, threads: int, quick: bool, bar=None) -> dict:
    names = config_names(quick)
    configs = {}
    for name in names:
        configs[name] = run_config(config(name), dtype, threads, quick, bar)
    memory = measure_memory(names, dtype, threads, fresh=not quick)
    for name in names:
        configs[name]["memory"] = {side: rows.get(name, rows) for side, rows in memory.items()}
    return configs
