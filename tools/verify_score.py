"""Score `nnparity verify` on the real-style corpus (parity_tests/verify_corpus): every manifest
case through the CLI in one process, a table by family of right verdicts (correct -> exit 0, slip
-> exit 1), false FAILs (correct -> 1), false PASSes (slip -> 0), refusals (exit 2) and errors.

    python tools/verify_score.py            # the table, then every wrong verdict with its last line
    python tools/verify_score.py --json     # one JSON object: totals, by family, every case
    python tools/verify_score.py --family loss_pairs --case function/
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from parity_tests.verify_corpus.manifest import CASES, FAMILIES  # noqa: E402
from parity_tests.verify_corpus.runner import VERDICTS, run_case  # noqa: E402


def score(cases):
    rows = []
    for case in cases:
        start = time.perf_counter()
        outcome = run_case(case)
        rows.append({"id": case["id"], "family": case["family"], "argv": case["argv"],
                     "truth": case["truth"], "note": case["note"], "exit_code": outcome.exit_code,
                     "verdict": outcome.verdict, "last_line": outcome.last_line,
                     "seconds": round(time.perf_counter() - start, 3)})
    return rows


def tally(rows):
    by_family = {family: Counter({v: 0 for v in VERDICTS}) for family in FAMILIES}
    for row in rows:
        by_family[row["family"]][row["verdict"]] += 1
    total = {v: sum(counts[v] for counts in by_family.values()) for v in VERDICTS}
    return by_family, total


def print_table(rows):
    by_family, total = tally(rows)
    header = f"{'family':16} {'cases':>5} " + " ".join(f"{v:>10}" for v in VERDICTS)
    print(header)
    for family, counts in list(by_family.items()) + [("total", total)]:
        n = sum(counts.values())
        if n:
            print(f"{family:16} {n:5d} " + " ".join(f"{counts[v]:10d}" for v in VERDICTS))
    n = sum(total.values())
    print(f"score: {total['right']} of {n} right ({100 * total['right'] / max(n, 1):.1f}%)")
    for kind in VERDICTS[1:]:
        wrong = [r for r in rows if r["verdict"] == kind]
        if wrong:
            print(f"\n{kind} ({len(wrong)}):")
            for r in wrong:
                note = f" [{r['note']}]" if r["note"] else ""
                print(f"  {r['id']}{note}\n      exit {r['exit_code']}: {r['last_line'][:160]}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--family", choices=FAMILIES, action="append", help="only these families")
    parser.add_argument("--case", action="append", help="only cases whose id starts with this")
    args = parser.parse_args(argv)
    cases = [c for c in CASES if (not args.family or c["family"] in args.family)
             and (not args.case or any(c["id"].startswith(p) for p in args.case))]
    rows = score(cases)
    try:
        report(rows, args.json)
    except BrokenPipeError:  # `verify_score.py | head`
        pass
    return 0


def report(rows, as_json: bool):
    if as_json:
        by_family, total = tally(rows)
        print(json.dumps({"total": dict(total), "cases": len(rows),
                          "by_family": {f: dict(c) for f, c in by_family.items()}, "rows": rows}, indent=1))
    else:
        print_table(rows)


if __name__ == "__main__":
    sys.exit(main())
