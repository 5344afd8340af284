"""The comparison of printed output with the README's (shown_output) is neither too strict nor too lax.

Too strict, and the README tests pass only on the machine that wrote them: every error figure of
the README's own check table is moved here as another CPU, BLAS kernel or thread count would move
it (scaled, zeroed, raised to the tolerance) and must still match. Too lax, and a README test
proves nothing: a changed verdict, name, loss or an error figure past the tolerance must fail.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from conftest import CHECK_TOL
from shown_output import NUMBER, assert_output_matches, line_mismatch, numbers_agree

ROOT = Path(__file__).resolve().parents[1]
TOL = CHECK_TOL["float64"]
SCI = re.compile(r"\d\.\d+e[-+]\d+")


def readme_check_block() -> list[str]:
    text = (ROOT / "README.md").read_text()
    start = text.index("$ .venv/bin/nnparity check specs/textbook_221.toml\n")
    return text[start:text.index("```", start)].rstrip("\n").splitlines()[1:]


def moved(lines: list[str], move) -> list[str]:
    return [SCI.sub(lambda m: f"{move(float(m.group())):.3e}", line) for line in lines]


@pytest.mark.parametrize("move", [lambda e: 0.0, lambda e: 0.13 * e, lambda e: 7.9 * e,
                                  lambda e: TOL, lambda e: 2.2e-16],
                         ids=["zero", "smaller", "larger", "at_tol", "one_ulp"])
def test_shown_output_rounding_noise_in_error_figures_is_accepted(move):
    shown = readme_check_block()
    assert sum(len(SCI.findall(line)) for line in shown) >= 10, "the README's table lost its error figures"
    assert_output_matches(moved(shown, move), shown, TOL)


def test_shown_output_loss_digits_below_rounding_are_accepted():
    shown = readme_check_block()
    loss = re.search(r"scratch=(\S+)", shown[0]).group(1)
    nudged = f"{float(loss) * (1 + 4e-16):.17g}"
    assert nudged != loss
    assert_output_matches([shown[0].replace(loss, nudged)] + shown[1:], shown, TOL)


@pytest.mark.parametrize("edit", [
    lambda s: s.replace("pass", "FAIL", 1),
    lambda s: s.replace("grad layers.0.bias", "grad layers.0.weight"),
    lambda s: s.replace("all tensors agree", "all tensors disagree"),
    lambda s: re.sub(r"scratch=0\.517", "scratch=0.518", s),
    lambda s: SCI.sub("3.000e-08", s, count=1),
], ids=["verdict", "name", "summary", "loss", "error_past_tol"])
def test_shown_output_meaningful_changes_are_refused(edit):
    shown = readme_check_block()
    text = "\n".join(shown)
    changed = edit(text)
    assert changed != text, "the edit found nothing to change"
    with pytest.raises(AssertionError):
        assert_output_matches(changed.splitlines(), shown, TOL)


def test_shown_output_a_missing_or_extra_line_is_refused():
    shown = readme_check_block()
    with pytest.raises(AssertionError):
        assert_output_matches(shown[:-1], shown, TOL)
    with pytest.raises(AssertionError):
        assert_output_matches(shown + ["extra"], shown, TOL)


@pytest.mark.parametrize("got, shown, agree", [
    ("5.6e+00", "4.1e+00", True),       # a failing error figure: same order of magnitude
    ("5.6e+00", "4.1e-01", False),
    ("1.4e-16", "0.000e+00", True),     # both rounding noise
    ("0.75", "0.75", True),
    ("0.75", "0.77", False),
    ("96.66", "96.67", True),           # one unit in the last printed digit
    ("96.66", "96.70", False),
    ("-4.65", "4.65", False),
])
def test_shown_output_numbers(got, shown, agree):
    assert numbers_agree(got, shown, TOL) is agree


def test_shown_output_numbers_inside_words_are_text():
    assert NUMBER.findall("layers.0.weight x2 1.5e-3") == ["1.5e-3"]
    assert line_mismatch("layers.0.weight", "layers.1.weight", TOL) is not None
