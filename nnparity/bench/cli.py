"""``nnparity bench`` / ``python -m nnparity.bench``: time the scratch network against torch and peers.

    nnparity bench [--device cpu|cuda|all] [--dtype float32|float64] [--quick] [--config NAME] [--json]
                   [--plot FILE.png] [--force] [--threads N] [--save] [--no-progress]

Bad input: one line naming the flag and what is valid, exit 2, before any timing starts.
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

from nnparity.bench.formatting import fmt_bytes, fmt_time
from nnparity.outputs import check_output_file, write_via_temp
from nnparity.usage import UsageError, check_threads

PROG = "nnparity bench"
#: --save's folder: benchmarks/results/ of the checkout this package runs from
RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results"
DESCRIPTION = ("Time the scratch network, torch (eager, compile, the loop, Lightning), JAX and micrograd on the "
               "benchmark configurations, against the machine's GEMM rate and theoretical peak; "
               "see benchmarks/README.md.")
SIDE_LABELS = {"scratch": "scratch (NumPy)", "torch_eager": "torch eager", "torch_compile": "torch.compile",
               "jax_jit": "JAX jit", "micrograd": "micrograd", "scratch_loop": "scratch loop",
               "torch_loop": "torch loop", "lightning": "Lightning"}


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(message)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options, shared by `nnparity bench` and `python -m nnparity.bench`."""
    p.add_argument("--device", default="cpu", metavar="{cpu,cuda,all}", help="where to time (default cpu)")
    p.add_argument("--dtype", default="float32", metavar="{float32,float64}", help="precision (default float32)")
    p.add_argument("--quick", action="store_true", help="skip the large configuration, torch.compile, "
                   "the training loops; shorter timings and sweeps (under a minute on a quiet machine)")
    p.add_argument("--config", action="append", metavar="NAME", help="time only this configuration, on the CPU and "
                   "the GPU (repeatable; tiny, small, mnist, wide, large, the CNNs lenet, resnet_small, the sequence "
                   "models char_lstm, tiny_gpt; default: all, less large, the CNNs and the sequence models with "
                   "--quick; on the GPU the MLPs and large at batch 8192)")
    p.add_argument("--json", action="store_true", help="print one JSON object (every figure) instead of the tables")
    p.add_argument("--plot", metavar="FILE.png", help="draw the scaling sweeps to this PNG (an existing file is "
                   "refused unless --force)")
    p.add_argument("--force", action="store_true", help="overwrite an existing --plot file")
    p.add_argument("--threads", default=None, help="threads for every side (torch, OpenMP, BLAS); default: all cores")
    p.add_argument("--save", action="store_true", help="also keep the JSON in benchmarks/results/<machine>-<dtype>.json "
                   "(<machine>-cnn-<dtype>.json, -seq-, -cnn-seq- for a run of CNNs or sequence models without "
                   "the MLPs) and the sweeps' PNG beside it (replacing that file's earlier results; a checkout only)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    p = _Parser(prog=prog, description=DESCRIPTION)
    add_arguments(p)
    return p


def check_args(args):
    """Validate parsed options and the files they name (UsageError naming the flag), before any
    work; returns them with defaults filled in."""
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
        check_threads(args.threads)
    if args.config:
        from nnparity.bench.configs import config_names

        unknown = [name for name in args.config if name not in config_names()]
        if unknown:
            raise UsageError(f"--config: {unknown[0]!r}; expected one of {', '.join(config_names())}")
        args.config = list(dict.fromkeys(args.config))
    if args.plot is not None:
        check_output_file(args.plot, "--plot", force=args.force, suffix=".png")
    if args.save and not RESULTS.is_dir():
        raise UsageError(f"--save: no folder {str(RESULTS)!r} (it lives in a checkout of the repository); "
                         f"use --json and --plot instead")
    return args


def _cuda_available() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


def _pm(value: str, spread) -> str:
    """A figure with its spread in percent (``±``), or the figure alone."""
    return value if spread is None else f"{value} ±{100 * spread:.0f}%"


def _gflops(flops) -> str:
    return "-" if flops is None else f"{flops / 1e9:.1f}"


def format_peak(peak: dict) -> str:
    if not peak.get("flops"):
        return "theoretical peak: unknown (" + "; ".join(peak.get("assumptions", [])) + ")"
    return (f"theoretical peak {_gflops(peak['flops'])} GFLOP/s = {peak['cores']} cores x {peak['fma_units']} FMA "
            f"x {peak['lanes']} lanes x 2 x {peak['mhz']:.0f} MHz; assumed: " + "; ".join(peak["assumptions"]))


def _config_head(name: str, c: dict) -> str:
    gemm = c["gemm"]
    sets = ", ".join(f"{key.replace('_', ' ')} {_gflops(v['flops'])} ±{100 * v['spread']:.0f}%"
                     for key, v in gemm["cold_warm_sets"].items())
    shape = ("x".join(map(str, c["input_shape"])) + " " + "-".join(c["layers"])) if "layers" in c else \
        "-".join(map(str, c["widths"]))
    return (f"\n{name}: {shape}, batch {c['batch']}  (train step "
            f"{c['train_flops'] / 1e9:.3g} GFLOP)\n  GEMM at its shapes, GFLOP/s: best "
            f"{_gflops(gemm['best_flops'])} ±{100 * gemm['best_spread']:.0f}% ({gemm['best_set'].replace('_', ' ')}); "
            f"{sets}; measured {len(gemm['samples_flops'])} times around the train steps, apart by "
            f"{100 * gemm['drift']:.0f}%; {gemm['seconds']:.1f} s of the configuration's {c['seconds']:.1f} s")


def _side_line(side: str, ops: dict, mem: dict) -> str:
    from nnparity.bench.configs import OPS

    cells = [_pm(fmt_time(ops.get(op, {}).get("median_s")), ops.get(op, {}).get("spread")) for op in OPS]
    sgd, adam = ops.get("train_sgd", {}), ops.get("train_adam", {})
    vs = [_pm(f"{r['speedup_vs_torch_eager']:.2f}x", r["speedup_spread"]) if "speedup_vs_torch_eager" in r
          else "-" for r in (sgd, adam)]
    gemm = "fault" if "yardstick_fault" in sgd else _pm(f"{100 * sgd['fraction_of_best_gemm']:.0f}%",
                                                         sgd["fraction_spread"]) if "fraction_of_best_gemm" in sgd else "-"
    peak = "fault" if "peak_fault" in sgd else f"{100 * sgd['fraction_of_peak']:.0f}%" if "fraction_of_peak" in sgd else "-"
    flag = "!" if any("unreliable" in r for r in ops.values()) else " "
    line = (f" {flag}{SIDE_LABELS.get(side, side):16} " + " ".join(f"{x:>15}" for x in cells)
            + f" {vs[0]:>12} {vs[1]:>12} {gemm:>9} {peak:>6} {fmt_bytes(mem.get('peak_bytes')):>9}"
            f" {fmt_bytes(mem.get('delta_bytes')):>9}")
    if "compile_s" in sgd:
        line += f"   (compile {sgd['compile_s']:.1f} s)"
    return line


def format_table(data: dict) -> str:
    lines = [format_peak(data.get("peak", {}))]
    for name, c in data["configs"].items():
        lines.append(_config_head(name, c))
        lines.append(f"  {'side':16} {'forward':>15} {'fwd+bwd':>15} {'train SGD':>15} {'train Adam':>15} "
                     f"{'SGD vs torch':>12} {'Adam vs torch':>12} {'SGD %GEMM':>9} {'%peak':>6} {'peak mem':>9} "
                     f"{'mem delta':>9}")
        for side, ops in c["results"].items():
            if not any("median_s" in r for r in ops.values()):
                reason = next((r.get("skipped") for r in ops.values() if "skipped" in r), "")
                lines.append(f"  {SIDE_LABELS.get(side, side):16} skipped: {reason}")
                continue
            lines.append(_side_line(side, ops, c.get("memory", {}).get(side, {})))
    lines.append("\n±: the spread of a median (IQR of its blocks over the median; of a ratio or fraction, the "
                 "sum of its parts'). vs torch: torch eager's median / this side's (>1: faster). %GEMM: the FLOPs "
                 "of the products a step does, per second, over the best GEMM rate NumPy or torch reach at the "
                 "configuration's shapes, measured just before and after that step's sides (fault: above it, the "
                 "rate was under-measured). %peak: over the theoretical peak. !: a ratio on this row is "
                 "unreliable (see the warnings). peak mem: the side's own process (imports included); delta: above "
                 "its RSS before the step was built.")
    return "\n".join(lines)


def format_sweeps(sweeps: dict) -> str:
    lines = ["\nsweeps (SGD train step, scratch vs torch eager: torch's time / scratch's):"]
    for axis in ("batch", "width"):
        rows = sweeps.get(axis, [])
        lines.append(f"  {axis:5}: " + "  ".join(f"{r[axis]}: {r['speedup']:.2f}x" for r in rows))
        for cross in sweeps.get(f"{axis}_crossovers", []):
            lines.append(f"         crossover at {axis} ≈ {cross['at']:.0f} (between {cross['between'][0]} and "
                         f"{cross['between'][1]}): {SIDE_LABELS[cross['to']]} faster past it")
        if rows and not sweeps.get(f"{axis}_crossovers"):
            lines.append(f"         no crossover: {'scratch' if rows[0]['speedup'] > 1 else 'torch eager'} "
                         f"faster at every {axis} measured")
    return "\n".join(lines)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()


def machine_name(info: dict) -> str:
    return f"{_slug(info['cpu'])}-{info['cores']}core"


def run(args) -> int:
    """The run, on options ``check_args`` accepted."""
    from nnparity.bench.machine import fix_threads, machine_info, thread_info

    if args.device == "cuda" and not _cuda_available():
        raise UsageError("--device cuda: no CUDA device here (torch.cuda.is_available() is False); run --device cpu")
    from nnparity.bench.load import LoadWatch, quiet_check

    started = time.perf_counter()
    for reason in quiet_check():
        print(f"{PROG}: warning: the machine is not quiet: {reason}; the figures will be unreliable "
              f"and the run slower" + (" than a minute" if args.quick else ""), file=sys.stderr)
    watch = LoadWatch()
    limiter = fix_threads(args.threads)  # noqa: F841  (keeps the limits in force)
    data = {"settings": {"device": args.device, "dtype": args.dtype, "threads": args.threads, "quick": args.quick,
                         "configs": args.config},
            "machine": machine_info(), "devices": {}}
    gpu = args.device in ("cuda", "all") and _cuda_available()
    if args.device == "all" and not gpu:
        data["devices"]["cuda"] = {"skipped": "no CUDA device here (torch.cuda.is_available() is False)"}
        print(f"{PROG}: cuda skipped: {data['devices']['cuda']['skipped']}", file=sys.stderr)
    from tqdm import tqdm

    from nnparity.bench import gpu as gpu_run
    from nnparity.bench import run as bench_run
    from nnparity.bench import sweeps
    from nnparity.bench.peak import machine_peak

    names = (args.config or bench_run.config_names(args.quick)) if args.device != "cuda" else []
    total = (bench_run.steps_total(names, args.quick) + sweeps.sweep_steps(args.quick) if names else 0) \
        + (gpu_run.steps_total(args.quick, args.config) if gpu else 0)
    with tqdm(total=total, desc="bench", unit="step", disable=args.no_progress or not sys.stderr.isatty(),
              leave=False) as bar:
        if names:
            data["peak"] = machine_peak(args.dtype, args.threads)
            data["configs"] = bench_run.run_all(names, args.dtype, args.threads, args.quick, bar, data["peak"])
            data["sweeps"] = sweeps.sweep(args.dtype, args.threads, args.quick, bar)
            data["devices"]["cpu"] = "timed"
        if gpu:
            data["gpu"] = gpu_run.run_all(args.dtype, args.quick, bar, args.config)
            data["devices"]["cuda"] = "timed"
    data["machine"]["threads"] = thread_info()
    data["load"] = watch.report()
    return _finish(args, data, started)


def _plots(data: dict, path: str, dtype: str, threads) -> list[str]:
    """The sweeps (CPU) to ``path``, the GPU's chart to ``path`` too, or beside it when both ran;
    each written to a temporary file and renamed into place."""
    written = []
    if "sweeps" in data:
        from nnparity.bench.sweeps import plot

        title = f"{data['machine']['cpu']}, {dtype}, {threads} threads"
        write_via_temp(path, lambda tmp: plot(data["sweeps"], tmp, title), "--plot")
        written.append(path)
    if "gpu" in data:
        from nnparity.bench.gpu import plot

        gpu_path = path if "sweeps" not in data else str(Path(path).with_suffix("")) + "-gpu.png"
        write_via_temp(gpu_path, lambda tmp: plot(data["gpu"], tmp), "--plot")
        written.append(gpu_path)
    return written


def _report(args, data) -> None:
    """The tables (stdout), or nothing where --json prints the object instead."""
    if args.json:
        return
    if "configs" in data:
        print(f"{PROG}  dtype={args.dtype}  threads={args.threads}  cpu: {data['machine']['cpu']} "
              f"({data['machine']['cores']} cores)" + ("  --quick" if args.quick else ""))
        blas = [t for t in data["machine"].get("threads", []) if t.get("user_api") == "blas"]
        print("BLAS: " + ", ".join(f"{t.get('internal_api')} {t.get('version', '')} kernel "
                                   f"{t.get('architecture', '?')} x{t.get('num_threads')}" for t in blas))
        print(format_table(data))
        print(format_sweeps(data["sweeps"]))
    if "gpu" in data:
        from nnparity.bench.gpu import format_table as gpu_table

        print(gpu_table(data["gpu"]))
    load = data["load"]
    mhz = " -> ".join(f"{m:.0f}" for m in load["mhz"] if m) or "-"
    loadavg = f"{load['loadavg'][0]:.2f}" if load["loadavg"] else "-"
    print(f"\nload over the run: other processes {_percent(load['other_load_fraction'])} of the CPUs, steal "
          f"{_percent(load['steal_fraction'])}, loadavg {loadavg}, clock {mhz} MHz: "
          + ("quiet" if load["reliable"] else "NOT quiet"))


def _percent(fraction) -> str:
    return "-" if fraction is None else f"{100 * fraction:.0f}%"


def _finish(args, data, started) -> int:
    data["seconds"] = time.perf_counter() - started
    data["unreliable"] = unreliable(data)
    data["reliable"] = not data["unreliable"]
    text = json.dumps(data, indent=1, default=_json_default)
    # the files first, then the output: stdout that cannot be written loses nothing the files keep, and a
    # file that cannot be written (each is tried) loses nothing printed
    failed, written = [], []
    if args.plot:
        _attempt(failed, lambda: written.extend(f"plot: {path}" for path in
                                                _plots(data, args.plot, args.dtype, args.threads)))
    if args.save:
        _attempt(failed, lambda: written.append(_save(data, text, args)))
    _report(args, data)
    if args.json:
        print(text)
    files = sys.stderr if args.json else sys.stdout
    for line in written:
        print(line, file=files)
    print(f"total {data['seconds']:.1f} s", file=files)
    for warning in data["unreliable"]:
        print(f"{PROG}: warning: {warning}", file=sys.stderr)
    if failed:
        raise failed[0]
    return 0


def _attempt(failed: list, write) -> None:
    """``write()``; a file it cannot write is kept in ``failed`` (and the other files are still written)."""
    try:
        write()
    except UsageError as err:
        failed.append(err)


def family_tag(names) -> str:
    """The part of --save's file name that keeps the families apart: "" for a run with the MLPs
    (the main results), else the families timed ("cnn", "seq", "cnn-seq"), so that a run of the
    CNNs or of the sequence models alone overwrites neither the MLPs' results nor each other's."""
    from nnparity.bench.configs import IMAGE_CONFIGS, SEQ_CONFIGS

    families = {"cnn" if name in IMAGE_CONFIGS else "seq" if name in SEQ_CONFIGS else "mlp" for name in names}
    if not families or "mlp" in families:
        return ""
    return "-".join(family for family in ("cnn", "seq") if family in families)


def results_stem(data: dict, dtype: str) -> str:
    """--save's file name less its suffix: the machine (the GPU's name for a GPU-only run), the
    families timed (``family_tag``) and the dtype."""
    name = machine_name(data["machine"]) if "configs" in data else _slug(data["gpu"]["device"]["name"])
    tag = family_tag(data.get("configs", {}))
    return f"{name}-{tag}-{dtype}" if tag else f"{name}-{dtype}"


def _save(data: dict, text: str, args) -> str:
    """--save: the JSON and the plot in benchmarks/results/ under ``results_stem``."""
    stem = RESULTS / results_stem(data, args.dtype)
    write_via_temp(str(stem) + ".json", lambda tmp: Path(tmp).write_text(text), "--save")
    _plots(data, str(stem) + ("-sweeps.png" if "sweeps" in data else "-gpu.png"), args.dtype, args.threads)
    return f"saved: {stem}.json"


def unreliable(data: dict) -> list[str]:
    """One line per reason the run's figures are unreliable: the machine's load, a GEMM rate that
    drifted, ratios on medians that spread, a fraction above the rate or peak it is measured against."""
    from nnparity.bench.run import DRIFT_LIMIT, SPREAD_LIMIT

    load = data.get("load", {})
    lines = [f"{reason}: the ratios are unreliable; rerun on a quiet machine" for reason in load.get("reasons", [])]
    for name, c in data.get("configs", {}).items():
        drift = c.get("gemm", {}).get("drift", 0)
        if drift > DRIFT_LIMIT:
            lines.append(f"{name}: the GEMM rate moved by {100 * drift:.0f}% between its measurements")
        shaky = [f"{side} {op} ({row['unreliable']})" for side, ops in c.get("results", {}).items()
                 for op, row in ops.items() if "unreliable" in row]
        if shaky:
            lines.append(f"{name}: unreliable ratios: " + ", ".join(shaky))
        for side, ops in c.get("results", {}).items():
            for op, row in ops.items():
                for fault in ("yardstick_fault", "peak_fault"):
                    if fault in row:
                        lines.append(f"{name} {side} {op}: {row[fault]}")
    shaky = [f"{axis} {row[axis]}" for axis in ("batch", "width") for row in data.get("sweeps", {}).get(axis, [])
             if any(row[f"{side}_iqr"] > SPREAD_LIMIT * row[side] for side in ("scratch", "torch_eager"))]
    if shaky:
        lines.append(f"sweeps: points whose blocks spread more than {100 * SPREAD_LIMIT:.0f}%: " + ", ".join(shaky))
    return lines


def _json_default(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def main(argv: list[str] | None = None, prog: str = PROG) -> int:
    """``python -m nnparity.bench``: the same options and run as ``nnparity bench``."""
    from nnparity import stdout

    try:
        with stdout.guarded():
            return run(check_args(build_parser(prog).parse_args(sys.argv[1:] if argv is None else argv)))
    except UsageError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    except stdout.StdoutError as err:
        return stdout.exit_status(err, prog)
