"""`nnparity check`: every example spec passes in both dtypes, the table, the --json schema,
and the exit codes 0 / 1 / 2."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import CHECK_TOL, DTYPES
from shown_output import assert_output_matches
from scratch.spec import load_spec
from nnparity.cli import main

ROOT = Path(__file__).resolve().parents[1]
SPEC_FILES = sorted((ROOT / "specs").glob("*.toml")) + sorted((ROOT / "specs").glob("*.json"))


def run_json(capsys, *args) -> tuple[int, dict]:
    code = main(["check", *args, "--json"])
    out, err = capsys.readouterr()
    assert err == ""
    return code, json.loads(out)


def all_rel(doc) -> list[float]:
    e = doc["errors"]
    return [e["output"]["rel"], e["loss"]["rel"], *(g["rel"] for g in e["grads"].values())]


def test_cli_check_specs_present():
    assert len(SPEC_FILES) >= 4


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("path", SPEC_FILES, ids=[p.name for p in SPEC_FILES])
def test_cli_check_spec_passes(path, dtype, capsys):
    code, doc = run_json(capsys, str(path), "--dtype", dtype)
    assert code == 0 and doc["ok"] is True and doc["dtype"] == dtype
    assert max(all_rel(doc)) <= CHECK_TOL[dtype]


def test_cli_check_json_schema(capsys):
    """Exactly the documented --json schema: dtype, ok, scratch/torch {output, loss, grads incl. input},
    errors {output, loss, grads} each {max_abs, rel}; weights' gradients in (inputs, units) layout."""
    path = ROOT / "specs" / "deep_mixed.json"
    spec = load_spec(path)
    code, doc = run_json(capsys, str(path), "--batch", "3")
    assert code == 0
    assert set(doc) == {"dtype", "ok", "scratch", "torch", "errors"}
    assert isinstance(doc["dtype"], str) and isinstance(doc["ok"], bool)
    names = {f"layers.{i}.{kind}" for i in range(len(spec.layers)) for kind in ("weight", "bias")} | {"input"}
    for side in ("scratch", "torch"):
        run = doc[side]
        assert set(run) == {"output", "loss", "grads"}
        assert isinstance(run["loss"], float)
        assert len(run["output"]) == 3 and all(len(row) == spec.outputs for row in run["output"])
        assert set(run["grads"]) == names
        for i, layer in enumerate(spec.layers):
            w = run["grads"][f"layers.{i}.weight"]
            assert len(w) == layer.inputs and all(len(row) == layer.units for row in w)
            assert len(run["grads"][f"layers.{i}.bias"]) == layer.units
        assert len(run["grads"]["input"]) == 3 and len(run["grads"]["input"][0]) == spec.inputs
    assert set(doc["errors"]) == {"output", "loss", "grads"}
    assert set(doc["errors"]["grads"]) == names
    for err in [doc["errors"]["output"], doc["errors"]["loss"], *doc["errors"]["grads"].values()]:
        assert set(err) == {"max_abs", "rel", "result"}
        assert err["result"] == "pass"
        assert all(isinstance(err[k], float) and err[k] >= 0 for k in ("max_abs", "rel"))


