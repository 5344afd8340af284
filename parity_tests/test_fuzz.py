"""Seeded fuzzing of the spec loader, `check` and the command line.

Every input either loads and runs, or fails with the project's own error (SpecError or
UsageError: one short line, exit 2): never another exception, a MemoryError, a hang or a numpy
warning (the suite turns those into errors). Each target counts its inputs and asserts it saw at
least 10,000 (the default run) or 100,000 (NNPARITY_FUZZ_LONG=1, the tests marked slow).
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import random
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from fuzzing import (SCALE, flip, image_spec_tables, long_only, mutate, mutate_image, sequence_tables, spec_tables,
                     to_text)
from nnparity.cli import main
from nnparity.commands.check import run_spec
from scratch.errors import MAX_FIELD_CHARS, MAX_MESSAGE_CHARS
from scratch.data import random_batch
from scratch.network import Network, build_loss
from scratch.spec import SpecError, parse_spec, spec_from_bytes

INPUTS = 10_000 * SCALE
COMMAND_INPUTS = INPUTS // 4    # the targets that run a whole command (check, the CLI) on each input
SETTINGS = dict(deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])


def assert_clean(err: SpecError) -> None:
    """The project's own error: one line, short, starting with a field path."""
    text = str(err)
    assert "\n" not in text and len(text) <= MAX_FIELD_CHARS + MAX_MESSAGE_CHARS + 2, text[:300]


def load_or_refuse(load) -> object | None:
    try:
        return load()
    except SpecError as err:
        assert_clean(err)
        return None


