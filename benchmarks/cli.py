"""``nnparity bench`` / ``python -m benchmarks``: time the scratch network against torch and peers.

    python -m benchmarks [--device cpu|cuda|all] [--dtype float32|float64] [--quick]
                         [--json FILE] [--plot FILE.png] [--threads N] [--save]

Bad input: one line naming the flag and what is valid, exit 2.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import time
from pathlib import Path

from benchmarks.formatting import fmt_bytes, fmt_time

PROG = "nnparity bench"
RESULTS = Path(__file__).resolve().parent / "results"
DESCRIPTION = ("Time the scratch network, torch (eager, compile, the loop, Lightning), JAX and micrograd on the "
               "benchmark configurations; see benchmarks/README.md.")
SIDE_LABELS = {"scratch": "scratch (NumPy)", "torch_eager": "torch eager", "torch_compile": "torch.compile",
               "jax_jit": "JAX jit", "micrograd": "micrograd", "scratch_loop": "scratch loop",
               "torch_loop": "torch loop", "lightning": "Lightning"}


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(message)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options, shared by `python -m benchmarks` and `nnparity bench`."""
    p.add_argument("--device", default="cpu", metavar="{cpu,cuda,all}", help="where to time (default cpu)")
    p.add_argument("--dtype", default="float32", metavar="{float32,float64}", help="precision (default float32)")
    p.add_argument("--quick", action="store_true", help="skip the large configuration, torch.compile, "
                   "the training loops; shorter timings and sweeps (under a minute)")
    p.add_argument("--json", metavar="FILE", help="write every figure as one JSON object ('-': stdout)")
    p.add_argument("--plot", metavar="FILE.png", help="draw the scaling sweeps (log-log) to this PNG")
    p.add_argument("--threads", default=None, help="threads for every side (torch, OpenMP, BLAS); default: all cores")
    p.add_argument("--save", action="store_true", help="also keep the results in benchmarks/results/<machine>.json "
                   "(and the plot beside it)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    p = _Parser(prog=prog, description=DESCRIPTION)
    add_arguments(p)
    return p


def parse_args(argv, prog: str = PROG):
    return check_args(build_parser(prog).parse_args(argv))


def check_args(args):
    """Validate parsed options (UsageError naming the flag); returns them with defaults filled in."""
    if args.device not in ("cpu", "cuda", "all"):
        raise UsageError(f"--device: {args.device!r}; expected cpu, cuda or all")
    if args.dtype not in ("float32", "float64"):
        raise UsageError(f"--dtype: {args.dtype!r}; expected float32 or float64")
    if args.threads is None:
        args.threads = os.cpu_count() or 1
    else:
        given = args.threads
        try:
            args.threads = int(given)
        except ValueError:
            args.threads = 0
        if args.threads < 1:
            raise UsageError(f"--threads: {given!r}; expected a whole number >= 1")
    if args.plot is not None and not args.plot.lower().endswith(".png"):
        raise UsageError(f"--plot: {args.plot!r}; expected a file name ending in .png")
    for flag, path in (("--json", args.json), ("--plot", args.plot)):
        if path and path != "-" and not Path(path).resolve().parent.is_dir():
            raise UsageError(f"{flag}: {path!r}: its folder does not exist")
    return args


def _cuda_available() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


def format_table(data: dict) -> str:
    from benchmarks.configs import OPS

    lines = []
    for name, c in data["configs"].items():
        widths = "-".join(map(str, c["widths"]))
        gemm = c["gemm"]
        lines.append(f"\n{name}: {widths}, batch {c['batch']}  (train step {c['train_flops'] / 1e9:.3g} GFLOP; "
                     f"best GEMM rate at its shapes {gemm['best_flops'] / 1e9:.1f} GFLOP/s, {gemm['best_lib']}; "
                     f"numpy {gemm['numpy_set_flops'] / 1e9:.1f}, torch {gemm['torch_set_flops'] / 1e9:.1f})")
        head = f"  {'side':16} {'forward':>10} {'fwd+bwd':>10} {'train SGD':>10} {'train Adam':>10} " \
               f"{'SGD vs torch':>12} {'Adam vs torch':>13} {'SGD %peak':>9} {'peak mem':>9} {'mem delta':>9}"
        lines.append(head)
        for side, ops in c["results"].items():
            cells = [fmt_time(ops.get(op, {}).get("median_s")) for op in OPS]
            if all(x == "-" for x in cells):
                reason = next((r.get("skipped") for r in ops.values() if "skipped" in r), "")
                lines.append(f"  {SIDE_LABELS.get(side, side):16} skipped: {reason}")
                continue
            sgd, adam = ops.get("train_sgd", {}), ops.get("train_adam", {})
            vs = [f"{r['speedup_vs_torch_eager']:.2f}x" if "speedup_vs_torch_eager" in r else "-" for r in (sgd, adam)]
            frac = "fault" if "yardstick_fault" in sgd else \
                f"{100 * sgd['fraction_of_best_gemm']:.1f}%" if "fraction_of_best_gemm" in sgd else "-"
            mem = c.get("memory", {}).get(side, {})
            lines.append(f"  {SIDE_LABELS.get(side, side):16} " + " ".join(f"{x:>10}" for x in cells)
                         + f" {vs[0]:>12} {vs[1]:>13} {frac:>9} {fmt_bytes(mem.get('peak_bytes')):>9}"
                         f" {fmt_bytes(mem.get('delta_bytes')):>9}")
            if "compile_s" in sgd:
                lines[-1] += f"   (compile {sgd['compile_s']:.1f} s)"
    lines.append("\nvs torch: torch eager's median / this side's (>1: faster than torch eager). %peak: "
                 "the FLOPs of the products a step does, per second, over the best GEMM rate NumPy or torch "
                 "reach at the configuration's own shapes, measured before and after its sides (fault: above "
                 "that rate, which was then under-measured). peak mem: the side's own process (imports included); "
                 "delta: above its RSS before the step was built.")
    return "\n".join(lines)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()


def machine_name(info: dict) -> str:
    return f"{_slug(info['cpu'])}-{info['cores']}core"


def run(args) -> int:
    from benchmarks.machine import fix_threads, machine_info, thread_info

    if args.device == "cuda" and not _cuda_available():
        print(f"{PROG}: --device cuda: no CUDA device here (torch.cuda.is_available() is False); "
              f"run --device cpu", file=sys.stderr)
        return 2
    from benchmarks.load import LoadWatch

    started, watch = time.perf_counter(), LoadWatch()
    limiter = fix_threads(args.threads)  # noqa: F841  (keeps the limits in force)
    data = {"settings": {"device": args.device, "dtype": args.dtype, "threads": args.threads, "quick": args.quick},
            "machine": machine_info(), "devices": {}}
    gpu = args.device in ("cuda", "all") and _cuda_available()
    if args.device == "all" and not gpu:
        data["devices"]["cuda"] = {"skipped": "no CUDA device here (torch.cuda.is_available() is False)"}
        print(f"{PROG}: cuda skipped: {data['devices']['cuda']['skipped']}", file=sys.stderr)
    from tqdm import tqdm

    from benchmarks import gpu as gpu_run
    from benchmarks import run as bench_run
    from benchmarks import sweeps

    names = bench_run.config_names(args.quick) if args.device != "cuda" else []
    total = (bench_run.steps_total(names, args.quick) + sweeps.sweep_steps(args.quick) if names else 0) \
        + (gpu_run.steps_total(args.quick) if gpu else 0)
    with tqdm(total=total, desc="bench", unit="step", disable=args.no_progress or not sys.stderr.isatty(),
              leave=False) as bar:
        if names:
            data["configs"] = bench_run.run_all(args.dtype, args.threads, args.quick, bar)
            data["sweeps"] = sweeps.sweep(args.dtype, args.threads, args.quick, bar)
            data["devices"]["cpu"] = "timed"
        if gpu:
            data["gpu"] = gpu_run.run_all(args.dtype, args.quick, bar)
            data["devices"]["cuda"] = "timed"
    data["machine"]["threads"] = thread_info()
    data["load"] = watch.report()
    return _finish(args, data, started)


def _plots(data: dict, path: str, dtype: str, threads) -> list[str]:
    """The sweeps (CPU) to ``path``, the GPU's chart to ``path`` too, or beside it when both ran."""
    written = []
    if "sweeps" in data:
        from benchmarks.sweeps import plot

        plot(data["sweeps"], path, f"{data['machine']['cpu']}, {dtype}, {threads} threads")
        written.append(path)
    if "gpu" in data:
        from benchmarks.gpu import plot

        gpu_path = path if "sweeps" not in data else str(Path(path).with_suffix("")) + "-gpu.png"
        plot(data["gpu"], gpu_path)
        written.append(gpu_path)
    return written


def _finish(args, data, started) -> int:
    data["seconds"] = time.perf_counter() - started
    if "configs" in data:
        print(f"{PROG}  dtype={args.dtype}  threads={args.threads}  cpu: {data['machine']['cpu']} "
              f"({data['machine']['cores']} cores)" + ("  --quick" if args.quick else ""))
        blas = [t for t in data["machine"].get("threads", []) if t.get("user_api") == "blas"]
        print("BLAS: " + ", ".join(f"{t.get('internal_api')} {t.get('version', '')} kernel "
                                   f"{t.get('architecture', '?')} x{t.get('num_threads')}" for t in blas))
        print(format_table(data))
    if "gpu" in data:
        from benchmarks.gpu import format_table as gpu_table

        print(gpu_table(data["gpu"]))
    if args.plot:
        for path in _plots(data, args.plot, args.dtype, args.threads):
            print(f"plot: {path}")
    text = json.dumps(data, indent=1, default=_json_default)
    if args.json == "-":
        print(text)
    elif args.json:
        Path(args.json).write_text(text)
        print(f"json: {args.json}")
    if args.save:
        RESULTS.mkdir(exist_ok=True)
        name = machine_name(data["machine"]) if "configs" in data else _slug(data["gpu"]["device"]["name"])
        stem = RESULTS / f"{name}-{args.dtype}"
        stem.with_suffix(".json").write_text(text)
        _plots(data, str(stem) + ("-sweeps.png" if "sweeps" in data else "-gpu.png"), args.dtype, args.threads)
        print(f"saved: {stem}.json")
    print(f"total {data['seconds']:.1f} s")
    for warning in load_warnings(data):
        print(f"{PROG}: warning: {warning}", file=sys.stderr)
    return 0


def load_warnings(data: dict) -> list[str]:
    """One line per reason the run's figures are unreliable: the machine's load, a GEMM rate that
    drifted, a figure above the rate it is measured against."""
    load = data.get("load", {})
    warnings = [f"{reason}: the ratios are unreliable; rerun on a quiet machine" for reason in load.get("reasons", [])]
    for name, c in data.get("configs", {}).items():
        drift = c.get("gemm", {}).get("drift", 0)
        if drift > 0.1:
            warnings.append(f"{name}: the GEMM rate moved by {100 * drift:.0f}% between before and after its sides")
        for side, ops in c.get("results", {}).items():
            for op, row in ops.items():
                if "yardstick_fault" in row:
                    warnings.append(f"{name} {side} {op}: {row['yardstick_fault']}")
    return warnings


def _json_default(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def main(argv: list[str] | None = None, prog: str = PROG) -> int:
    try:
        args = parse_args(sys.argv[1:] if argv is None else argv, prog)
    except UsageError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    return run(args)
