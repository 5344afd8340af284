"""The compare worker: a child process that trains the spec with one backend and writes the
result as JSON (global rank 0 only). Run as ``python -m nnparity.commands.compare.worker``.

Its peak memory is its own (the child's high-water mark: its imports, its data and its training;
the scratch child never imports torch), and it reports each finished epoch on stdout, one line
each, for the parent's progress bar.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import psutil

from nnparity import interrupts
from nnparity.commands.compare.exits import BAD_INPUT, FAILED, RESULT_WRITTEN
from nnparity.commands.compare.report import BACKENDS
from scratch import user_code
from scratch.data import load_dataset
from scratch.errors import SpecError
from scratch.spec import load_spec
from scratch.training import TrainingDiverged


def _peak_rss_bytes() -> int:
    """This process's peak resident set size.

    Linux: VmHWM of /proc/self/status, the high-water mark of this program's own memory. Not
    ru_maxrss there: Linux carries the parent's peak across fork and exec into the child's
    ru_maxrss, so every child would report at least the compare process's peak. Elsewhere:
    ru_maxrss (bytes on macOS).
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def parse_args(argv):
    p = argparse.ArgumentParser(prog="python -m nnparity.commands.compare.worker")
    p.add_argument("backend", choices=BACKENDS)
    p.add_argument("spec")
    p.add_argument("out")
    p.add_argument("--devices", type=int, default=1)
    p.add_argument("--num-nodes", type=int, default=1)
    p.add_argument("--strategy", default="ddp")
    p.add_argument("--accelerator", default="auto")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeat", type=int, default=1)
    return p.parse_args(argv)


def make_trainer(args, spec, dataset):
    """(train(callback) -> TrainResult, rank() -> this process's global rank) for the backend, on
    the spec's device (scratch: NumPy or CuPy; the parent checked that the device is there).

    torch and Lightning are imported here, not at the top: the scratch child never imports torch,
    so that its peak memory is NumPy's alone."""
    if args.backend == "scratch":
        from scratch.training import train
        return (lambda cb: train(spec, dataset, progress=False, callback=cb)), (lambda: 0)
    import torch

    torch.set_num_threads(args.threads)
    # the spec's device (cuda: --device cuda, or the spec's own) puts every backend there; on cpu,
    # --accelerator says where torch and Lightning train
    on_cuda = spec.device == "cuda"
    if args.backend == "torch":
        from torch_ref.training import train
        cuda = on_cuda or args.accelerator == "gpu" or (args.accelerator == "auto" and torch.cuda.is_available())
        device = "cuda" if cuda else "cpu"
        return (lambda cb: train(spec, dataset, progress=False, callback=cb, device=device)), (lambda: 0)
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    from torch_ref.lightning import train
    strategy = args.strategy if args.devices * args.num_nodes > 1 else "auto"
    accelerator = "gpu" if on_cuda else args.accelerator

    def run(cb):
        return train(spec, dataset, progress=False, callback=cb, devices=args.devices, num_nodes=args.num_nodes,
                     strategy=strategy, accelerator=accelerator)
    return run, (lambda: getattr(rank_zero_only, "rank", 0) or 0)


def train_repeatedly(train, rank, repeat: int, epochs: int) -> list:
    """[(TrainResult, seconds of the call)] for ``repeat`` runs; finished epochs go to stdout."""
    runs = []
    for rep in range(repeat):
        def epoch_done(epoch, history, done=rep * epochs):
            if rank() == 0:
                print(f"epoch {done + epoch}", flush=True)
            return False

        t0 = time.perf_counter()
        result = train(epoch_done)
        runs.append((result, time.perf_counter() - t0))
    return runs


def result_json(backend: str, runs: list, startup_seconds: float, rss_before: int) -> dict:
    result, history = runs[0][0], runs[0][0].history
    return {
        "backend": backend,
        "step_loss": history.step_loss, "epoch_loss": history.epoch_loss, "epoch_accuracy": history.epoch_accuracy,
        "step_seconds_runs": [r.step_seconds for r, _ in runs],
        "train_seconds_runs": [r.seconds for r, _ in runs],
        "call_seconds_runs": [c for _, c in runs],
        "startup_seconds": startup_seconds, "stopped": result.stopped,
        "test_loss": result.test_loss, "test_accuracy": result.test_accuracy,
        "params": {k: v.tolist() for k, v in result.params.items()},
        "rss_before_bytes": rss_before, "peak_rss_bytes": _peak_rss_bytes(),
        "lightning": getattr(result, "lightning", None),
    }


def main(argv) -> int:
    """Train the spec with one backend; write the result as JSON (global rank 0 only)."""
    started = time.perf_counter()
    args = parse_args(argv)
    try:
        spec = load_spec(args.spec)
        train, rank = make_trainer(args, spec, load_dataset(spec))
        ready, rss_before = time.perf_counter(), psutil.Process().memory_info().rss
        runs = train_repeatedly(train, rank, args.repeat, spec.train.epochs)
    except SpecError as err:
        print(f"nnparity compare: {err}", file=sys.stderr)
        return BAD_INPUT
    except SystemExit as err:   # no guard (scratch.user_code) saw it: user code in torch's autograd, say
        print(f"nnparity compare: {args.backend}: {user_code.exit_message(err)}", file=sys.stderr)
        return BAD_INPUT
    except TrainingDiverged as err:
        print(f"nnparity compare: {args.backend}: {err}", file=sys.stderr)
        return FAILED
    if rank() != 0:
        return RESULT_WRITTEN
    if any(r.history.step_loss != runs[0][0].history.step_loss for r, _ in runs[1:]):
        # every run of a backend is the same computation: say so if not
        print(f"nnparity compare: {args.backend}: two runs of the same spec gave different losses", file=sys.stderr)
        return FAILED
    try:
        with open(args.out, "w") as f:
            json.dump(result_json(args.backend, runs, ready - started, rss_before), f)
    except OSError as err:   # a full disk, a file size limit: the parent reads no result
        print(f"nnparity compare: {args.backend}: cannot write its result to {args.out}: {err.strerror or err}",
              file=sys.stderr)
        return BAD_INPUT
    return RESULT_WRITTEN


def quiet_main(argv) -> int:
    """main, ended by a signal or by its parent going away without a traceback: the parent reports."""
    interrupts.quiet_exit_on_signals()
    try:
        return main(argv)
    except interrupts.Interrupted as err:
        return interrupts.exit_code(err)
    except BrokenPipeError:  # the parent is gone: nobody reads our progress lines
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit's flush
        return 1


if __name__ == "__main__":
    sys.exit(quiet_main(sys.argv[1:]))
