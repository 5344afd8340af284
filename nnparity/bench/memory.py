"""Peak memory of one side, in a process of its own: ``python -m nnparity.bench.memory SIDE DTYPE CONFIG...``.

For each configuration (smallest first) the process resets its high-water mark (Linux:
``/proc/self/clear_refs``), builds the side's SGD train step, runs it 3 times and reads VmHWM.
It prints one JSON object: config -> {"peak_bytes": the process's peak (imports included),
"delta_bytes": the peak above the RSS before the step was built (the configuration's own cost)}.
The scratch process never imports torch.
"""
from __future__ import annotations

import argparse
import json
import sys

from nnparity.bench.run import STEP_SIDES


def _status(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise OSError(field)


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _usage_error(prog: str, message: str):
    print(f"{prog}: {message}", file=sys.stderr)
    sys.exit(2)


def main(argv=None) -> int:
    from nnparity.bench import sides
    from nnparity.bench.configs import config

    p = argparse.ArgumentParser(prog="python -m nnparity.bench.memory",
                                description="Peak memory of one side's SGD train step, each configuration "
                                            "after the last, in this process; prints one JSON line.")
    p.add_argument("side", choices=STEP_SIDES, help="the side to build")
    p.add_argument("dtype", choices=["float32", "float64"])
    p.add_argument("threads", type=int)
    p.add_argument("names", nargs="+", metavar="CONFIG", help="benchmark configurations (tiny, small, ...)")
    p.error = lambda message: _usage_error(p.prog, message)   # one line, exit 2
    args = p.parse_args(argv)
    side, dtype, threads, names = args.side, args.dtype, args.threads, args.names
    make = getattr(sides, side)
    if side != "scratch":
        import torch  # noqa: F401  (the import's memory is the baseline, not the configuration's)
    out = {}
    for name in names:
        cfg = config(name)
        reset = _reset_peak()
        before = _status("VmRSS")
        try:
            step = make(cfg, "train_sgd", dtype, int(threads))
            for _ in range(3):
                step()
        except sides.Skip as exc:
            out[name] = {"skipped": str(exc)}
            continue
        peak = _status("VmHWM")
        out[name] = {"peak_bytes": peak, "delta_bytes": peak - before, "peak_reset": reset}
        del step
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
