"""The worked examples (examples/0*.py): both implementations agree, and the numbers are the true ones.

Each example's ``main(["--json"])`` is run once per module (its printed JSON is parsed, so the
machine-readable output is what is tested); one test also runs a script as a subprocess. Parity
is recomputed here from the two sides' values, not taken from the example's own verdict. Hand
values are derived independently in this file with ``math`` on plain floats.
"""
from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

# The tolerance policy (norm-relative error, float64): DESIGN.md and issue 3.
SINGLE_PASS = 1e-12   # one forward, backward or optimizer step
TRAJECTORY = 1e-10    # optimizer trajectories
TRAINING = 1e-9       # whole training runs (per-step loss)
TIME_LIMIT = 30.0     # seconds per example

# example -> the tolerance its quantities are held to
EXAMPLE_TOLERANCE = {
    "01_single_neuron": SINGLE_PASS,
    "02_forward_231": SINGLE_PASS,
    "03_backprop_221": SINGLE_PASS,
    "08_vanishing_gradients": SINGLE_PASS,
}


def load_example(name: str):
    if str(EXAMPLES) not in sys.path:
        sys.path.insert(0, str(EXAMPLES))
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_RUNS: dict[tuple, dict] = {}


def run_example(name: str, *argv: str) -> dict:
    """The example's --json output, parsed (each configuration run once per session)."""
    key = (name, *argv)
    if key not in _RUNS:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            returned = load_example(name).main(["--json", *argv])
        data = json.loads(out.getvalue())
        assert data["quantities"] == returned["quantities"]
        _RUNS[key] = data
    return _RUNS[key]


