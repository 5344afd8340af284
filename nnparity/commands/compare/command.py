"""The compare command: its options, the checks made before any work, and the child processes.

Every child gets the same thread count (``--threads``, default 1: small models run fastest on one
thread, and a shared machine gives steadier figures) and trains ``--repeat`` times (default 3;
the losses must come out the same every time); the timings are the best run's: a shared machine
only ever adds time.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time

from nnparity import interrupts
from nnparity.commands.compare import exits
from nnparity.commands.compare.report import BACKENDS, analyze, format_table, plot_report, runs_per_backend
from nnparity.outputs import check_output_file, write_via_temp
from nnparity.usage import (UsageError, add_device_argument, check_threads, check_tolerance, spec_from_args,
                            spec_on_device)
from scratch.data import batch_order, load_dataset
from scratch.policy import FLOAT32_DRIFT_BOUND, TRAJECTORY_TOL, json_safe, run_tolerance

DEFAULT_PLOT = "nnparity-compare.png"


def add_arguments(parser):
    parser.add_argument("spec", nargs="?",
                        help="spec file (.toml or .json); default: the built-in digits MLP (specs/digits.toml)")
    parser.add_argument("--epochs", type=int, metavar="N", help="override the spec's train.epochs")
    parser.add_argument("--dtype", choices=("float64", "float32"), help="override the spec's dtype")
    parser.add_argument("--devices", type=int, default=1, metavar="N",
                        help="Lightning trains with DDP over N processes (CPU) or GPUs (default 1)")
    parser.add_argument("--num-nodes", type=int, default=1, metavar="M",
                        help="machines for Lightning's DDP (see README, 'Compare with Lightning')")
    parser.add_argument("--strategy", choices=("ddp", "ddp_spawn"), default="ddp",
                        help="Lightning's DDP launcher when --devices/--num-nodes > 1 (default ddp)")
    add_device_argument(parser, "scratch and the torch loop (and Lightning, on cuda)")
    parser.add_argument("--accelerator", choices=("auto", "cpu", "gpu"), default="auto",
                        help="where torch and Lightning train when the device is cpu (auto: CUDA when present); "
                             "scratch then runs NumPy on the CPU")
    parser.add_argument("--threads", type=int, default=1, metavar="N",
                        help="CPU threads for each backend (torch, OpenMP and BLAS; default 1)")
    parser.add_argument("--repeat", type=int, default=3, metavar="K",
                        help="train each backend K times in its process and report the best median step time "
                             "and training time (default 3; the losses must be the same every time). "
                             "With DDP: once")
    parser.add_argument("--tol", type=float, metavar="X",
                        help=f"per-step relative loss tolerance (default {TRAJECTORY_TOL:g} for float64, "
                             f"{FLOAT32_DRIFT_BOUND:g} for float32)")
    parser.add_argument("--plot", metavar="FILE.png",
                        help=f"where to write the loss curves (default {DEFAULT_PLOT}, replaced by each run); "
                             f"'none' for no plot. A file named here that exists is refused unless --force")
    parser.add_argument("--force", action="store_true", help="overwrite an existing --plot file")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def checked_options(args) -> str | None:
    """Refuse bad options before any work (UsageError); return the plot path, or None."""
    for name in ("epochs", "devices", "num_nodes", "repeat"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise UsageError(f"--{name.replace('_', '-')}: must be >= 1, got {value}")
    check_threads(args.threads)
    check_tolerance(args.tol)
    if args.plot is None:  # the default name is this command's own output: each run replaces it
        plot = check_output_file(DEFAULT_PLOT, "--plot", replaceable=True)
    elif args.plot.lower() == "none":
        plot = None
    else:
        plot = check_output_file(args.plot, "--plot", args.force, suffix=".png")
    if args.accelerator == "gpu" and not _cuda_available():
        raise UsageError("--accelerator gpu: no CUDA device is visible")
    return plot


def spec_to_compare(args):
    """(The spec with the command line's overrides (the device checked: the children train there),
    its training rows): its data loaded once, to fail early on bad data."""
    spec = spec_on_device(spec_from_args(args, "compare"), args)
    if args.dtype:
        spec = spec.replace(dtype=args.dtype)
    if args.epochs:
        spec = spec.replace(train={**spec.to_dict()["train"], "epochs": args.epochs})
    dataset = load_dataset(spec)  # bad data fails here, with the field's name, before any child starts
    world = args.devices * args.num_nodes
    smallest = min(len(b) for b in batch_order(len(dataset.x_train), spec.train.batch_size, False, spec.seed, 0))
    if smallest < world:
        raise UsageError(f"--devices: a global batch of {smallest} row(s) cannot be split over {world} "
                         f"processes; use fewer devices or a larger train.batch_size")
    return spec, len(dataset.x_train)


def run(args) -> int:
    plot = checked_options(args)
    spec, n_rows = spec_to_compare(args)
    tol = args.tol if args.tol is not None else run_tolerance(spec.dtype)
    progress = not args.quiet and sys.stderr.isatty()
    with tempfile.TemporaryDirectory(prefix="nnparity-compare-") as tmp:
        spec_path = os.path.join(tmp, "spec.json")
        try:
            with open(spec_path, "w") as f:
                f.write(spec.to_json())
        except OSError as err:   # a full disk, a file size limit
            print(f"nnparity compare: cannot write the spec for the backends to {spec_path}: "
                  f"{err.strerror or err}", file=sys.stderr)
            return 2
        results = {}
        for i, backend in enumerate(BACKENDS):
            code, results[backend] = _run_child(backend, i, spec, spec_path, tmp, args, progress)
            if code == exits.FAILED:   # diverged, or not reproducible: the child said which
                return 1
            if code == exits.BAD_INPUT:
                return 2
            if results[backend] is None:
                print(f"nnparity compare: the {backend} run ended without a result (exit {code})", file=sys.stderr)
                return 2
            interrupts.finished(f"{backend} trained (not reported: the comparison needs all three)",
                                key="backends")
    report = analyze(results, spec, tol, n_rows, args.devices, args.num_nodes, args.strategy, args.threads,
                     args.repeat)
    report["spec"] = args.spec or "built-in default (the digits MLP of specs/digits.toml)"
    report["plot"] = plot
    # The results first: a plot that fails to write loses nothing that was printed.
    print(json.dumps(json_safe(report), allow_nan=False) if args.json else format_table(report), flush=True)
    interrupts.finished("the report (printed)")
    if plot is not None:
        write_via_temp(plot, lambda tmp: plot_report(report, results, tmp), "--plot")
    return 0 if report["ok"] else 1


def _cuda_available() -> bool:
    import torch   # only for --accelerator gpu: the command itself needs no torch

    return torch.cuda.is_available()


def _run_child(backend: str, index: int, spec, spec_path: str, tmp: str, args, progress: bool):
    """Run one backend in a child process; return (exit code, its result dict)."""
    out_path = os.path.join(tmp, f"{backend}.json")
    cmd = [sys.executable, "-m", "nnparity.commands.compare.worker", backend, spec_path, out_path,
           "--devices", str(args.devices), "--num-nodes", str(args.num_nodes), "--strategy", args.strategy,
           "--accelerator", args.accelerator, "--threads", str(args.threads),
           "--repeat", str(runs_per_backend(args.devices * args.num_nodes, args.repeat))]
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(args.threads)
    bar = None
    if progress:
        from tqdm import tqdm   # only with a terminal to draw on

        bar = tqdm(total=spec.train.epochs * runs_per_backend(args.devices * args.num_nodes, args.repeat), desc=f"{backend} ({index + 1}/{len(BACKENDS)}): starting",
                   unit="epoch", leave=False, dynamic_ncols=True, file=sys.stderr)
    started = time.perf_counter()
    # The child reports finished epochs on stdout, one line each; its stderr is ours.
    child = subprocess.Popen(cmd, stdout=subprocess.PIPE, env=env, text=True)
    try:
        for line in child.stdout:
            if bar is not None and line.startswith("epoch "):
                bar.set_description_str(f"{backend} ({index + 1}/{len(BACKENDS)})", refresh=False)
                bar.update(int(line.split()[1]) - bar.n)
        code = child.wait()
    except interrupts.Interrupted:
        interrupts.end_child(child)  # a SIGTERM to this process alone must not leave the child training
        raise
    finally:
        if bar is not None:
            bar.close()
    if code in (-signal.SIGINT, -signal.SIGTERM, 128 + signal.SIGINT, 128 + signal.SIGTERM):
        raise interrupts.Interrupted(abs(code) % 128)  # the child was stopped by a signal: so are we
    process_seconds = time.perf_counter() - started
    if code != exits.RESULT_WRITTEN or not os.path.exists(out_path):
        return code, None
    with open(out_path) as f:
        result = json.load(f)
    result["process_seconds"] = process_seconds
    return 0, result
