"""Whole training runs: scratch.training.train against torch_ref.training.train, step by step;
stopping rules; divergence detection; the progress bar; `nnparity train`.

Whole-run parity is measured per step, as the relative error of each step's loss (and global
gradient norm) to torch's, and on the final parameters; the bound is conftest's TRAJECTORY_TOL
(1e-10).
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import CHECK_TOL, TRAJECTORY_TOL, assert_same_run, per_step_error
from scratch.policy import rel_error
from scratch.network import Network
from scratch.spec import load_spec, parse_spec
from scratch.training import RunLog, TrainingDiverged
from scratch.training import train as scratch_train
from nnparity.cli import main
from torch_ref.model import build
from torch_ref.training import train as torch_train

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"
BACKENDS = {"scratch": scratch_train, "torch": torch_train}
XOR_X = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])


def moons_spec(**changes) -> dict:
    raw = {"seed": 0, "dtype": "float64",
           "layers": [{"inputs": 2, "units": 8, "activation": "tanh"}, {"units": 1}],
           "loss": {"name": "bce_logits"}, "optimizer": {"name": "adam", "lr": 0.01},
           "data": {"name": "moons", "samples": 400, "test_fraction": 0.25},
           "train": {"epochs": 4, "batch_size": 32, "shuffle": True}}
    for key, value in changes.items():
        raw[key] = {**raw[key], **value} if isinstance(value, dict) else value
    return raw


def square_spec(**train) -> dict:
    return {"seed": 0, "layers": [{"inputs": 1, "units": 8, "activation": "tanh"}, {"units": 1}],
            "loss": {"name": "mse"}, "optimizer": {"name": "sgd", "lr": 0.2},
            "data": {"name": "square", "samples": 16}, "train": {"epochs": 300, **train}}


# ----------------------------------------------------------------------- whole-run parity


def test_xor_example4_whole_run_parity_and_all_four_right():
    spec = load_spec(SPECS / "xor.toml")
    ours, theirs = scratch_train(spec, epochs=3000), torch_train(spec, epochs=3000)
    assert len(ours.history.step_loss) == 3000      # full batch: one step per epoch
    assert_same_run(ours, theirs, TRAJECTORY_TOL, "xor, 3000 steps of full-batch GD")
    assert ours.history.epoch_accuracy == theirs.history.epoch_accuracy
    assert ours.history.step_loss[-1] < 0.1 * ours.history.step_loss[0]
    # the final predictions, by each side's own forward at its own final weights
    truth = np.array([0, 1, 1, 0])
    pred_scratch = Network.from_spec(spec, params=ours.params).forward(XOR_X)[:, 0]
    with torch.no_grad():
        pred_torch = build(spec, params=theirs.params)(torch.tensor(XOR_X)).numpy()[:, 0]
    for pred in (pred_scratch, pred_torch):
        np.testing.assert_array_equal(pred > 0.5, truth.astype(bool))


def test_digits_three_shuffled_epochs_whole_run_parity():
    spec = load_spec(SPECS / "digits.toml")
    ours, theirs = scratch_train(spec, epochs=3), torch_train(spec, epochs=3)
    assert len(ours.history.step_loss) == 3 * 45            # 1,438 training images in batches of 32
    assert_same_run(ours, theirs, TRAJECTORY_TOL, "digits, 3 epochs of mini-batch Adam")
    assert ours.history.epoch_accuracy == theirs.history.epoch_accuracy
    assert ours.test_accuracy == theirs.test_accuracy
    assert abs(ours.test_loss - theirs.test_loss) <= TRAJECTORY_TOL * abs(theirs.test_loss)


def test_digits_reaches_95_percent_test_accuracy_in_under_a_minute():
    spec = load_spec(SPECS / "digits.toml")
    result = scratch_train(spec)
    assert result.test_accuracy >= 0.95
    assert result.seconds < 60
    assert len(result.step_seconds) == len(result.history.step_loss)
    assert sum(result.step_seconds) <= result.seconds


def test_moons_float32_run_within_the_float32_policy():
    spec = parse_spec(moons_spec(dtype="float32"))
    ours, theirs = scratch_train(spec, epochs=2), torch_train(spec, epochs=2)
    assert ours.params["layers.0.weight"].dtype == np.float32
    assert_same_run(ours, theirs, CHECK_TOL["float32"], "moons float32, 20 steps")


@pytest.mark.parametrize("optimizer", [
    {"name": "sgd", "lr": 0.5, "clip_norm": 0.05},
    {"name": "adam", "lr": 0.01, "clip_value": 0.005},
    {"name": "sgd", "lr": 0.3, "momentum": 0.9, "clip_norm": 0.1, "clip_value": 0.02},
], ids=["sgd_clip_norm", "adam_clip_value", "momentum_clip_both"])
def test_clipped_runs_agree_and_clipping_acts(optimizer):
    spec = parse_spec(moons_spec(optimizer=optimizer))
    ours, theirs = scratch_train(spec), torch_train(spec)
    assert_same_run(ours, theirs, TRAJECTORY_TOL, f"moons with {optimizer}")
    unclipped = {k: v for k, v in optimizer.items() if not k.startswith("clip")}
    free = scratch_train(parse_spec(moons_spec(optimizer=unclipped)))
    # the recorded norms are before clipping, and clipping had work to do
    if "clip_norm" in optimizer:
        assert max(ours.history.grad_norm) > optimizer["clip_norm"]
    assert per_step_error(ours.history.step_loss, free.history.step_loss) > 1e-6


def test_armijo_full_batch_descends_every_step_and_agrees():
    spec = parse_spec(square_spec(epochs=60) | {"optimizer": {"name": "armijo", "lr": 4.0}})
    ours, theirs = scratch_train(spec), torch_train(spec)
    assert_same_run(ours, theirs, TRAJECTORY_TOL, "armijo, 60 full-batch steps")
    # the closure is the loss of the batch at the current parameters: on the full batch the
    # accepted Armijo steps make the recorded loss fall at every step
    assert np.all(np.diff(ours.history.step_loss) < 0)


def test_random_search_run_agrees():
    spec = parse_spec(square_spec(epochs=40) | {"optimizer": {"name": "random_search", "lr": 0.05}})
    ours, theirs = scratch_train(spec), torch_train(spec)
    assert_same_run(ours, theirs, TRAJECTORY_TOL, "random search, 40 steps")
    assert np.all(np.diff(ours.history.step_loss) <= 0)     # a perturbation is kept only if it helps
    assert ours.history.step_loss[-1] < ours.history.step_loss[0]


# ---------------------------------------------------------------------------- bookkeeping


@pytest.mark.parametrize("backend", BACKENDS)
def test_epochs_batches_and_epoch_means(backend):
    spec = parse_spec(moons_spec())
    result = BACKENDS[backend](spec)
    h = result.history
    # 300 training rows in batches of 32: 9 full batches and one of 12, per epoch
    assert result.stopped == "epochs"
    assert len(h.epoch_loss) == 4 and len(h.step_loss) == 40 and len(h.grad_norm) == 40
    for e in range(4):
        assert h.epoch_loss[e] == pytest.approx(sum(h.step_loss[10 * e:10 * e + 10]) / 10, rel=1e-15)
    assert all(0.0 <= a <= 1.0 for a in h.epoch_accuracy) and len(h.epoch_accuracy) == 4
    assert h.epoch_accuracy[-1] > 0.75
    assert 0.75 < result.test_accuracy <= 1.0 and result.test_loss > 0


def test_regression_has_no_accuracy():
    result = scratch_train(parse_spec(square_spec(epochs=3)))
    assert result.history.epoch_accuracy == [] and result.test_accuracy is None


def test_accuracy_counts_predictions_made_before_each_step():
    # full-batch XOR for one epoch: the accuracy is that of the initial weights, checked by hand
    spec = load_spec(SPECS / "xor.toml")
    result = scratch_train(spec, epochs=1)
    initial = Network.from_spec(spec).forward(XOR_X)[:, 0]
    expected = np.mean((initial > 0.5) == np.array([False, True, True, False]))
    assert result.history.epoch_accuracy == [expected]


# ------------------------------------------------------------------------- stopping rules


@pytest.mark.parametrize("backend", BACKENDS)
def test_stops_on_loss_tol(backend):
    train = BACKENDS[backend]
    free = train(parse_spec(square_spec()))
    losses = free.history.epoch_loss
    tol = losses[40]                          # a loss the free run reaches at epoch 41
    first = next(i for i, loss in enumerate(losses) if loss <= tol)
    stopped = train(parse_spec(square_spec(loss_tol=tol)))
    assert stopped.stopped == "loss_tol"
    assert len(stopped.history.epoch_loss) == first + 1 < 300
    assert stopped.history.step_loss == free.history.step_loss[:first + 1]


@pytest.mark.parametrize("backend", BACKENDS)
def test_stops_on_grad_tol_without_taking_the_step(backend):
    train = BACKENDS[backend]
    free = train(parse_spec(square_spec()))
    norms = free.history.grad_norm
    tol = sorted(norms)[len(norms) // 2]       # the median norm: crossed part-way through
    first = next(i for i, g in enumerate(norms) if g <= tol)
    stopped = train(parse_spec(square_spec(grad_tol=tol)))
    assert stopped.stopped == "grad_tol"
    assert len(stopped.history.step_loss) == first + 1 < 300
    assert stopped.history.grad_norm[-1] <= tol < min(stopped.history.grad_norm[:-1])
    # the run stopped before stepping: its weights are those after `first` steps
    before = train(parse_spec(square_spec()), epochs=first)
    for name, value in before.params.items():
        np.testing.assert_array_equal(stopped.params[name], value)


@pytest.mark.parametrize("backend", BACKENDS)
def test_callback_sees_each_epoch_and_can_stop(backend):
    seen = []

    def callback(epoch, history):
        seen.append((epoch, len(history.epoch_loss)))
        return epoch == 3

    result = BACKENDS[backend](parse_spec(square_spec()), callback=callback)
    assert result.stopped == "callback"
    assert seen == [(1, 1), (2, 2), (3, 3)]


def test_epochs_argument_overrides_the_spec():
    result = scratch_train(parse_spec(square_spec()), epochs=7)
    assert len(result.history.epoch_loss) == 7 and result.stopped == "epochs"


# ----------------------------------------------------------------------------- divergence


def diverging_spec(dtype: str) -> dict:
    """ReLU layers, the squared error and lr 30: each step multiplies the weights until the
    loss (float64) or the gradient norm (float32) overflows."""
    return {"seed": 0, "dtype": dtype,
            "layers": [{"inputs": 1, "units": 16, "activation": "relu", "init": "he_uniform"},
                       {"units": 16, "activation": "relu", "init": "he_uniform"}, {"units": 1}],
            "loss": {"name": "mse"}, "optimizer": {"name": "sgd", "lr": 30.0},
            "data": {"name": "square"}, "train": {"epochs": 200}}


@pytest.mark.parametrize("dtype, what", [("float64", "loss"), ("float32", "gradient norm")])
def test_divergence_names_step_and_parameter_on_both_sides(dtype, what):
    spec = parse_spec(diverging_spec(dtype))
    errors = {}
    for backend, train in BACKENDS.items():
        with pytest.raises(TrainingDiverged) as info:
            train(spec)
        err = errors[backend] = info.value
        assert isinstance(err, ValueError)
        assert err.what == what and not np.isfinite(err.value)
        assert err.parameter is not None and err.parameter.startswith("layers.")
        message = str(err)
        assert f"step {err.step} (epoch {err.epoch}, batch {err.batch})" in message
        assert err.parameter in message and "\n" not in message
        # the steps before the failing one were recorded, finite, and the loss had blown up
        losses = err.history.step_loss
        assert len(losses) == err.step - 1 and np.all(np.isfinite(losses))
        assert losses[-1] > 1e6 * losses[0]
    assert (errors["scratch"].step, errors["scratch"].parameter) == (errors["torch"].step, errors["torch"].parameter)


def test_diagnosis_names_the_parameter_holding_a_nan():
    arrays = {"layers.0.weight": np.ones((2, 3)), "layers.0.bias": np.array([0.0, np.nan, 1.0])}
    err = TrainingDiverged.diagnose("gradient norm", float("nan"), 2, 7, 3, arrays)
    assert err.parameter == "layers.0.bias"
    assert str(err) == ("training diverged at step 7 (epoch 2, batch 3): gradient norm is nan; "
                        "gradient of layers.0.bias holds nan")


# ------------------------------------------------------------------------------- progress


def test_progress_bar_is_off_when_stderr_is_not_a_terminal(capsys):
    spec = parse_spec(square_spec(epochs=3))
    assert not sys.stderr.isatty()
    assert RunLog(spec, 16, 1, 3, None, progress=None).bar is None
    assert RunLog(spec, 16, 1, 3, None, progress=False).bar is None
    log = RunLog(spec, 16, 1, 3, None, progress=True)
    assert log.bar is not None and log.bar.total == 3
    log.finish({})
    scratch_train(spec)
    assert capsys.readouterr().err == ""


# ------------------------------------------------------------------------------------ CLI


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = main(["train", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_json_schema_and_backends_agree(capsys):
    runs = {}
    for backend in BACKENDS:
        code, out, err = run_cli(capsys, SPECS / "xor.toml", "--backend", backend, "--epochs", 50, "--json")
        assert code == 0, err
        runs[backend] = data = json.loads(out)
        assert {"backend", "dtype", "stopped", "epochs", "steps", "seconds", "step_seconds_mean", "final_loss",
                "accuracy", "test_loss", "test_accuracy", "history", "params"} <= data.keys()
        assert data["backend"] == backend and data["stopped"] == "epochs"
        assert data["epochs"] == 50 and data["steps"] == 50
        h = data["history"]
        assert len(h["step_loss"]) == len(h["grad_norm"]) == len(h["epoch_loss"]) == len(h["epoch_accuracy"]) == 50
        assert data["final_loss"] == h["epoch_loss"][-1] and data["accuracy"] == h["epoch_accuracy"][-1]
        assert data["test_loss"] is None and data["test_accuracy"] is None
        shapes = {k: np.asarray(v).shape for k, v in data["params"].items()}
        assert shapes == {"layers.0.weight": (2, 4), "layers.0.bias": (4,),
                          "layers.1.weight": (4, 1), "layers.1.bias": (1,)}
    for name in runs["torch"]["params"]:
        assert rel_error(runs["scratch"]["params"][name], runs["torch"]["params"][name]) <= TRAJECTORY_TOL
    assert per_step_error(runs["scratch"]["history"]["step_loss"], runs["torch"]["history"]["step_loss"]) \
        <= TRAJECTORY_TOL


def test_cli_summary_and_plot(capsys, tmp_path):
    png = tmp_path / "loss.png"
    spec = tmp_path / "moons.json"
    spec.write_text(json.dumps(moons_spec()))
    code, out, err = run_cli(capsys, spec, "--plot", png, "--quiet")
    assert code == 0, err
    assert "stopped: reached 4 epochs (4 epochs, 40 steps)" in out
    assert "final loss" in out and "train accuracy" in out and "test accuracy" in out
    assert png.stat().st_size > 1000 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_summary_says_why_it_stopped(capsys):
    code, out, _ = run_cli(capsys, SPECS / "square.toml", "--quiet")
    assert code == 0 and "stopped: epoch loss <= train.loss_tol = 0.0001" in out


@pytest.mark.parametrize("case, field", [
    ("missing", "spec: no such file"),
    ("no_data", "data: the spec has no data"),
    ("bad_field", "train.epochs"),
    ("epochs", "--epochs"),
    ("plot_dir", "--plot"),
    ("plot_suffix", "--plot"),
])
def test_cli_bad_input_exits_2_with_one_line(capsys, tmp_path, case, field):
    good = SPECS / "xor.toml"
    no_data = tmp_path / "no_data.json"
    no_data.write_text(json.dumps({"layers": [{"inputs": 2, "units": 1}]}))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(square_spec() | {"train": {"epochs": 0}}))
    argv = {"missing": [tmp_path / "nope.toml"], "no_data": [no_data], "bad_field": [bad],
            "epochs": [good, "--epochs", 0], "plot_dir": [good, "--epochs", 2, "--plot", tmp_path / "no" / "x.png"],
            "plot_suffix": [good, "--plot", tmp_path / "x.jpg"]}[case]
    code, out, err = run_cli(capsys, *argv)
    assert code == 2
    assert err.startswith("nnparity train: ") and field in err and err.count("\n") == 1
    assert out == ""


def test_cli_divergence_exits_1_naming_step_and_parameter(capsys, tmp_path):
    spec = tmp_path / "diverge.json"
    spec.write_text(json.dumps(diverging_spec("float64")))
    code, out, err = run_cli(capsys, spec, "--quiet")
    assert code == 1 and out == ""
    assert "training diverged at step" in err and "layers." in err and err.count("\n") == 1


def test_console_script_trains():
    proc = subprocess.run([sys.executable, "-m", "nnparity", "train", str(SPECS / "digits.toml"), "--quiet"],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    accuracy = float(proc.stdout.split("test accuracy ")[1].split("%")[0])
    assert accuracy >= 95.0