def pair(data: dict, section: str, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(scratch, torch) values of one quantity."""
    for q in data["quantities"]:
        if q["section"] == section and q["name"] == name:
            return np.asarray(q["scratch"], dtype=float), np.asarray(q["torch"], dtype=float)
    raise KeyError(f"{data['example']}: no quantity {section!r} / {name!r}")


def rel(a, b) -> float:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    norm = np.linalg.norm(b)
    return float(np.max(np.abs(a - b))) if norm == 0 else float(np.linalg.norm(a - b) / norm)


def sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


def assert_close(got, expected, tol=SINGLE_PASS):
    assert rel(got, expected) <= tol, (got, expected)


# ------------------------------------------------------------------------------------ parity


@pytest.mark.parametrize("name", sorted(EXAMPLE_TOLERANCE))
def test_example_sides_agree_within_policy(name):
    data = run_example(name)
    tol = EXAMPLE_TOLERANCE[name]
    assert data["quantities"], "an example with nothing to compare"
    worst = max((rel(q["scratch"], q["torch"]), q["section"], q["name"]) for q in data["quantities"])
    assert worst[0] <= tol, f"{name}: {worst[1]} {worst[2]} differs by {worst[0]:.3e} > {tol:.0e}"
    assert data["agree"] is True
    assert data["max_abs_diff"] == max(q["max_abs_diff"] for q in data["quantities"])


@pytest.mark.parametrize("name", sorted(EXAMPLE_TOLERANCE))
def test_example_runs_in_time(name):
    assert run_example(name)["seconds"] < TIME_LIMIT


def test_script_prints_table_and_json_as_a_subprocess():
    script = str(EXAMPLES / "01_single_neuron.py")
    table = subprocess.run([sys.executable, script], capture_output=True, text=True, timeout=120)
    assert table.returncode == 0, table.stderr
    assert "scratch" in table.stdout and "torch" in table.stdout and "max |scratch - torch|" in table.stdout
    machine = subprocess.run([sys.executable, script, "--json"], capture_output=True, text=True, timeout=120)
    assert machine.returncode == 0, machine.stderr
    data = json.loads(machine.stdout)
    assert data["example"] == "01_single_neuron" and data["agree"] is True
    bad = subprocess.run([sys.executable, script, "--no-such-flag"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "--no-such-flag" in bad.stderr


# ------------------------------------------------------------------------- hand-derived values


def test_single_neuron_hand_values():
    data = run_example("01_single_neuron")
    z = 1 * 0.2 + 2 * 0.8 + 3 * -0.5 + 2.0
    expected = {"sigmoid": sigmoid(z), "relu": max(z, 0.0), "tanh": math.tanh(z)}
    for activation, a in expected.items():
        for side in pair(data, activation, "z"):
            assert_close(side, z)
        for side in pair(data, activation, "a"):
            assert_close(side, a)


def test_forward_231_hand_values():
    data = run_example("02_forward_231")
    x = [0.5, 0.8]
    w1 = [[0.1, 0.3, -0.2], [0.4, -0.5, 0.6]]
    b1 = [0.1, -0.1, 0.2]
    z1 = [x[0] * w1[0][j] + x[1] * w1[1][j] + b1[j] for j in range(3)]
    a1 = [max(v, 0.0) for v in z1]
    z2 = a1[0] * 0.7 + a1[1] * -0.3 + a1[2] * 0.5 + 0.1
    for name, expected in {"z1": z1, "a1": a1}.items():
        for side in pair(data, "layer 1 (relu)", name):
            assert_close(side, expected)
    for side in pair(data, "layer 2 (sigmoid)", "z2"):
        assert_close(side, [z2])
    for side in pair(data, "layer 2 (sigmoid)", "a2"):
        assert_close(side, [sigmoid(z2)])
    assert a1[1] == 0.0  # the second hidden unit is off: ReLU clips it


def test_backprop_221_hand_values():
    """The chain rule by hand: for sigmoid + BCE, dL/dz2 = a2 − y; ReLU passes where z1 > 0."""
    data = run_example("03_backprop_221")
    x, y, lr = [1.0, 0.5], 1.0, 0.1
    w1, b1 = [[0.3, 0.7], [0.5, -0.2]], [0.1, -0.1]
    w2, b2 = [0.6, -0.4], 0.2
    z1 = [x[0] * w1[0][j] + x[1] * w1[1][j] + b1[j] for j in range(2)]
    h = [max(v, 0.0) for v in z1]
    a2 = sigmoid(h[0] * w2[0] + h[1] * w2[1] + b2)
    loss = -math.log(a2)
    d2 = a2 - y
    d1 = [d2 * w2[j] * (1.0 if z1[j] > 0 else 0.0) for j in range(2)]
    grads = {
        "layers.1.weight": [[h[0] * d2], [h[1] * d2]],
        "layers.1.bias": [d2],
        "layers.0.weight": [[x[i] * d1[j] for j in range(2)] for i in range(2)],
        "layers.0.bias": d1,
    }
    for side in pair(data, "forward", "loss"):
        assert_close(side, loss)
    for side in pair(data, "gradients", "dL/dx"):
        assert_close(side, [sum(d1[j] * w1[i][j] for j in range(2)) for i in range(2)])
    params = {"layers.0.weight": w1, "layers.0.bias": b1, "layers.1.weight": [[w2[0]], [w2[1]]],
              "layers.1.bias": [b2]}
    for name, grad in grads.items():
        for side in pair(data, "gradients", f"dL/d{name}"):
            assert_close(side, grad)
        stepped = np.asarray(params[name]) - lr * np.asarray(grad)
        for side in pair(data, "after one SGD step (lr 0.1)", name):
            assert_close(side, stepped)


# ------------------------------------------------------------------------- vanishing gradients


def test_vanishing_gradients_sigmoid_vanishes_relu_he_does_not(tmp_path):
    png = tmp_path / "norms.png"
    data = run_example("08_vanishing_gradients", "--plot", str(png))
    for side in (0, 1):  # scratch, torch
        sig = [pair(data, "sigmoid", f"layer {i:2d}")[side] for i in range(1, 11)]
        relu = [pair(data, "relu", f"layer {i:2d}")[side] for i in range(1, 11)]
        assert sig[0] / sig[-1] < 1e-3, "sigmoid: the first layer's gradient should be orders of magnitude smaller"
        assert 1e-1 < relu[0] / relu[-1] < 10, "ReLU/He: gradient norms should keep their scale"
        assert all(a < b for a, b in zip(sig, sig[1:])), "sigmoid norms should shrink layer by layer going back"
    assert png.is_file() and png.stat().st_size > 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert data["results"]["plot"] == str(png)
