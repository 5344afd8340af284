"""`nnparity verify`: check a hand-written backward, or find a network's first wrong layer.

    nnparity verify mypkg.ops:Swish [--kind activation|vector|loss|layer] [--seed N] [--json]
    nnparity verify mypkg.ops:sigmoid [--grad mypkg.ops:dsigmoid] [--convention z|a]
    nnparity verify mypkg.losses:kl [--wrt q]             (a loss: the argument differentiated)
    nnparity verify mypkg.layers:affine_forward          (with affine_backward)
    nnparity verify mypkg.nets:TwoLayerNet               (loss(X, y) -> (loss, grads); or backprop, or lossFun)
    nnparity verify --spec SPEC [--batch N] [--mode train|eval] [--json]

The first forms check one op (nnparity.verify.autograd), a class or a function with its
hand-written derivative (nnparity.verify.forms): against autograd of its ``torch_module()`` (or
torch's module of the same name), autograd of its own NumPy forward run on torch tensors, and
finite differences. The second runs a spec's network, of any layer kinds (custom activations by import path), and
names the first layer, from the output back, whose gradient disagrees with torch
(nnparity.verify.autograd.layerwise). Import paths resolve from the current directory. Exit 0: everything agrees; 1: a gradient disagrees; 2: bad input.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from nnparity.usage import UsageError
from nnparity.verify.load import KINDS, OpError
from nnparity.verify.probes import SEED_MAX
from nnparity.verify.time_limit import MAX_TIME_LIMIT, PROBE_TIME_LIMIT, SPEC_TIME_LIMIT


def add_arguments(parser):
    parser.add_argument("target", nargs="?", metavar="module:name",
                        help="the op to verify: a class (examples.custom_ops:Swish), a function with its derivative "
                             "(examples.function_ops:sigmoid), a loss function, X_forward with X_backward, or a whole network "
                             "(a class with loss(X, y) or backprop(x, y); a function returning (loss, *grads))")
    parser.add_argument("--grad", metavar="module:function",
                        help="a function's derivative (default: found by name, e.g. f_prime, f_derivative, df)")
    parser.add_argument("--convention", choices=("z", "a"),
                        help="how the derivative is called: with z, or with the activation a = f(z) "
                             "(default: read from its values)")
    parser.add_argument("--wrt", metavar="NAME",
                        help="a loss of two arguments: the prediction, the argument the gradient is taken with "
                             "respect to (default: read from the names: y_pred, yhat, logits, ...; q in kl(p, q))")
    parser.add_argument("--time-limit", type=float, metavar="S",
                        help=f"seconds each call into your code may run on one probe (default {PROBE_TIME_LIMIT:g}, "
                             f"at most {MAX_TIME_LIMIT:g}); with --spec, the whole check of the network, its user "
                             f"activations included (default {SPEC_TIME_LIMIT:g})")
    parser.add_argument("--kind", choices=KINDS,
                        help="what the op is (default: its `kind` attribute, else inferred from the class)")
    parser.add_argument("--seed", type=int, default=0, metavar="N", help="seed of the random probes (default 0)")
    parser.add_argument("--spec", metavar="SPEC",
                        help="instead of one op: a spec whose network is checked layer by layer")
    parser.add_argument("--batch", type=int, metavar="N",
                        help="with --spec: a seeded random batch of N rows (default: the spec's data, else 4)")
    parser.add_argument("--mode", choices=("train", "eval"),
                        help="with --spec: the mode of the pass (default train: batch statistics, dropout on)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the report")


def _looks_like_spec(target: str) -> bool:
    return target.lower().endswith((".toml", ".json")) or Path(target).is_file()


def run(args) -> int:
    if (args.target is None) == (args.spec is None):
        raise UsageError("give either an op as module:Class (e.g. examples.custom_ops:Swish) or --spec SPEC")
    if not 0 <= args.seed <= SEED_MAX:
        raise UsageError(f"--seed: must be from 0 to {SEED_MAX}, got {args.seed}")
    if args.time_limit is None:
        args.time_limit = PROBE_TIME_LIMIT if args.spec is None else SPEC_TIME_LIMIT
    if not (math.isfinite(args.time_limit) and 0 < args.time_limit <= MAX_TIME_LIMIT):
        raise UsageError(f"--time-limit: must be more than 0 and at most {MAX_TIME_LIMIT:g} seconds, "
                         f"got {args.time_limit:g}")
    if args.target is not None and _looks_like_spec(args.target):
        raise UsageError(f"{args.target} is a spec file, not an op: use  nnparity verify --spec {args.target}  "
                         f"(a positional argument is one op as module:name, e.g. examples.custom_ops:Swish)")
    if args.spec is not None:
        for flag, value in (("--kind", args.kind), ("--grad", args.grad), ("--convention", args.convention),
                            ("--wrt", args.wrt)):
            if value is not None:
                raise UsageError(f"{flag} applies to one op, not to --spec")
        if args.batch is not None and args.batch < 1:
            raise UsageError(f"--batch: must be >= 1, got {args.batch}")
        from nnparity.verify.autograd import verify_spec   # torch only when the command runs

        try:   # in a child process: its user activations can neither hang nor end this one
            report = verify_spec(args.spec, batch=args.batch, mode=args.mode or "train", time_limit_s=args.time_limit)
        except OpError as err:
            raise UsageError(str(err)) from None
        except SystemExit as err:     # a user activation's code never decides the exit status
            raise UsageError(f"{args.spec}: a user activation called sys.exit({err.code!r}) while it was "
                             f"checked; its forward and backward must return their values") from None
    else:
        for flag, value in (("--batch", args.batch), ("--mode", args.mode)):
            if value is not None:
                raise UsageError(f"{flag} applies to --spec")
        from nnparity.verify.autograd import verify

        try:
            report = verify(args.target, kind=args.kind, seed=args.seed, grad=args.grad,
                            convention=args.convention, time_limit_s=args.time_limit, wrt=args.wrt)
        except OpError as err:
            raise UsageError(str(err)) from None
        except KeyboardInterrupt:     # a user's op stuck where the time limit cannot reach: no traceback
            raise UsageError("interrupted") from None
        except SystemExit as err:     # user code never decides the exit status
            raise UsageError(f"{args.target}: your code called sys.exit({err.code!r}) while it was checked; "
                             f"a function under test must return its value") from None
    print(json.dumps(report.to_json()) if args.json else report.format())
    return 0 if report.ok else 1
