"""`nnparity verify`: check a hand-written backward, or find a network's first wrong layer.

    nnparity verify mypkg.ops:Swish [--kind activation|vector|loss|layer] [--seed N] [--json]
    nnparity verify --spec SPEC [--batch N] [--json]

The first form checks one op (torch_ref.verify): against autograd of its ``torch_module()``,
autograd of its own NumPy forward run on torch tensors, and finite differences. The second runs
a spec's network (custom activations by import path) and names the first layer, from the output
back, whose gradient disagrees with torch (torch_ref.verify.layerwise). Import paths resolve from the
current directory. Exit 0: everything agrees; 1: a gradient disagrees; 2: bad input.
"""
from __future__ import annotations

import json

from nnparity.usage import UsageError
from scratch.spec import load_spec
from scratch.verify.load import KINDS, OpError


def add_arguments(parser):
    parser.add_argument("target", nargs="?", metavar="module:Class",
                        help="the op to verify, e.g. examples.custom_ops:Swish")
    parser.add_argument("--kind", choices=KINDS,
                        help="what the op is (default: its `kind` attribute, else inferred from the class)")
    parser.add_argument("--seed", type=int, default=0, metavar="N", help="seed of the random probes (default 0)")
    parser.add_argument("--spec", metavar="SPEC",
                        help="instead of one op: a spec whose network is checked layer by layer")
    parser.add_argument("--batch", type=int, metavar="N",
                        help="with --spec: a seeded random batch of N rows (default: the spec's data, else 4)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the report")


def run(args) -> int:
    if (args.target is None) == (args.spec is None):
        raise UsageError("give either an op as module:Class (e.g. examples.custom_ops:Swish) or --spec SPEC")
    if args.seed < 0:
        raise UsageError(f"--seed: must be >= 0, got {args.seed}")
    if args.spec is not None:
        if args.kind is not None:
            raise UsageError("--kind applies to one op, not to --spec")
        if args.batch is not None and args.batch < 1:
            raise UsageError(f"--batch: must be >= 1, got {args.batch}")
        from torch_ref.verify import first_wrong_layer   # torch only when the command runs

        report = first_wrong_layer(load_spec(args.spec), batch=args.batch)
    else:
        if args.batch is not None:
            raise UsageError("--batch applies to --spec")
        from torch_ref.verify import verify

        try:
            report = verify(args.target, kind=args.kind, seed=args.seed)
        except OpError as err:
            raise UsageError(str(err)) from None
    print(json.dumps(report.to_json()) if args.json else report.format())
    return 0 if report.ok else 1
