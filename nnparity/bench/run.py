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

from nnparity.bench import sides
from nnparity.bench.configs import OPS, QUICK_SKIPS, config, config_names as all_configs
from nnparity.bench.machine import gemm_rates, settle

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


#: a median whose blocks spread (IQR / median) more than this makes a ratio built on it unreliable
SPREAD_LIMIT = 0.10
#: a GEMM rate that moved more than this between its measurements around the sides it judges
DRIFT_LIMIT = 0.10
TRAIN_OPS = ("train_sgd", "train_adam")


def _time_op(cfg, op, side, dtype, threads, quick, min_run_time, repeats) -> dict:
    if op not in _side_ops(side, quick):
        return {"skipped": "--quick: torch.compile takes ~10 s per step" if quick
                else "torch.compile: timed on the SGD train step only"}
    step = None
    try:
        step = getattr(sides, side)(cfg, op, dtype, threads)
        row = measure_step(step, threads, min_run_time, repeats)
        if hasattr(step, "compile_seconds"):
            row["compile_s"] = step.compile_seconds
        return row
    except sides.Skip as exc:
        return {"skipped": str(exc)}
    finally:
        step = None


def run_config(cfg, dtype: str, threads: int, quick: bool, bar=None, peak: dict | None = None) -> dict:
    """Every side and operation of one configuration, and the GEMM rate measured interleaved with
    them: before the train steps (warm and cold operands), between SGD's and Adam's sides and after
    Adam's (warm); each train step is judged against the higher of the two measurements around it."""
    started = time.perf_counter()
    large = cfg.large
    min_run_time = 0.1 if quick else 0.3
    repeats = 3 if large else 5
    gemm_time = 0.03 if quick else 0.25
    results: dict[str, dict] = {side: {} for side in STEP_SIDES}
    gemm_samples, brackets = [], {}
    for op in OPS:
        if op in TRAIN_OPS:
            gemm_samples.append(gemm_rates(cfg, dtype, threads, gemm_time,
                                           ("warm", "cold") if not gemm_samples else ("warm",)))
        for _, side in each_side((op,), STEP_SIDES, bar, cfg.name):
            results[side][op] = _time_op(cfg, op, side, dtype, threads, quick, min_run_time, repeats)
        if op in TRAIN_OPS:
            brackets[op] = len(gemm_samples) - 1
    gemm_samples.append(gemm_rates(cfg, dtype, threads, gemm_time, ("warm",)))
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
    gemm = gemm_summary(gemm_samples)
    yardsticks = {op: bracketing_rate(gemm_samples[i], gemm_samples[i + 1]) for op, i in brackets.items()}
    yardsticks["train_sgd_loop"] = yardsticks["train_sgd"]
    judge(results, cfg.train_flops, yardsticks, peak or {})
    shape = {"input_shape": list(cfg.spec().shapes[0]), "layers": [layer.kind for layer in cfg.spec().layers]} \
        if hasattr(cfg, "gemm_list") else {}
    return {"widths": list(cfg.widths), **shape, "batch": cfg.batch, "train_flops": cfg.train_flops,
            "seconds": time.perf_counter() - started, "gemm": gemm, "yardsticks": {op: yardsticks[op] for op in TRAIN_OPS}, "results": results}


def gemm_summary(samples: list[dict]) -> dict:
    """The configuration's GEMM rate: the best of every measurement (a shared machine only ever
    slows a product down), the cold and warm sets of the first, and how far the measurements lay apart."""
    best = max(samples, key=lambda s: s["best_flops"])
    rates = [s["best_flops"] for s in samples]
    return {**best, "samples_flops": rates, "drift": (max(rates) - min(rates)) / max(rates),
            "cold_warm_sets": samples[0]["sets"], "seconds": sum(s["seconds"] for s in samples)}


def bracketing_rate(before: dict, after: dict) -> dict:
    """The GEMM rate measured before and after the sides it judges: the higher of the two, its
    spread, and how far they lay apart."""
    best = before if before["best_flops"] >= after["best_flops"] else after
    drift = abs(before["best_flops"] - after["best_flops"]) / best["best_flops"]
    return {"best_flops": best["best_flops"], "best_spread": best.get("best_spread", 0.0),
            "best_set": best.get("best_set"), "before_flops": before["best_flops"],
            "after_flops": after["best_flops"], "drift": drift}


