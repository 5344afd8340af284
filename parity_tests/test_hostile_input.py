"""Hostile input on the command line and in the environment: standard output that cannot be
written, sizes and thread counts beyond any machine, data that cannot be trained on. One line,
the documented exit status, never a traceback."""
from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nnparity.stdout import BROKEN_PIPE_EXIT
from nnparity.usage import max_threads
from scratch.data import MinMaxScaler, Standardizer, load_dataset, train_test_split
from scratch.errors import SpecError
from scratch.spec import parse_spec
from test_hostile import assert_one_line, run_cli

ROOT = Path(__file__).resolve().parents[1]

# ----------------------------------------------------------------------- standard output

OUTPUT_COMMANDS = [("check", ["check", "--json"]), ("check", ["check"]),
                   ("verify", ["verify", "examples.custom_ops:Softplus"]),
                   ("verify", ["verify", "examples.custom_ops:Softplus", "--json"])]


@pytest.mark.parametrize("command,argv", OUTPUT_COMMANDS, ids=[" ".join(a) for _, a in OUTPUT_COMMANDS])
def test_stdout_full_disk_one_line(command, argv, capsys, monkeypatch):
    """`> /dev/full`: every write fails with ENOSPC."""
    with open("/dev/full", "w") as full:
        monkeypatch.setattr(sys, "stdout", full)
        code, _, err = run_cli(capsys, *argv)
    assert code == 2
    assert_one_line(err, command, "cannot write the output to stdout: No space left on device")


@pytest.mark.parametrize("command,argv", OUTPUT_COMMANDS[:2], ids=[" ".join(a) for _, a in OUTPUT_COMMANDS[:2]])
def test_stdout_closed_pipe_exit_141(command, argv, capsys, monkeypatch):
    """`| head -0`: the reader is gone before the first write."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    with open(write_end, "w") as pipe:
        monkeypatch.setattr(sys, "stdout", pipe)
        code, _, err = run_cli(capsys, *argv)
    assert code == BROKEN_PIPE_EXIT and err == ""


# ----------------------------------------------------------------------------- environment

@pytest.mark.parametrize("value", ["1e999", "1e400TB", "9" * 400])
def test_memory_limit_infinite_one_line(value, capsys, monkeypatch):
    monkeypatch.setenv("NNPARITY_MAX_MEMORY", value)
    code, out, err = run_cli(capsys, "check")
    assert code == 2 and out == ""
    assert_one_line(err, "check", "NNPARITY_MAX_MEMORY: expected a size")


# ----------------------------------------------------------------------------------- threads

THREADS_COMMANDS = [("train", ["train", "specs/xor.toml"]), ("compare", ["compare", "specs/xor.toml"]),
                    ("bench", ["bench", "--quick"])]


@pytest.mark.parametrize("value", ["1000000000", "0", "-3", str(4 * (os.cpu_count() or 1) + 1)])
@pytest.mark.parametrize("command,argv", THREADS_COMMANDS, ids=[c for c, _ in THREADS_COMMANDS])
def test_threads_out_of_range_one_line(command, argv, value, capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(ROOT)
    code, out, err = run_cli(capsys, *argv, "--threads", value, "--plot", str(tmp_path / "x.png"))
    assert code == 2 and out == ""
    assert_one_line(err, command, "--threads")
    if int(value) > 0 or command != "bench":   # bench's harness words its own refusal of 0 and -3
        assert f"between 1 and {max_threads()}" in err
    assert not list(tmp_path.iterdir())


# -------------------------------------------------------------------------------------- data

def spec_with_inline_x(x, scale: str, test_fraction: float = 0.0):
    rows = len(x)
    return parse_spec({"layers": [{"inputs": 1, "units": 1, "activation": "sigmoid"}], "loss": {"name": "bce"},
                       "data": {"x": x, "y": [[float(i % 2)] for i in range(rows)], "scale": scale,
                                "test_fraction": test_fraction}})


@pytest.mark.parametrize("value", [1e308, 1e-300, 5e-324])
@pytest.mark.parametrize("scale,expected", [("standard", [1.0, -1.0, 1.0, -1.0]), ("minmax", [1.0, 0.0, 1.0, 0.0])])
def test_scaling_extreme_inputs_not_zeroed(value, scale, expected):
    """±v standardize to ±1 and map onto 0 and 1, not to zeros or back to ±v (the variance of
    ±1e308 overflows, that of ±1e-300 underflows)."""
    dataset = load_dataset(spec_with_inline_x([[value], [-value], [value], [-value]], scale))
    np.testing.assert_array_equal(dataset.x_train[:, 0], expected)


@pytest.mark.parametrize("scaler", [Standardizer, MinMaxScaler], ids=["standard", "minmax"])
def test_scaling_same_bits_as_the_plain_formula(scaler):
    """Within the float range the scalers give exactly (x - mean) / std and (x - min) / (max - min)."""
    rng = np.random.default_rng(7)
    train = np.column_stack([rng.normal(0, 1e5, 40), rng.uniform(-1.5, 1.5, 40), rng.normal(3e-7, 1e-9, 40)])
    test = np.column_stack([rng.normal(0, 1e5, 9), rng.uniform(-1.5, 1.5, 9), rng.normal(3e-7, 1e-9, 9)])
    if scaler is Standardizer:
        def plain(x):
            return (x - train.mean(axis=0)) / train.std(axis=0)
    else:
        def plain(x):
            return (x - train.min(axis=0)) / (train.max(axis=0) - train.min(axis=0))
    fitted = scaler().fit(train)
    np.testing.assert_array_equal(fitted.transform(train), plain(train))
    np.testing.assert_array_equal(fitted.transform(test), plain(test))


def test_scaling_test_row_beyond_range_one_line():
    """A held-out row 1e308 against training rows near 1e-300: standardized, it is past the float range."""
    x = [[1e-300 * (i + 1)] for i in range(8)]
    _, _, x_test, _ = train_test_split(np.array(x), np.zeros((8, 1)), 0.25, 0)
    x[int(np.flatnonzero(np.array(x)[:, 0] == x_test[0, 0])[0])] = [1e308]
    with pytest.raises(SpecError, match=r"^data\.scale: 'standard' scaling takes some test rows beyond"):
        load_dataset(spec_with_inline_x(x, "standard", test_fraction=0.25))


@pytest.mark.parametrize("dtype,noise,fragment", [("float32", 3e38, "values beyond the float32 range"),
                                                  ("float64", 1e308, "contains NaN or inf")])
def test_noise_beyond_range_one_line(dtype, noise, fragment, tmp_path, capsys):
    """A noise whose samples do not fit the dtype is a data error, not a diverged run."""
    path = tmp_path / "spec.toml"
    path.write_text(f'dtype = "{dtype}"\n[[layers]]\ninputs = 1\nunits = 1\n[loss]\nname = "mse"\n'
                    f'[data]\nname = "square"\nnoise = {noise}\n[train]\nepochs = 2\n')
    code, out, err = run_cli(capsys, "train", str(path))
    assert code == 2 and out == ""
    assert_one_line(err, "train", f"data.noise: {fragment}")


# --------------------------------------------------------------------------------------- API

def nested(depth: int):
    value = []
    for _ in range(depth):
        value = [value]
    return value


DEEP_FIELDS = [("optimizer", "betas"), ("optimizer", "lr"), ("optimizer", "name"), ("loss", "name"),
               ("loss", "reduction"), ("data", "x"), ("data", "y"), ("data", "name"), ("data", "scale"),
               ("train", "epochs"), ("train", "batch_size"), (None, "seed"), (None, "dtype"), (None, "layers"),
               ("layers", "units"), ("layers", "activation"), ("layers", "activation_params"), ("layers", "weight"),
               ("layers", "bias"), ("layers", "init")]


DEEP_CASES = [(table, key, 2_000) for table, key in DEEP_FIELDS] + [("optimizer", "betas", 100_000),
                                                                  ("data", "x", 100_000)]


@pytest.mark.parametrize("table,key,depth", DEEP_CASES,
                         ids=[f"{t}.{k}-{d}" if t else f"{k}-{d}" for t, k, d in DEEP_CASES])
def test_parse_spec_deep_nesting_spec_error(table, key, depth):
    """parse_spec (the API, no file loader in front) refuses a value nested deeper than the
    interpreter's recursion limit with a SpecError naming the field, not a RecursionError."""
    raw = {"layers": [{"inputs": 2, "units": 1, "activation": "sigmoid"}], "loss": {"name": "bce"},
           "optimizer": {"name": "adam"}, "data": {"x": [[0.0, 1.0]], "y": [[1.0]]}, "train": {}}
    if table is None:
        raw[key] = nested(depth)
    elif table == "layers":
        raw["layers"][0][key] = nested(depth)
    else:
        raw[table][key] = nested(depth)
    if key == "name" and table == "data":   # a named dataset, not inline data
        del raw["data"]["x"], raw["data"]["y"]
    with pytest.raises(SpecError) as caught:
        parse_spec(raw)
    assert key in caught.value.field and len(str(caught.value)) < 600


