"""Token data: the shipped text for a character-level language model, generated sequence tasks with
known solutions (copy, reverse, addition), and the checks of token ids and per-step targets.

Every dataset here gives x (N, T) integer token ids and y (N, T) integer targets, one per time
step, ``ignore`` (the loss's ignore_index) where a step has nothing to predict; T is the spec's
input_shape [T]. The generated tasks draw from the spec's seed.

The text (``texts/genesis_kjv.txt``, 34,839 characters, 59 distinct): Genesis chapters 1 to 11 of
the King James Version (1611), public domain (its copyright expired; see texts/README.md). It was
written out by ``bible -p /usr/lib "gen1:1-gen11:32"`` of Debian's bible-kjv 4.38 packages, the
chapter headings and verse numbers dropped, one verse per line.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from scratch.errors import SpecError

TEXT_PATH = Path(__file__).resolve().parent / "texts" / "genesis_kjv.txt"


def load_text() -> str:
    return TEXT_PATH.read_text(encoding="utf-8")


def text_vocab() -> str:
    """The text's characters, sorted: character k is token id k."""
    return "".join(sorted(set(load_text())))


def encode(text: str, vocab: str) -> np.ndarray:
    index = {ch: i for i, ch in enumerate(vocab)}
    return np.array([index[ch] for ch in text], dtype=np.int64)


def decode(ids, vocab: str) -> str:
    return "".join(vocab[int(i)] for i in ids)


# -------------------------------------------------------------------------------- the datasets


def _text(rng, samples: int | None, steps: int, vocab: int, ignore: int):
    """Consecutive windows of T characters (stride T): x = the window, y = the next character at each step."""
    ids = encode(load_text(), text_vocab())
    windows = (len(ids) - 1) // steps
    if samples is not None:
        windows = min(windows, samples)
    starts = np.arange(windows) * steps
    x = ids[starts[:, None] + np.arange(steps)]
    return x, ids[starts[:, None] + np.arange(1, steps + 1)]


BLANK, SEPARATOR = 0, 1   # the copy and reverse tasks' token ids below their symbols 2 .. vocab − 1


def _echo(reverse: bool):
    def make(rng, samples: int | None, steps: int, vocab: int, ignore: int):
        """x = L symbols, a separator, L − 1 blanks (T = 2L); y = nothing for the first L steps, then
        the L symbols again (reversed for ``reverse``) from the separator on."""
        half = steps // 2
        symbols = rng.integers(2, vocab, size=(samples or 1000, half))
        x = np.concatenate([symbols, np.full((len(symbols), 1), SEPARATOR),
                            np.full((len(symbols), half - 1), BLANK)], axis=1)
        answer = symbols[:, ::-1] if reverse else symbols
        y = np.concatenate([np.full((len(symbols), half), ignore), answer], axis=1)
        return x, y
    return make


PLUS, EQUALS, PAD = 10, 11, 12   # the addition task's token ids after the digits 0 .. 9