def fuzz(target, strategy, per_example: int, inputs: int = INPUTS):
    """Run ``target(base, rng)`` on ``per_example`` inputs from each drawn base until ``inputs`` ran;
    return the count (asserted by the caller: a run that generated less proves less)."""
    seen = [0]

    @settings(max_examples=inputs // per_example, **SETTINGS)
    @given(base=strategy, seed=st.integers(0, 2**32 - 1))
    def run(base, seed):
        rng = random.Random(seed)
        for _ in range(per_example):
            target(base, rng)
            seen[0] += 1

    run()
    return seen[0]


# ------------------------------------------------------------------------------------ targets


def _tables(base, rng):
    load_or_refuse(lambda: parse_spec(mutate(base, rng)))


def _text(suffix):
    def target(base, rng):
        data = flip(to_text(mutate(base, rng) if rng.random() < 0.7 else base, suffix), rng)
        spec = load_or_refuse(lambda: spec_from_bytes(data, suffix))
        if spec is not None:  # what loads survives its own round trip
            assert parse_spec(spec.to_dict()) == spec
    return target


def _bytes(base, rng):
    data = flip(base, rng) if rng.random() < 0.8 else base
    load_or_refuse(lambda: spec_from_bytes(data, rng.choice([".toml", ".json"])))


def _image_tables(base, rng):
    """An image spec with its new kinds' fields near their edges or hostile: it loads and its network
    takes a train-mode step and an eval-mode pass, or it is refused in one line naming the layer and
    field that was changed (or one its shape reaches)."""
    raw, paths = mutate_image(base, rng)
    try:
        spec = parse_spec(raw)
    except SpecError as err:
        assert_clean(err)
        if paths and all(path[0] == "layers" for path in paths):
            assert err.field.startswith("layers["), (paths, str(err))
        return
    x, y = random_batch(spec, 2)
    x = np.asarray(x, dtype=spec.dtype)     # as check runs it: the network computes in the spec's dtype
    net, loss = Network.from_spec(spec), build_loss(spec)
    loss.forward(net.forward(x), y)
    net.backward(loss.backward())
    net.eval().forward(x)


CHECK_ARGS = dict(dtype=None, batch=None, tol=None, allow_overflow=False, json=True)


def _check(base, rng):
    """check on every spec that loads: exit 0 only when every compared value is finite."""
    raw = mutate(base, rng) if rng.random() < 0.3 else base
    spec = load_or_refuse(lambda: parse_spec(raw))
    if spec is None:
        return
    args = argparse.Namespace(**{**CHECK_ARGS, "batch": rng.choice([None, None, 1, 3])})
    out = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(out):
        warnings.simplefilter("error")  # no warning of any kind reaches stderr
        try:
            code = run_spec(spec, args)
        except SpecError as err:
            assert_clean(err)
            return
    doc = json.loads(out.getvalue())
    assert code == (0 if doc["ok"] else 1)
    if code == 0:
        values = [doc[side]["loss"] for side in ("scratch", "torch")] + _flat(doc["scratch"]) + _flat(doc["torch"])
        assert all(v is not None and math.isfinite(v) for v in values), "a pass on a value not compared"


def _flat(value):
    if isinstance(value, dict):
        return [x for v in value.values() for x in _flat(v)]
    if isinstance(value, list):
        return [x for v in value for x in _flat(v)]
    return [value]


# The command line: each command's own options with hostile values, in random order and number.
# The positional always names a spec file that is not there, so an argv whose options all pass
# ends at the spec's one-line error: every input exits 2 without training anything.
CLI_COMMANDS = {"check": ["no/such/spec.toml"], "train": ["no/such/spec.toml"],
                "compare": ["no/such/spec.toml"], "verify": ["--spec", "no/such/spec.toml"],
                "convert": ["no/such/a.npz", "out.npz"]}
CLI_VALUES = ["0", "-1", "1", "3", "100000000000", "1e308", "-0.0", "inf", "nan", "", "x", "ü", "9" * 5000,
              "/", ".", "no/such/dir/x.png", "x.png", "x.json", "float16", "float32", "cpu", "gpu", "none",
              "ddp", "examples.custom_ops:Swish", "--", "-", "\x00", "2**64"]


def _options(command: str) -> list:
    from nnparity.cli import build_parser

    parser, _ = build_parser([command])
    sub = next(a for a in parser._actions if a.dest == "command").choices[command]
    return [a for a in sub._actions if a.option_strings and a.dest not in ("help", "spec")]


def _cli(command, rng):
    """One argv of hostile options: exit 2 with the project's one-line error (or argparse's)."""
    argv = [command, *CLI_COMMANDS[command]]
    for action in rng.sample(OPTIONS[command], rng.randint(1, min(4, len(OPTIONS[command])))):
        argv.append(rng.choice(action.option_strings))
        if action.nargs != 0:
            argv.append(rng.choice(CLI_VALUES))
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exit_:   # argparse's own usage error
            code = exit_.code
    lines = err.getvalue().strip().splitlines()
    assert code == 2 and out.getvalue() == "", (argv, code, err.getvalue()[-500:])
    assert lines and lines[-1].startswith("nnparity") and "Traceback" not in err.getvalue(), (argv, lines[-3:])


OPTIONS = {command: _options(command) for command in CLI_COMMANDS}


@pytest.mark.parametrize("target,strategy,per_example,inputs", [
    (_tables, spec_tables(), 50, INPUTS),
    (_text(".toml"), spec_tables(), 50, INPUTS),
    (_text(".json"), spec_tables(), 50, INPUTS),
    (_bytes, st.binary(max_size=300), 50, INPUTS),
    (_tables, sequence_tables(), 50, INPUTS),
    pytest.param(_text(".toml"), sequence_tables(), 50, INPUTS, marks=pytest.mark.slow),
    (_image_tables, image_spec_tables(), 50, INPUTS),
    (_text(".json"), image_spec_tables(), 50, INPUTS),
    pytest.param(_check, spec_tables(), 10, COMMAND_INPUTS, marks=pytest.mark.slow),
    pytest.param(_check, image_spec_tables(), 10, COMMAND_INPUTS, marks=pytest.mark.slow),
    pytest.param(_cli, st.sampled_from(sorted(CLI_COMMANDS)), 50, COMMAND_INPUTS, marks=pytest.mark.slow),
], ids=["tables", "toml", "json", "bytes", "sequence-tables", "sequence-toml", "image-tables", "image-json", "check",
        "image-check", "cli"])
def test_fuzz_target_clean(target, strategy, per_example, inputs):
    assert fuzz(target, strategy, per_example, inputs) >= inputs


@long_only
@pytest.mark.slow
def test_fuzz_target_clean_long():
    """The long run: NNPARITY_FUZZ_LONG=1 multiplies every target's inputs by ten (the test
    above then runs 100,000 per target); this marker test only says the run was long."""
    assert INPUTS == 100_000
