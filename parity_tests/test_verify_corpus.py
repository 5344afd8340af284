"""The real-style corpus (parity_tests/verify_corpus): hand-derived gradients as courses, tutorials
and from-scratch frameworks write them, correct ones and planted slips.

(a) The ground truth is the corpus's own: every correct case agrees with central finite
    differences in float64 and every slip differs (verify_corpus/ground_truth.py, no nnparity code).
(b) `nnparity verify` gives each case the right verdict: exit 0 for a correct one, 1 for a slip.
    The cases it gets wrong today are strict xfails whose reason says what it does instead; a case
    it starts getting right fails as XPASS until its entry in KNOWN_WRONG is removed.
(c) No slip passes unless it is a listed false PASS.
The fast lane runs (a) and one correct case and one slip per family of (b); the whole suite, all.

`python tools/verify_score.py` prints the same verdicts as a table by family."""
from __future__ import annotations

import importlib

import numpy as np
import pytest

from parity_tests.verify_corpus import ground_truth
from parity_tests.verify_corpus.manifest import CASES, FAMILIES
from parity_tests.verify_corpus.runner import run_case

# What verify does today on the cases it gets wrong, by what it does; each id is a manifest case.
KNOWN_WRONG: dict[str, list[str]] = {
}
REASON = {case_id: reason for reason, ids in KNOWN_WRONG.items() for case_id in ids}
KNOWN_FALSE_PASS = {case_id for case_id, reason in REASON.items() if reason.startswith("false PASS")}

CORRECT = [c for c in CASES if c["truth"] == "correct"]
SLIPS = [c for c in CASES if c["truth"] == "slip"]

_outcomes: dict[str, object] = {}


def outcome(case):
    """One run per case per session, shared by (b) and (c)."""
    if case["id"] not in _outcomes:
        _outcomes[case["id"]] = run_case(case)
    return _outcomes[case["id"]]


def _fast_sample(cases) -> set:
    """The first correct case and the first slip of each family: the fast lane's share (the whole
    suite runs every case)."""
    first = {}
    for c in cases:
        first.setdefault((c["family"], c["truth"]), c["id"])
    return set(first.values())


FAST_SAMPLE = _fast_sample(CASES)


def _param(case):
    marks = [] if case["id"] in FAST_SAMPLE else [pytest.mark.slow]
    if case["id"] in REASON:
        marks.append(pytest.mark.xfail(strict=True, raises=AssertionError, reason=REASON[case["id"]]))
    return pytest.param(case, id=case["id"], marks=marks)


# ------------------------------------------------------------------------------ the manifest


def test_verify_corpus_manifest_is_well_formed():
    ids = [c["id"] for c in CASES]
    assert len(ids) == len(set(ids)) >= 130
    assert {c["family"] for c in CASES} == set(FAMILIES)
    assert {c["truth"] for c in CASES} == {"correct", "slip"}
    assert all(c["note"] for c in SLIPS) and not any(c["note"] for c in CORRECT)
    assert 0.35 <= len(CORRECT) / len(CASES) <= 0.65
    assert set(REASON) <= set(ids), set(REASON) - set(ids)
    assert sum(len(v) for v in KNOWN_WRONG.values()) == len(REASON), "an id listed twice"


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_verify_corpus_target_resolves(case):
    module_name, name = case["argv"][0].split(":")
    assert callable(getattr(importlib.import_module(module_name), name))


# ------------------------------------------------------------------------------ (a) ground truth


def test_verify_corpus_finite_differences_see_a_wrong_derivative():
    """The helper itself: x³ has derivative 3x², and 2x² is caught."""
    x = np.array([0.5, -1.5, 2.0])
    numeric = ground_truth.numeric_grad(lambda: np.sum(x ** 3), x)
    assert ground_truth.rel_error(3 * x ** 2, numeric) < ground_truth.AGREE_TOL
    assert ground_truth.rel_error(2 * x ** 2, numeric) > ground_truth.DIFFER_TOL
    assert ground_truth.rel_error((3 * x ** 2)[:2], numeric) == float("inf")


@pytest.mark.parametrize("case", CORRECT, ids=[c["id"] for c in CORRECT])
def test_verify_corpus_correct_cases_agree_with_finite_differences(case):
    errors = ground_truth.errors(case)
    assert max(err for _, err in errors) < ground_truth.AGREE_TOL, errors


@pytest.mark.parametrize("case", SLIPS, ids=[c["id"] for c in SLIPS])
def test_verify_corpus_slip_cases_differ_from_finite_differences(case):
    errors = ground_truth.errors(case)
    assert max(err for _, err in errors) > ground_truth.DIFFER_TOL, errors


# ------------------------------------------------------------------------------ (b), (c) verify's verdicts


@pytest.mark.parametrize("case", [_param(c) for c in CASES])
def test_verify_corpus_case_gets_the_right_verdict(case):
    result = outcome(case)
    expected = 0 if case["truth"] == "correct" else 1
    assert result.exit_code == expected, f"{result.verdict} (exit {result.exit_code}): {result.last_line}"


@pytest.mark.slow
def test_verify_corpus_no_slip_passes_unless_a_known_false_pass():
    passed = {c["id"] for c in SLIPS if outcome(c).exit_code == 0}
    assert passed <= KNOWN_FALSE_PASS, sorted(passed - KNOWN_FALSE_PASS)
