"""`nnparity bench`: the benchmark harness of benchmarks/ (also `python -m benchmarks`).

Times the scratch network, torch (eager, torch.compile, the plain loop, Lightning), JAX jit and
micrograd on the benchmark configurations, against the machine's measured matrix-product limit;
see benchmarks/README.md for the method and the results.
"""
from __future__ import annotations

from nnparity.outputs import check_output_file
from nnparity.usage import UsageError, check_threads


def add_arguments(parser):
    from benchmarks.cli import add_arguments as bench_arguments   # the harness's options, one definition

    bench_arguments(parser)
    parser.add_argument("--force", action="store_true", help="overwrite an existing --json or --plot file")


def run(args) -> int:
    from benchmarks import cli as bench   # torch, JAX and the harness only when the command runs

    try:
        args = bench.check_args(args)
    except bench.UsageError as err:
        raise UsageError(str(err)) from None
    check_threads(args.threads)
    for flag, path, suffix in (("--json", args.json, None), ("--plot", args.plot, ".png")):
        if path and path != "-":
            check_output_file(path, flag, force=args.force, suffix=suffix)
    return bench.run(args)
