"""`nnparity bench`: the benchmark harness of nnparity/bench/ (also `python -m nnparity.bench`).

Times the scratch network, torch (eager, torch.compile, the plain loop, Lightning), JAX jit and
micrograd on the benchmark configurations, against the machine's measured matrix-product rate
and its theoretical peak; see benchmarks/README.md for the method and the results.
"""
from __future__ import annotations


def add_arguments(parser):
    from nnparity.bench.cli import add_arguments as bench_arguments   # the harness's options, one definition

    bench_arguments(parser)


def run(args) -> int:
    from nnparity.bench import cli as bench   # torch, JAX and the harness only when the command runs

    return bench.run(bench.check_args(args))