@pytest.mark.parametrize("raw,field", [
    ({1: 2}, "1"), ({"optimizer": {b"x": 1}}, "optimizer.b'x'"), ({"data": {None: 1}}, "data.None"),
    ({"layers": [{"inputs": 2, "units": 1, (1, 2): 3}]}, "layers[0].(1, 2)"),
], ids=["int", "bytes", "none", "tuple"])
def test_parse_spec_key_not_a_string_spec_error(raw, field):
    """A dict built in Python may have keys no spec file can: each is an unknown field, named as shown."""
    raw = {"layers": [{"inputs": 2, "units": 1}], **raw}
    with pytest.raises(SpecError, match=r"unknown field") as info:
        parse_spec(raw)
    assert info.value.field == field


# ------------------------------------------------------------------ a file size limit (ulimit -f)

def _under_file_size_limit(limit_bytes: int, *argv, cwd):
    """The CLI in a process whose files may not grow past ``limit_bytes`` (ulimit -f)."""
    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))

    # no bytecode caches: Python would write them cut at the limit, breaking the suite's later imports
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "HOME": str(cwd), "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run([sys.executable, "-m", "nnparity", *argv], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300, preexec_fn=limit)


@pytest.mark.slow
def test_file_size_limit_verify_runs():
    """verify's child shares its progress through anonymous memory, which no file size limit refuses."""
    done = _under_file_size_limit(1000, "verify", "examples.custom_ops:Swish", cwd=ROOT)
    assert done.returncode == 0 and done.stdout.splitlines()[-1].startswith("PASS"), done.stderr[-2000:]


@pytest.mark.slow
@pytest.mark.parametrize("limit,fragment", [(1000, "cannot write the spec for the backends to "),
                                            (100_000, "scratch: cannot write its result to ")])
def test_file_size_limit_compare_one_line(tmp_path, limit, fragment):
    """The spec the backends read, or a backend's result, that cannot be written: one line naming
    it, exit 2, not a traceback."""
    done = _under_file_size_limit(limit, "compare", str(ROOT / "specs" / "xor.toml"), "--repeat", "1", "--plot",
                                  "none", "--quiet", cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert_one_line(done.stderr, "compare", fragment)
    assert "File too large" in done.stderr