def spread(row: dict) -> float | None:
    """A median's relative spread: the IQR of its blocks over it."""
    return row["iqr_s"] / row["median_s"] if row.get("median_s") else None


def judge(results: dict, train_flops: int, yardsticks: dict, peak: dict) -> None:
    """Add to every timed row its spread, its ratio to torch eager (with the ratio's spread), and
    for a train step its FLOP rate as a fraction of the GEMM rate around it and of the theoretical
    peak; ``unreliable`` where a spread or the GEMM's drift passes its limit, ``*_fault`` where a
    fraction passes 1 (the yardstick, not the step, is then wrong)."""
    torch_rows = results.get("torch_eager", {})
    for side, ops in results.items():
        for op, row in ops.items():
            if not row.get("median_s"):
                continue
            row["spread"] = spread(row)
            reasons = [f"its blocks spread {100 * row['spread']:.0f}%"] if row["spread"] > SPREAD_LIMIT else []
            ref = torch_rows.get(op, {})
            if ref.get("median_s"):
                row["speedup_vs_torch_eager"] = ref["median_s"] / row["median_s"]
                row["speedup_spread"] = row["spread"] + spread(ref)
                if side != "torch_eager" and spread(ref) > SPREAD_LIMIT:
                    reasons.append(f"torch eager's blocks spread {100 * spread(ref):.0f}%")
            gemm = yardsticks.get(op if side not in LOOP_SIDES else "train_sgd_loop")
            if op.startswith("train") and gemm:
                row["achieved_flops"] = train_flops / row["median_s"]
                row["fraction_of_best_gemm"] = row["achieved_flops"] / gemm["best_flops"]
                row["fraction_spread"] = row["spread"] + gemm["best_spread"]
                if gemm["drift"] > DRIFT_LIMIT:
                    reasons.append(f"the GEMM rate moved {100 * gemm['drift']:.0f}% around it")
                if row["fraction_of_best_gemm"] > 1:
                    row["yardstick_fault"] = ("faster than the GEMM rate measured around it at its own products: "
                                              "the rate was under-measured (load or drift)")
                if peak.get("flops"):
                    row["fraction_of_peak"] = row["achieved_flops"] / peak["flops"]
                    if row["fraction_of_peak"] > 1:
                        row["peak_fault"] = "above the theoretical peak: one of its assumptions is wrong here"
            if reasons:
                row["unreliable"] = "; ".join(reasons)


def measure_memory(names, dtype: str, threads: int, fresh: bool = True) -> dict:
    """Each side in a process of its own (nnparity.bench.memory), and with ``fresh`` one per
    configuration too: a process that ran a smaller configuration first keeps memory its
    allocator reuses (torch's does), which would flatter the next configuration's delta."""
    out = {}
    for side in MEMORY_SIDES:
        rows = {}
        for group in ([[name] for name in names] if fresh else [list(names)]):
            proc = subprocess.run([sys.executable, "-m", "nnparity.bench.memory", side, dtype, str(threads), *group],
                                  capture_output=True, text=True)
            if proc.returncode:
                rows.update({name: {"error": (proc.stderr.strip().splitlines() or ["failed"])[-1]} for name in group})
            else:
                rows.update(json.loads(proc.stdout.strip().splitlines()[-1]))
        out[side] = rows
    return out


def config_names(quick: bool) -> list[str]:
    return [n for n in all_configs() if not (quick and n in QUICK_SKIPS)]


def steps_total(names, quick: bool) -> int:
    return len(names) * (len(OPS) * len(STEP_SIDES) + len(LOOP_SIDES))


def run_all(names, dtype: str, threads: int, quick: bool, bar=None, peak: dict | None = None) -> dict:
    configs = {}
    for name in names:
        configs[name] = run_config(config(name), dtype, threads, quick, bar, peak)
    memory = measure_memory(names, dtype, threads, fresh=not quick)
    for name in names:
        configs[name]["memory"] = {side: rows.get(name, rows) for side, rows in memory.items()}
    return configs
