"""Compare a command's output with the output a document shows, without testing the machine.

The README shows real output. Which digits float64 rounding leaves in an error figure (2.8e-17 or
1.9e-16) depends on the CPU, the BLAS kernel, thread counts and torch's kernels, so a test that
compares those digits tests the machine, not the project. This module compares what is meaningful:

- text (names, shapes, verdicts, units) character for character, runs of spaces folded (a
  column's padding follows the width of the number in it);
- an error figure (a number in scientific notation, or one printed at or below ``tol``): both the
  shown and the printed figure must be at most ``tol`` (rounding noise on either side), or else
  within a factor of 10 of each other (the document quotes an order of magnitude);
- any other number: equal within one unit of its last printed digit, or within ``tol`` relative
  (a 17-digit loss agrees to rounding, not to the last digit).
"""
from __future__ import annotations

import re

NUMBER = re.compile(r"(?<![\w.])[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?(?![\w.])")
ORDER_OF_MAGNITUDE = 10.0


def split_numbers(line: str) -> tuple[list[str], list[str]]:
    """(the text between numbers, the numbers) of one line."""
    return NUMBER.split(line), NUMBER.findall(line)


def _last_digit_unit(token: str) -> float:
    mantissa, _, exponent = token.lower().partition("e")
    decimals = len(mantissa.split(".")[1]) if "." in mantissa else 0
    return 10.0 ** (int(exponent or 0) - decimals)


def numbers_agree(got: str, shown: str, tol: float) -> bool:
    """Whether a printed number agrees with the shown one, by the rules of this module."""
    a, b = float(got), float(shown)
    error_figure = "e" in shown.lower() or "e" in got.lower() or abs(b) <= tol
    if error_figure:
        if abs(a) <= tol and abs(b) <= tol:
            return True
        if a == 0 or b == 0 or (a > 0) != (b > 0):
            return False
        return abs(a) / ORDER_OF_MAGNITUDE <= abs(b) <= abs(a) * ORDER_OF_MAGNITUDE
    unit = max(_last_digit_unit(got), _last_digit_unit(shown))
    return abs(a - b) <= unit * (1 + 1e-9) or abs(a - b) <= tol * abs(b)


def line_mismatch(got: str, shown: str, tol: float) -> str | None:
    """Why a printed line differs from the shown one, or None where they agree."""
    got_text, got_numbers = split_numbers(got)
    shown_text, shown_numbers = split_numbers(shown)
    if [" ".join(t.split()) for t in got_text] != [" ".join(t.split()) for t in shown_text]:
        return f"text differs:\n  got:   {got!r}\n  shown: {shown!r}"
    for a, b in zip(got_numbers, shown_numbers):
        if not numbers_agree(a, b, tol):
            return f"number {a} does not agree with the shown {b} (tol {tol:g}):\n  got:   {got!r}\n  shown: {shown!r}"
    return None


def assert_output_matches(got_lines: list[str], shown_lines: list[str], tol: float) -> None:
    """Assert that printed lines agree with the lines a document shows (rules in the module doc)."""
    assert len(got_lines) == len(shown_lines), (
        f"{len(got_lines)} lines printed, {len(shown_lines)} shown:\n" + "\n".join(got_lines))
    for number, (got, shown) in enumerate(zip(got_lines, shown_lines), 1):
        why = line_mismatch(got, shown, tol)
        assert why is None, f"line {number}: {why}"
