"""`nnparity check SPEC`: one forward and backward through both networks, tensor by tensor."""
from __future__ import annotations

import json

from nnparity.usage import UsageError, spec_from_args


def add_arguments(parser):
    parser.add_argument("spec", nargs="?", help="spec file (.toml or .json); default: a built-in spec")
    parser.add_argument("--dtype", choices=("float64", "float32"), help="override the spec's dtype")
    parser.add_argument("--batch", type=int, metavar="N",
                        help="use a seeded random batch of N rows (default: the spec's inline data, else 4)")
    parser.add_argument("--tol", type=float, metavar="X",
                        help="norm-relative tolerance (default: 1e-12 for float64, 1e-5 for float32)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")


def run(args) -> int:
    from torch_ref.check import check, report_to_json   # torch only when the command runs, not for --help

    if args.batch is not None and args.batch < 1:
        raise UsageError(f"--batch: must be >= 1, got {args.batch}")
    if args.tol is not None and not args.tol > 0:
        raise UsageError(f"--tol: must be > 0, got {args.tol}")
    spec = spec_from_args(args, "check")
    report = check(spec, dtype=args.dtype, batch=args.batch, tol=args.tol)
    if args.json:
        print(json.dumps(report_to_json(report), allow_nan=False))
    else:
        print(format_table(report))
    return 0 if report["ok"] else 1


def format_table(report: dict) -> str:
    e = report["errors"]
    rows = [("output", e["output"])]
    rows += [(f"activation {name}", err) for name, err in e["activations"].items()]
    rows.append(("loss", e["loss"]))
    rows += [(f"grad {name}", err) for name, err in e["grads"].items()]
    width = max(len(name) for name, _ in rows)
    lines = [f"nnparity check  dtype={report['dtype']}  tol={report['tol']:.0e}  "
             f"loss scratch={report['scratch']['loss']:.17g} torch={report['torch']['loss']:.17g}",
             f"{'tensor':<{width}}  {'max abs err':>11}  {'rel err':>11}  result"]
    for name, err in rows:
        lines.append(f"{name:<{width}}  {err['max_abs']:11.3e}  {err['rel']:11.3e}  {'pass' if err['ok'] else 'FAIL'}")
    failed = sum(not err["ok"] for _, err in rows)
    lines.append("all tensors agree" if not failed else f"{failed} of {len(rows)} tensors disagree")
    return "\n".join(lines)