def test_cli_check_json_is_strict(capsys):
    main(["check", str(ROOT / "specs" / "xor_sigmoid.toml"), "--json"])
    out = capsys.readouterr().out
    json.loads(out, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    assert out.count("\n") == 1


def test_cli_check_json_errors_match_values(capsys):
    """The reported errors are those of the reported tensors (recomputed here from the JSON)."""
    import numpy as np

    _, doc = run_json(capsys, str(ROOT / "specs" / "regression_mse.toml"), "--dtype", "float32")
    for name, err in doc["errors"]["grads"].items():
        a = np.array(doc["scratch"]["grads"][name])
        b = np.array(doc["torch"]["grads"][name])
        assert err["max_abs"] == pytest.approx(float(np.abs(a - b).max()), rel=1e-6, abs=1e-12)
        assert err["rel"] == pytest.approx(float(np.linalg.norm(a - b) / np.linalg.norm(b)), rel=1e-6, abs=1e-12)


def test_cli_check_exit_1_tiny_tol(capsys):
    """A real float32 run against a tolerance no float32 arithmetic meets: exit 1, FAIL rows."""
    path = str(ROOT / "specs" / "regression_mse.toml")
    code, doc = run_json(capsys, path, "--dtype", "float32", "--tol", "1e-30")
    assert code == 1 and doc["ok"] is False
    assert max(all_rel(doc)) > 1e-30
    assert main(["check", path, "--dtype", "float32", "--tol", "1e-30"]) == 1
    table = capsys.readouterr().out
    assert "FAIL" in table and "tensors disagree" in table


def test_cli_check_table_lists_every_tensor(capsys):
    spec = load_spec(ROOT / "specs" / "deep_mixed.json")
    assert main(["check", str(ROOT / "specs" / "deep_mixed.json")]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].startswith("nnparity check  dtype=float64  tol=1e-12")
    rows = {line.split()[0] + (" " + line.split()[1] if line.split()[0] in ("grad", "activation") else "")
            for line in lines[2:-1]}
    expected = {"output", "loss", "grad input"}
    expected |= {f"activation layers.{i}" for i in range(len(spec.layers))}
    expected |= {f"grad layers.{i}.{k}" for i in range(len(spec.layers)) for k in ("weight", "bias")}
    assert rows == expected
    assert all(line.endswith("pass") for line in lines[2:-1])
    assert lines[-1] == "all tensors agree"


def test_cli_check_default_spec(capsys):
    assert main(["check"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "all tensors agree"


def test_cli_check_batch_flag(capsys):
    code, doc = run_json(capsys, str(ROOT / "specs" / "xor_sigmoid.toml"), "--batch", "7")
    assert code == 0 and len(doc["scratch"]["grads"]["input"]) == 7


@pytest.mark.parametrize("args,fragment", [
    (["--batch", "0"], "--batch: must be >= 1"),
    (["--tol", "-1"], "--tol: must be > 0"),
    (["--tol", "0"], "--tol: must be > 0"),
])
def test_cli_check_bad_flag_exit_2(args, fragment, capsys):
    assert main(["check", str(ROOT / "specs" / "xor_sigmoid.toml"), *args]) == 2
    err = capsys.readouterr().err
    assert fragment in err and err.count("\n") == 1


def test_cli_check_bad_dtype_flag_exit_2(capsys):
    with pytest.raises(SystemExit) as info:
        main(["check", "--dtype", "float16"])
    assert info.value.code == 2
    assert "invalid choice: 'float16'" in capsys.readouterr().err


def test_cli_check_console_script():
    """The installed `nnparity` on the default spec and a spec file, as a user runs it."""
    script = Path(sys.executable).with_name("nnparity")
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "nnparity"]
    out = subprocess.run([*cmd, "check", str(ROOT / "specs" / "textbook_221.toml"), "--dtype", "float32", "--json"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["ok"] is True and doc["dtype"] == "float32"


def _readme_block(after: str) -> list[str]:
    text = (ROOT / "README.md").read_text()
    start = text.index(after + "\n") + len(after) + 1
    return text[start:text.index("```", start)].rstrip("\n").splitlines()


@pytest.mark.parametrize("torch_threads", [1, 2])
def test_cli_check_readme_as_written(capsys, tmp_path, torch_threads):
    """README's "Check a spec" shows real output: the table and the bad-input line. Error figures
    are rounding noise that moves with the CPU, BLAS kernel and thread count: they are held to the
    tolerance, not to their digits (shown_output), under two torch thread counts."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(torch_threads)
    try:
        assert main(["check", str(ROOT / "specs" / "textbook_221.toml")]) == 0
    finally:
        torch.set_num_threads(before)
    shown = _readme_block("$ .venv/bin/nnparity check specs/textbook_221.toml")
    assert_output_matches(capsys.readouterr().out.splitlines(), shown, CHECK_TOL["float64"])
    bad = tmp_path / "bad.toml"
    bad.write_text("[[layers]]\ninputs = 2\nunits = 3\n[[layers]]\ninputs = 4\nunits = 1\n")
    assert main(["check", str(bad)]) == 2
    assert capsys.readouterr().err.splitlines() == _readme_block("$ .venv/bin/nnparity check bad.toml")
