"""`nnparity check SPEC`: one forward and backward through both networks, tensor by tensor."""
from __future__ import annotations

import json

import numpy as np

from nnparity.usage import UsageError, add_device_argument, check_tolerance, spec_from_args, spec_on_device


def add_arguments(parser):
    parser.add_argument("spec", nargs="?", help="spec file (.toml or .json); default: a built-in spec")
    parser.add_argument("--dtype", choices=("float64", "float32"), help="override the spec's dtype")
    parser.add_argument("--batch", type=int, metavar="N",
                        help="use a seeded random batch of N rows (default: the spec's inline data, else 4)")
    parser.add_argument("--tol", type=float, metavar="X",
                        help="norm-relative tolerance (default: 1e-12 for float64, 1e-5 for float32)")
    parser.add_argument("--allow-overflow", action="store_true",
                        help="exit 0 when tensors overflow (inf or NaN) on both sides at the same places "
                             "and the rest agree (default: exit 1, as nothing was compared there)")
    parser.add_argument("--mode", choices=("train", "eval"), default="train",
                        help="train (default): batch statistics, running statistics updated and compared, "
                             "dropout on the shared mask stream; eval: the running statistics, no dropout")
    add_device_argument(parser, "both networks")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")


def run(args) -> int:
    if args.batch is not None and args.batch < 1:
        raise UsageError(f"--batch: must be >= 1, got {args.batch}")
    check_tolerance(args.tol)
    return run_spec(spec_from_args(args, "check"), args)


def run_spec(spec, args) -> int:
    """Check a loaded spec with the command's options (args.dtype, batch, tol, allow_overflow,
    device, json); print the report; the exit code."""
    from torch_ref.check import check, report_to_json   # torch only when the command runs, not for --help

    spec = spec_on_device(spec, args)

    # Overflow is looked for explicitly (the "overflow" verdict), not warned about on stderr.
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        report = check(spec, dtype=args.dtype, batch=args.batch, tol=args.tol, allow_overflow=args.allow_overflow,
                       mode=getattr(args, "mode", "train"))
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
    rows += [(f"buffer {name}", err) for name, err in e.get("buffers", {}).items()]
    width = max(len(name) for name, _ in rows)
    lines = [f"nnparity check  dtype={report['dtype']}  tol={report['tol']:.0e}  "
             f"loss scratch={report['scratch']['loss']:.17g} torch={report['torch']['loss']:.17g}",
             f"{'tensor':<{width}}  {'max abs err':>11}  {'rel err':>11}  result"]
    for name, err in rows:
        lines.append(f"{name:<{width}}  {err['max_abs']:11.3e}  {err['rel']:11.3e}  {err['result']}")
    lines.append(verdict_line(rows, report))
    return "\n".join(lines)


def verdict_line(rows, report: dict) -> str:
    """The last line: agree, disagree, or not compared where values overflowed (inf or NaN on both
    sides, or in torch alone): never 'agree' on what was not compared."""
    count = {result: sum(err["result"] == result for _, err in rows) for result in ("FAIL", "overflow", "torch overflow")}
    if count["FAIL"]:
        return f"{count['FAIL']} of {len(rows)} tensors disagree"
    if not (count["overflow"] or count["torch overflow"]):
        return "all tensors agree"
    parts = []
    if count["overflow"]:
        parts.append(f"{count['overflow']} inf or NaN on both sides at the same places ({report['dtype']} overflowed)")
    if count["torch overflow"]:
        parts.append(f"{count['torch overflow']} inf or NaN in torch where scratch is finite (torch overflowed an "
                     f"intermediate: the 'extremal values' of its numerical-accuracy notes)")
    rest = "; the rest agree" if sum(count.values()) < len(rows) else ""
    accepted = ("accepted (--allow-overflow)" if report["allow_overflow"]
                else "not a pass: --allow-overflow to accept it")
    return f"overflow, not compared: {'; '.join(parts)}{rest}; {accepted}"
