"""The spec: TOML and JSON round trips, and every bad input -> one-line SpecError naming the field
(exit 2 from the CLI, no traceback)."""
from __future__ import annotations

import copy
import json
import math
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest

from scratch.spec import Spec, SpecError, dump_spec, load_spec, parse_spec
from nnparity.cli import main
from torch_ref.check import check

ROOT = Path(__file__).resolve().parents[1]
SPEC_FILES = sorted((ROOT / "specs").glob("*.toml")) + sorted((ROOT / "specs").glob("*.json"))

BASE = {
    "seed": 0,
    "layers": [{"inputs": 2, "units": 3, "activation": "tanh"}, {"units": 1, "activation": "sigmoid"}],
    "loss": {"name": "bce"},
    "data": {"x": [[0.0, 1.0], [1.0, 0.0]], "y": [[1.0], [0.0]]},
}
CLASSES = {
    "layers": [{"inputs": 2, "units": 3, "activation": "identity"}],
    "loss": {"name": "softmax_cce"},
    "data": {"x": [[0.0, 1.0], [1.0, 0.0]], "y": [0, 2]},
}


def edit(base, path, value):
    """A deep copy of ``base`` with the value at ``path`` (keys and indices) set; value DELETE removes it."""
    raw = copy.deepcopy(base)
    node = raw
    for key in path[:-1]:
        node = node[key]
    if value is DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return raw


DELETE = object()

# (id, raw spec, the field the error must name, a fragment of what would be valid)
BAD = [
    ("unknown-activation", edit(BASE, ["layers", 1, "activation"], "sigmoidd"), "layers[1].activation", "expected one of"),
    ("unknown-loss", edit(BASE, ["loss", "name"], "hinge"), "loss.name", "expected one of"),
    ("unknown-init", edit(BASE, ["layers", 0, "init"], "glorot"), "layers[0].init", "expected one of"),
    ("unknown-dtype", edit(BASE, ["dtype"], "float16"), "dtype", "float64, float32"),
    ("unknown-device", edit(BASE, ["device"], "tpu"), "device", "expected one of cpu, cuda"),
    ("device-not-a-name", edit(BASE, ["device"], 0), "device", "expected one of cpu, cuda"),
    ("device-case", edit(BASE, ["device"], "CUDA"), "device", "expected one of cpu, cuda"),
    ("unknown-reduction", edit(BASE, ["loss", "reduction"], "avg"), "loss.reduction", "mean, sum"),
    ("reduction-not-allowed", edit(edit(BASE, ["loss", "name"], "sse"), ["loss", "reduction"], "mean"),
     "loss.reduction", "expected one of sum"),
    ("unknown-top-field", edit(BASE, ["layer"], []), "layer", "unknown field"),
    ("unknown-layer-field", edit(BASE, ["layers", 0, "unit"], 3), "layers[0].unit", "unknown field"),
    ("unknown-activation-param", edit(BASE, ["layers", 0, "activation_params"], {"alpha": 1.0}),
     "layers[0].activation_params.alpha", "not a parameter of tanh"),
    ("elu-alpha-nonpositive", edit(edit(BASE, ["layers", 0, "activation"], "elu"),
                                   ["layers", 0, "activation_params"], {"alpha": 0.0}),
     "layers[0].activation_params.alpha", "> 0"),
    ("mismatched-widths", edit(BASE, ["layers", 1, "inputs"], 5), "layers[1].inputs", "layers[0].units = 3"),
    ("zero-units", edit(BASE, ["layers", 0, "units"], 0), "layers[0].units", ">= 1"),
    ("negative-units", edit(BASE, ["layers", 1, "units"], -2), "layers[1].units", ">= 1"),
    ("zero-inputs", edit(BASE, ["layers", 0, "inputs"], 0), "layers[0].inputs", ">= 1"),
    ("fractional-units", edit(BASE, ["layers", 0, "units"], 2.5), "layers[0].units", "integer"),
    ("missing-first-inputs", edit(BASE, ["layers", 0, "inputs"], DELETE), "layers[0].inputs", "input width"),
    ("missing-units", edit(BASE, ["layers", 1, "units"], DELETE), "layers[1].units", "output width"),
    ("no-layers", edit(BASE, ["layers"], []), "layers", "non-empty list"),
    ("weight-shape", edit(BASE, ["layers", 0, "weight"], [[1.0, 2.0, 3.0]]), "layers[0].weight", "(2, 3)"),
    ("weight-ragged", edit(BASE, ["layers", 0, "weight"], [[1.0, 2.0, 3.0], [1.0]]), "layers[0].weight",
     "rectangular"),
    ("weight-nan", edit(BASE, ["layers", 1, "weight"], [[1.0], [math.nan], [0.0]]), "layers[1].weight", "NaN"),
    ("bias-shape", edit(BASE, ["layers", 0, "bias"], [1.0, 2.0]), "layers[0].bias", "(3,)"),
    ("bias-inf", edit(BASE, ["layers", 1, "bias"], [math.inf]), "layers[1].bias", "inf"),
    ("bias-without-use-bias", edit(edit(BASE, ["layers", 0, "use_bias"], False), ["layers", 0, "bias"], [0, 0, 0]),
     "layers[0].bias", "use_bias"),
    ("x-shape", edit(BASE, ["data", "x"], [[0.0, 1.0, 2.0]]), "data.x", "(N, 2)"),
    ("y-shape", edit(BASE, ["data", "y"], [[1.0, 0.0], [0.0, 1.0]]), "data.y", "(2, 1)"),
    ("y-rows", edit(BASE, ["data", "y"], [[1.0]]), "data.y", "(2, 1)"),
    ("x-without-y", edit(BASE, ["data", "y"], DELETE), "data.y", "needs x and y"),
    ("x-nan", edit(BASE, ["data", "x"], [[0.0, math.nan], [1.0, 0.0]]), "data.x", "NaN"),
    ("x-inf", edit(BASE, ["data", "x"], [[0.0, -math.inf], [1.0, 0.0]]), "data.x", "inf"),
    ("y-inf", edit(edit(BASE, ["loss", "name"], "mse"), ["data", "y"], [[math.inf], [0.0]]), "data.y", "inf"),
    ("bce-target-range", edit(BASE, ["data", "y"], [[1.5], [0.0]]), "data.y", "[0, 1]"),
    ("label-too-large", edit(CLASSES, ["data", "y"], [0, 3]), "data.y", "expected 0..2"),
    ("label-negative", edit(CLASSES, ["data", "y"], [-1, 0]), "data.y", "expected 0..2"),
    ("label-fractional", edit(CLASSES, ["data", "y"], [0.5, 1]), "data.y", "integers"),
    ("label-count", edit(CLASSES, ["data", "y"], [0, 1, 2]), "data.y", "expected 2 labels"),
    ("data-name-and-inline", edit(BASE, ["data", "name"], "xor"), "data", "either name or inline"),
    ("unknown-dataset", {**edit(BASE, ["data"], {"name": "mnist"})}, "data.name", "expected one of"),
    ("negative-seed", edit(BASE, ["seed"], -1), "seed", ">= 0"),
    ("seed-not-int", edit(BASE, ["seed"], "zero"), "seed", "integer"),
    ("lr-nonpositive", edit(BASE, ["optimizer"], {"lr": 0.0}), "optimizer.lr", "> 0"),
    ("epochs-zero", edit(BASE, ["train"], {"epochs": 0}), "train.epochs", ">= 1"),
    ("layers-not-tables", edit(BASE, ["layers"], [3]), "layers[0]", "expected a table"),
    ("layers-one-table", edit(BASE, ["layers"], {"inputs": 2, "units": 1}), "layers", "[[layers]] in TOML"),
    ("loss-not-table", edit(BASE, ["loss"], "bce"), "loss", "expected a table"),
    ("spec-not-table", [BASE], "spec", "expected a table of fields"),
]
BAD_IDS = [case[0] for case in BAD]


