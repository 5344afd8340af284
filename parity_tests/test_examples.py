"""The worked examples (examples/0*.py): both implementations agree, and the numbers are the true ones.

Each example's ``main(["--json"])`` is run once per test session (its printed JSON is parsed, so the
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

from conftest import CHECK_TOL, TRAJECTORY_TOL

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

# The tolerance policy of conftest (norm-relative error, float64).
SINGLE_PASS = CHECK_TOL["float64"]  # one forward, backward or optimizer step: 1e-12
TRAJECTORY = TRAJECTORY_TOL         # optimizer trajectories: 1e-10
TRAINING = TRAJECTORY_TOL           # whole training runs, per step: 1e-10

# example -> the tolerance its quantities are held to
EXAMPLE_TOLERANCE = {
    "01_single_neuron": SINGLE_PASS,
    "02_forward_231": SINGLE_PASS,
    "03_backprop_221": SINGLE_PASS,
    "04_xor": TRAINING,
    "05_optimizer_race": TRAJECTORY,
    "06_square_regression": TRAINING,
    "07_digits": TRAINING,
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


def test_script_runs_as_a_script_with_json():
    script = str(EXAMPLES / "01_single_neuron.py")
    machine = subprocess.run([sys.executable, script, "--json"], capture_output=True, text=True, timeout=120)
    assert machine.returncode == 0, machine.stderr
    data = json.loads(machine.stdout)
    assert data["example"] == "01_single_neuron" and data["agree"] is True
    # another process may run torch with another thread count: the same values within the policy
    in_process = {(q["section"], q["name"]): q for q in run_example("01_single_neuron")["quantities"]}
    assert {(q["section"], q["name"]) for q in data["quantities"]} == set(in_process)
    for q in data["quantities"]:
        twin = in_process[(q["section"], q["name"])]
        assert_close(q["scratch"], twin["scratch"])
        assert_close(q["torch"], twin["torch"])


def test_table_shows_both_sides_and_the_largest_difference(capsys):
    load_example("02_forward_231").main([])
    out = capsys.readouterr().out
    data = run_example("02_forward_231")
    assert "scratch" in out and "torch" in out and "|diff|" in out
    assert f"max |scratch - torch| = {data['max_abs_diff']:.3e}" in out
    scratch_a2, torch_a2 = pair(data, "layer 2 (sigmoid)", "a2")
    assert f"{scratch_a2[0]:.15g}" in out and f"{torch_a2[0]:.15g}" in out


def test_bad_flag_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as err:
        load_example("01_single_neuron").main(["--no-such-flag"])
    assert err.value.code == 2
    assert "--no-such-flag" in capsys.readouterr().err


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


# ------------------------------------------------------------------------------ training runs


def step_by_step_rel(data: dict, section: str, name: str) -> float:
    """The largest per-step relative difference of a history (each step on its own, not the norm)."""
    ours, theirs = pair(data, section, name)
    assert ours.size == theirs.size > 1
    return float(np.max(np.abs(ours - theirs) / np.abs(theirs)))


def test_xor_starts_from_the_seed_42_draws_and_learns_xor():
    data = run_example("04_xor")
    state = np.random.get_state()
    try:  # the tutorial's recipe, verbatim
        np.random.seed(42)
        w1 = np.random.randn(2, 4) * 0.5
        w2 = np.random.randn(4, 1) * 0.5
    finally:
        np.random.set_state(state)
    assert np.array_equal(data["results"]["initial W1 (seed 42)"], w1)
    assert np.array_equal(data["results"]["initial W2 (seed 42)"], w2)
    assert step_by_step_rel(data, "MSE loss", "every step's loss") <= TRAINING
    ours, theirs = pair(data, "MSE loss", "every step's loss")
    assert ours.size == 10_000
    for side in (ours, theirs):
        assert side[-1] < side[0] / 100, "XOR training should cut the MSE by orders of magnitude"
    targets = {"xor(0, 0) -> 0": 0, "xor(0, 1) -> 1": 1, "xor(1, 0) -> 1": 1, "xor(1, 1) -> 0": 0}
    for name, target in targets.items():
        for side in pair(data, "final predictions", name):
            assert (side.item() > 0.5) == bool(target), f"{name}: predicted {side.item()}"


def _race_sgd(k: int) -> float:
    """Plain gradient descent on x² + 3y²: x ← (1 − 2·0.1)x, y ← (1 − 6·0.1)y."""
    return (4 * 0.8 ** k) ** 2 + 3 * (3 * 0.4 ** k) ** 2


def _race_loop(update, steps=20) -> list[float]:
    """f after each step of ``update(point, gradient, state)`` on x² + 3y² from (4, 3), in plain floats."""
    p, state, out = [4.0, 3.0], {}, []
    for _ in range(steps):
        p = update(p, [2 * p[0], 6 * p[1]], state)
        out.append(p[0] ** 2 + 3 * p[1] ** 2)
    return out


def _heavy_ball(p, g, state, lr=0.1, mu=0.9):
    v = state.setdefault("v", [0.0, 0.0])
    first = "started" not in state
    state["started"] = True
    for i in range(2):  # torch's form: the buffer starts at the first gradient
        v[i] = g[i] if first else mu * v[i] + g[i]
    return [p[i] - lr * v[i] for i in range(2)]


def _adam(p, g, state, lr=0.1, b1=0.9, b2=0.999, eps=1e-8):
    t = state["t"] = state.get("t", 0) + 1
    m = state.setdefault("m", [0.0, 0.0])
    v = state.setdefault("v", [0.0, 0.0])
    out = []
    for i in range(2):
        m[i] = b1 * m[i] + (1 - b1) * g[i]
        v[i] = b2 * v[i] + (1 - b2) * g[i] ** 2
        m_hat, v_hat = m[i] / (1 - b1 ** t), v[i] / (1 - b2 ** t)
        out.append(p[i] - lr * m_hat / (math.sqrt(v_hat) + eps))
    return out


def test_optimizer_race_hand_values():
    """Closed forms for SGD and for Armijo from t = 1 (t = 1 and ½ fail while 3|y| > |x|, t = ¼
    passes and quarters f: f_k = 43/4^k); the textbook momentum and Adam recursions in plain floats."""
    data = run_example("05_optimizer_race")
    expected = {
        "SGD": [_race_sgd(k) for k in range(1, 21)],
        "Armijo (t from lr 0.1)": [_race_sgd(k) for k in range(1, 21)],  # t = 0.1 < 1/6 always passes
        "Armijo (t from 1)": [43.0 / 4 ** k for k in range(1, 21)],
        "SGD momentum 0.9": _race_loop(_heavy_ball),
        "Adam": _race_loop(_adam),
    }
    for racer, values in expected.items():
        for side in pair(data, racer, "f, every step"):
            assert_close(side, values, TRAJECTORY)
        for step in (1, 5, 10, 20):
            for side in pair(data, racer, f"f after step {step:2d}"):
                assert_close(side, values[step - 1], TRAJECTORY)
    x_s, x_t = pair(data, "SGD", "final (x, y)")
    for side in (x_s, x_t):
        assert_close(side, [4 * 0.8 ** 20, 3 * 0.4 ** 20], TRAJECTORY)


def test_square_regression_gradient_descent_beats_random_search():
    data = run_example("06_square_regression")
    gd, rs = "gradient descent (SGD lr 0.15)", "random search (scale 0.02)"
    for section in (gd, rs):
        assert step_by_step_rel(data, section, "every step's MSE") <= TRAINING
        for side in (0, 1):
            start = pair(data, section, "MSE after     0 epochs")[side]
            end = pair(data, section, "MSE after 3,000 epochs")[side]
            assert end < start / 100
        steps = pair(data, section, "every step's MSE")[0]
        if section == rs:  # random search keeps a move only when the loss falls
            assert np.all(np.diff(steps) <= 0)
    for side in (0, 1):
        assert pair(data, gd, "MSE after 3,000 epochs")[side] < pair(data, rs, "MSE after 3,000 epochs")[side]


def test_digits_accuracy_and_whole_run_parity():
    data = run_example("07_digits")
    for side in pair(data, "held-out test set", "accuracy"):
        assert side >= 0.95
    assert step_by_step_rel(data, "training", "every step's loss") <= TRAINING
    assert pair(data, "training", "every step's loss")[0].size == 450  # 10 epochs × ⌈1438 / 32⌉ batches


def test_digits_rejects_a_spec_that_is_not_digits(capsys):
    module = load_example("07_digits")
    with pytest.raises(SystemExit) as err:
        module.main(["--spec", str(EXAMPLES.parent / "specs" / "textbook_221.toml")])
    assert err.value.code == 2
    assert "not digits" in capsys.readouterr().err