def _addition(rng, samples: int | None, steps: int, vocab: int, ignore: int):
    """a + b of L digits each, every number least significant digit first: x = a, +, b, =, L blanks
    (T = 3L + 2); y = nothing until the =, then the L + 1 digits of the sum."""
    digits = (steps - 2) // 3
    a, b = (rng.integers(0, 10, size=(samples or 1000, digits)) for _ in range(2))
    total = _number(a) + _number(b)
    n = len(a)
    sum_digits = (total[:, None] // 10 ** np.arange(digits + 1)) % 10
    x = np.concatenate([a, np.full((n, 1), PLUS), b, np.full((n, 1), EQUALS), np.full((n, digits), PAD)], axis=1)
    y = np.concatenate([np.full((n, 2 * digits + 1), ignore), sum_digits], axis=1)
    return x, y


def _number(digits) -> np.ndarray:
    """Rows of digits, least significant first, as integers."""
    return (digits * 10 ** np.arange(digits.shape[1])).sum(axis=1)


@dataclass(frozen=True)
class TokenDataset:
    """A token dataset: its generator, the vocabulary it needs, the lengths T it takes."""

    make: Callable                     # (rng, samples, T, vocab, ignore) -> (x, y)
    vocab: int | None                  # the vocab it needs exactly; None: any of at least min_vocab
    min_vocab: int
    length_rule: Callable[[int], bool]
    length_text: str


TOKEN_DATASETS = {
    "text": TokenDataset(_text, len(text_vocab()), 1, lambda t: 1 <= t < 1000, "from 1 to 999"),
    "copy": TokenDataset(_echo(False), None, 3, lambda t: t >= 2 and t % 2 == 0, "even, at least 2"),
    "reverse": TokenDataset(_echo(True), None, 3, lambda t: t >= 2 and t % 2 == 0, "even, at least 2"),
    "addition": TokenDataset(_addition, 13, 13, lambda t: t >= 5 and t % 3 == 2, "3·digits + 2 (5, 8, 11, ...)"),
}


def generate_tokens(spec) -> tuple[np.ndarray, np.ndarray]:
    """The spec's token dataset, whole (before the split): x (N, T) ids, y (N, T) targets."""
    name = spec.data.name
    info = TOKEN_DATASETS[name]
    if spec.vocab is None:
        raise SpecError("data.name", f"{name!r} is token data; the network needs input_shape = [T] and an "
                                     f"embedding as layers[0]")
    if spec.loss.name != "token_cce":
        raise SpecError("loss.name", f"{name!r} has a target at every time step; use loss token_cce")
    steps = spec.shapes[0][0]
    if not info.length_rule(steps):
        raise SpecError("input_shape", f"{name!r} takes sequences of length {info.length_text}, got [{steps}]")
    need = f"exactly {info.vocab}" if info.vocab is not None else f"at least {info.min_vocab}"
    wrong = spec.vocab != info.vocab if info.vocab is not None else spec.vocab < info.min_vocab
    if wrong:
        raise SpecError("layers[0].vocab", f"{name!r} needs a vocab of {need} tokens, got {spec.vocab}")
    if spec.outputs != spec.vocab:
        raise SpecError(f"layers[{len(spec.layers) - 1}].units", f"{name!r} predicts one of its {spec.vocab} "
                                                                 f"tokens per step, the network {spec.outputs}")
    if spec.data.noise is not None:
        raise SpecError("data.noise", f"{name!r} takes no noise; leave noise out")
    return info.make(np.random.default_rng(spec.seed), spec.data.samples, steps, spec.vocab, spec.loss.ignore)


# --------------------------------------------------------------------------------- validation


def check_tokens(x, steps: int, vocab: int, where: str = "x") -> np.ndarray:
    """Token ids of shape (N, T), N >= 1: integers 0 .. vocab − 1 (floats that are whole numbers
    count). Returns them as int64."""
    arr = _integers(x, where, "token ids")
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] != steps:
        raise SpecError(where, f"expected token ids of shape (N, {steps}) with N >= 1, got {tuple(arr.shape)}")
    bad = (arr < 0) | (arr >= vocab)
    if np.any(bad):
        i = tuple(int(k) for k in np.argwhere(bad)[0])
        raise SpecError(where, f"token id {arr[i]:g} at {list(i)} is out of range for the vocab of {vocab} "
                               f"(layers[0].vocab); expected 0 to {vocab - 1}")
    return arr.astype(np.int64)


def check_token_targets(y, n: int, classes: int, ignore: int, where: str = "y") -> np.ndarray:
    """Per-step targets (n, T): class ids 0 .. classes − 1, or ``ignore``. Returns them as int64."""
    arr = _integers(y, where, "targets")
    if arr.ndim != 2 or arr.shape[0] != n:
        raise SpecError(where, f"expected token targets of shape ({n}, T), one per time step, got {tuple(arr.shape)}")
    bad = ((arr < 0) | (arr >= classes)) & (arr != ignore)
    if np.any(bad):
        i = tuple(int(k) for k in np.argwhere(bad)[0])
        raise SpecError(where, f"target {arr[i]:g} at {list(i)} is out of range for {classes} classes; expected "
                               f"0 to {classes - 1}, or {ignore} (loss.ignore_index) for no target")
    return arr.astype(np.int64)


def _integers(value, where: str, what: str) -> np.ndarray:
    try:
        arr = np.asarray(value)
        if arr.dtype == object or arr.dtype.kind not in "biuf":
            raise ValueError
    except (ValueError, TypeError, RecursionError, OverflowError):
        raise SpecError(where, f"expected a rectangular list of {what}") from None
    if arr.dtype.kind == "f" and not (np.all(np.isfinite(arr)) and np.all(arr == np.round(arr))):
        raise SpecError(where, f"{what} must be integers")
    if arr.dtype.kind == "b":
        raise SpecError(where, f"{what} must be integers, got booleans")
    return arr