@pytest.mark.parametrize("raw,field,fragment", [case[1:] for case in BAD], ids=BAD_IDS)
def test_spec_bad_input_names_field(raw, field, fragment):
    with pytest.raises(SpecError) as info:
        parse_spec(raw)
    err = info.value
    assert err.field == field
    message = str(err)
    assert message.startswith(f"{field}: ") and "\n" not in message
    assert fragment in message


@pytest.mark.parametrize("raw,field,fragment", [case[1:] for case in BAD], ids=BAD_IDS)
def test_spec_bad_input_cli_exit_2(raw, field, fragment, tmp_path, capsys):
    """The same spec as a file: `nnparity check` exits 2 with one line naming the field."""
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(raw))  # NaN and Infinity are what Python's json reads back
    assert main(["check", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and err.startswith(f"nnparity check: {field}: ") and fragment in err


def test_spec_bad_input_cli_subprocess_no_traceback(tmp_path):
    """The installed console path, end to end: exit 2, one line on stderr, no traceback."""
    path = tmp_path / "bad.toml"
    path.write_text('[[layers]]\ninputs = 2\nunits = 3\nactivation = "relu6"\n')
    out = subprocess.run([sys.executable, "-m", "nnparity", "check", str(path)],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert "Traceback" not in out.stderr and out.stdout == ""
    assert out.stderr.strip().splitlines() == [
        "nnparity check: layers[0].activation: unknown 'relu6'; expected one of identity, step, sigmoid, tanh, "
        "relu, leaky_relu, elu, gelu, gelu_tanh, softmax or a user op as 'module:Class'"]


@pytest.mark.parametrize("text,suffix,fragment", [
    ("[[layers]\ninputs = 2", ".toml", "cannot parse"),
    ("{\"layers\": [", ".json", "cannot parse"),
    ("layers: []", ".yaml", "expected .toml or .json"),
])
def test_spec_bad_file_cli_exit_2(text, suffix, fragment, tmp_path, capsys):
    path = tmp_path / f"bad{suffix}"
    path.write_text(text)
    assert main(["check", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("nnparity check: spec: ") and fragment in err and err.count("\n") == 1


def test_spec_missing_file_cli_exit_2(tmp_path, capsys):
    assert main(["check", str(tmp_path / "nope.toml")]) == 2
    assert "spec: no such file" in capsys.readouterr().err


# ----------------------------------------------------------------------- check(): x and y via the API


SPEC = parse_spec(CLASSES)


@pytest.mark.parametrize("x,y,field,fragment", [
    ([[0.0, 1.0, 2.0]], [0], "x", "(N, 2)"),
    ([0.0, 1.0], [0], "x", "(N, 2)"),
    (np.zeros((0, 2)), np.zeros(0, dtype=int), "x", "N >= 1"),
    ([[0.0, math.nan]], [0], "x", "NaN"),
    ([[math.inf, 1.0]], [0], "x", "inf"),
    ([["a", "b"]], [0], "x", "numbers"),
    ([[0.0, 1.0]], [3], "y", "out of range"),
    ([[0.0, 1.0]], [0, 1], "y", "expected 1 labels"),
    ([[0.0, 1.0]], [[0.5, 0.5]], "y", "(1, 3)"),
    ([[0.0, 1.0]], [[0.5, 0.5, math.nan]], "y", "NaN"),
    ([[0.0, 1.0]], None, "y", "missing"),
    (None, [0], "x", "missing"),
])
def test_spec_check_validates_api_inputs(x, y, field, fragment):
    with pytest.raises(SpecError) as info:
        check(SPEC, x=x, y=y)
    assert info.value.field == field and fragment in str(info.value)


def test_spec_check_rejects_values_beyond_float32():
    with pytest.raises(SpecError) as info:
        check(SPEC, dtype="float32", x=[[1e300, 0.0]], y=[0])
    assert info.value.field == "x" and "float32" in str(info.value)
    check(SPEC, dtype="float64", x=[[1e300, 0.0]], y=[0])  # fine in float64 (saturated, finite)


# ------------------------------------------------------------------------------------ round trips


@pytest.mark.parametrize("path", SPEC_FILES, ids=[p.name for p in SPEC_FILES])
def test_spec_round_trip_toml_json(path, tmp_path):
    spec = load_spec(path)
    assert parse_spec(tomllib.loads(spec.to_toml())) == spec
    assert parse_spec(json.loads(spec.to_json())) == spec
    for suffix in (".toml", ".json"):
        dump_spec(spec, tmp_path / f"again{suffix}")
        assert load_spec(tmp_path / f"again{suffix}") == spec


def test_spec_round_trip_every_field(tmp_path):
    raw = {
        "seed": 5, "dtype": "float32",
        "layers": [
            {"inputs": 2, "units": 3, "activation": "leaky_relu", "activation_params": {"negative_slope": 0.2},
             "init": "he_normal", "weight": [[0.5, -0.5, 1.0], [0.25, 0.0, -1.0]], "bias": [0.1, 0.2, 0.3]},
            {"units": 3, "activation": "elu", "activation_params": {"alpha": 0.5}, "use_bias": False,
             "init": "normal", "init_scale": 0.2},
            {"units": 3, "activation": "identity", "init": "torch_default"},
        ],
        "loss": {"name": "softmax_cce", "reduction": "sum"},
        "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9, "nesterov": True, "clip_norm": 1.0},
        "data": {"x": [[0.0, 1.0], [1.0, 0.5]], "y": [2, 0]},
        "train": {"epochs": 3, "batch_size": 1, "shuffle": True},
    }
    spec = parse_spec(raw)
    assert isinstance(spec, Spec) and spec.layers[1].inputs == 3
    for suffix in (".toml", ".json"):
        dump_spec(spec, tmp_path / f"s{suffix}")
        back = load_spec(tmp_path / f"s{suffix}")
        assert back == spec
        assert back.data.y == [2, 0] and back.layers[0].weight == raw["layers"][0]["weight"]


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_spec_device_round_trip(device, tmp_path):
    """The device is a spec field like dtype: defaulted, dumped and loaded back; whether CUDA is
    there is a question for the command that runs, not for the parser."""
    assert parse_spec(BASE).device == "cpu"
    spec = parse_spec(edit(BASE, ["device"], device))
    assert spec.device == device and spec.to_dict()["device"] == device
    for suffix in (".toml", ".json"):
        dump_spec(spec, tmp_path / f"s{suffix}")
        assert load_spec(tmp_path / f"s{suffix}") == spec
    assert spec.replace(device="cpu").device == "cpu"


def test_spec_replace_validates():
    spec = parse_spec(BASE)
    assert spec.replace(dtype="float32").dtype == "float32" and spec.dtype == "float64"
    with pytest.raises(SpecError) as info:
        spec.replace(dtype="float8")
    assert info.value.field == "dtype"


def test_spec_inferred_inputs():
    spec = parse_spec(BASE)
    assert [layer.inputs for layer in spec.layers] == [2, 3]
    assert spec.inputs == 2 and spec.outputs == 1
