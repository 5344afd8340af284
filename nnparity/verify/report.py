"""The report of `nnparity verify`: checks, their verdicts, and how to print them."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from nnparity.verify.diagnosis import Element
from scratch.policy import json_safe

NOT_RUN_WORDS = ("not used", "not given", "no torch reference ran")   # how `paths` says a reference did not run
MEASURE = "norm-relative error ‖got − expected‖/‖expected‖ per probe group (max abs where ‖expected‖ = 0)"


@dataclass
class Check:
    """One gradient (or forward) compared with one reference."""

    name: str                       # e.g. "dL/dz vs finite differences"
    wrt: str                        # what the gradient is taken with respect to: z, pred, x, weight, ...
    reference: str                  # finite differences | torch autograd of ... | forward agreement
    tol: float
    ok: bool
    error: float                    # the worst group's error (inf: shapes differ or non-finite)
    groups: dict                    # probe group -> error (None: nothing compared there)
    worst: Element | None = None    # the element with the largest scaled error
    diagnosis: str | None = None    # one line, when it fails
    notes: list[str] = field(default_factory=list)  # skipped points and why
    measure: str = MEASURE
    compared: int | None = None     # elements compared as finite numbers on both sides
    checked: bool = True            # False: too few finite numbers compared for any verdict

    @property
    def result(self) -> str:
        return "pass" if self.ok else ("FAIL" if self.checked else "not checked")


@dataclass
class OpReport:
    """The verdict on one op: every check, which references were used, and what the op did."""

    target: str                     # import path or class name
    kind: str                       # activation | vector | loss | layer
    seed: int
    probes: dict                    # probe group -> number of input elements
    probe_text: dict = field(default_factory=dict)      # probe group -> what its values are
    checks: list[Check] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)      # references used, and why others were not
    findings: list[str] = field(default_factory=list)   # warnings and exceptions raised by the op
    failed_to_run: bool = False                         # the op raised: no verdict on its maths

    @property
    def ok(self) -> bool:
        return not self.failed_to_run and bool(self.checks) and all(c.ok for c in self.checks)

    @property
    def diagnosis(self) -> str | None:
        """The first failing check's diagnosis, preferring torch references (they see kinks)."""
        failing = [c for c in self.checks if not c.ok]
        # torch first, then finite differences, then the one-sided bounds (a consistency check only)
        failing.sort(key=lambda c: 2 if c.reference.startswith("one-sided") else c.reference.startswith("finite"))
        for c in failing:
            if c.diagnosis:
                return c.diagnosis
        return None

    @property
    def references(self) -> dict:
        """{"ran": the references some check compared numbers against, "not_run": the lines of
        ``paths`` that say a reference was not used, and why}."""
        ran = list(dict.fromkeys(c.reference for c in self.checks if c.compared))
        not_run = [p for p in self.paths if any(w in p for w in NOT_RUN_WORDS)]
        return {"ran": ran, "not_run": not_run}

    def to_json(self) -> dict:
        """Plain data for strict JSON; non-finite floats as null (the policy's json_safe)."""
        data = dataclasses.asdict(self)
        data["ok"] = self.ok
        data["references"] = self.references
        data["diagnosis"] = self.diagnosis
        return json_safe(data)

    def format(self) -> str:
        """The human report."""
        summary = self.diagnosis
        probes = ", ".join(f"{g} {n}" + (f" ({self.probe_text[g]})" if self.probe_text.get(g) else "")
                           for g, n in self.probes.items())
        lines = [f"nnparity verify {self.target}  kind={self.kind}  seed={self.seed}", f"probes: {probes}"]
        lines += [f"  {p}" for p in self.paths]
        width = max([len(c.name) for c in self.checks] + [5])
        lines.append(f"  {'check':<{width}}  {'probes':>6}  {'error':>9}  {'tol':>7}  result")
        for c in self.checks:
            used = "-" if c.compared is None else str(c.compared)
            lines.append(f"  {c.name:<{width}}  {used:>6}  {_num(c.error if c.checked else None):>9}  {c.tol:7.0e}  {c.result}")
            if not c.ok:
                if c.worst is not None:
                    w = c.worst
                    idx = ",".join(map(str, w.index))
                    inp = "" if w.input is None else f" = {_num(w.input, 6)}"
                    if w.target is not None:
                        inp += f", target {_num(w.target, 6)}"
                    what, exp, got = "", w.expected, w.got
                    if w.upstream:      # elementwise: the derivative itself, got/grad_out
                        what, exp, got = f"da/d{c.wrt} ", exp / w.upstream, got / w.upstream
                    lines.append(f"      worst: {c.wrt}[{idx}]{inp} ({w.group}): "
                                 f"{what}expected {_num(exp, 6)}, got {_num(got, 6)}")
                if c.diagnosis and c.diagnosis != summary:
                    lines.append(f"      diagnosis: {c.diagnosis}")
            for note in c.notes:
                lines.append(f"      note: {note}")
        for f in self.findings:
            lines.append(f"  finding: {f}")
        passed = sum(c.ok for c in self.checks)
        unchecked = sum(not c.checked for c in self.checks)
        if self.ok:
            lines.append(f"PASS: {passed} of {len(self.checks)} checks agree")
        elif not self.checks:
            lines.append("FAIL: nothing was checked")
        else:
            failed = len(self.checks) - passed - unchecked
            parts = ([f"{failed} of {len(self.checks)} checks disagree"] if failed else []) + \
                    ([f"{unchecked} not checked"] if unchecked else [])
            lines.append(f"FAIL: {', '.join(parts)}")
            if summary:
                lines.append(f"diagnosis: {summary}")
        return "\n".join(lines)


def _num(v, digits: int = 2) -> str:
    if v is None:
        return "-"
    v = float(v)
    if not math.isfinite(v):
        return str(v)
    return f"{v:.{digits}g}" if digits > 2 else f"{v:.1e}"
