"""Helpers shared by the parity tests. The tolerances are the project's policy (scratch.policy),
imported from there: norm-relative errors ‖a − b‖ / ‖b‖ (max abs error where ‖b‖ = 0), never
loosened to make a test pass: a failing parity test means a derivative is wrong until shown otherwise.
"""
from __future__ import annotations

import os

# One BLAS thread per test process (and the subprocesses it starts), set before NumPy loads
# OpenBLAS: the matrices here are tiny, the suite runs in one worker per core, and on a busy
# machine OpenBLAS's spinning threads make a small product 10-30x slower. Results stay within
# every documented tolerance at any thread count.
for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from scratch.policy import FD_STEP, FD_TOL, TOLERANCE, TRAJECTORY_TOL, rel_error  # noqa: F401
from scratch.spec import Spec, parse_spec
from torch_ref.check import check

# One forward and backward (forward, every activation, loss, every gradient): the CLI's default.
CHECK_TOL: dict[str, float] = TOLERANCE                 # {"float64": 1e-12, "float32": 1e-5}

DTYPES = ("float64", "float32")

# One run of every optimizer for the CNN trajectories (test_image_layers, test_norm_layers): 9
# shuffled steps each, momentum, clipping and weight decay on.
CNN_OPTIMIZER_RUNS = {
    "sgd": {"name": "sgd", "lr": 0.3, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01},
    "adam": {"name": "adam", "lr": 0.02, "clip_norm": 1.0},
    "adamw": {"name": "adamw", "lr": 0.02, "weight_decay": 0.1},
    "armijo": {"name": "armijo", "lr": 4.0},
    "random_search": {"name": "random_search", "lr": 0.05, "seed": 3},
}


@pytest.hookimpl(optionalhook=True)    # pytest-xdist's hook: absent without it (-p no:xdist)
def pytest_xdist_auto_num_workers(config):
    """``-n auto`` (the suite's default): one worker per core, at most 8 (each holds torch)."""
    return max(1, min(os.cpu_count() or 1, 8))


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    """The tensors here are tiny: torch's intra-op thread pool only adds wake-ups, and on a busy
    2-core machine OpenMP's spin-waits make each op up to ~100x slower. Results do not depend on it."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def numpy_errors_raise():
    """Overflow, division by zero and invalid operations raise inside every test; underflow is fine
    (exp(-800) = 0 is the right answer)."""
    with np.errstate(over="raise", divide="raise", invalid="raise", under="ignore"):
        yield


# ----------------------------------------------------------------------------------- specs


def make_spec(activations, loss: str = "mse", reduction: str | None = None, dtype: str = "float64",
              widths=None, seed: int = 0, init: str = "xavier_uniform", use_bias: bool = True,
              **extra) -> Spec:
    """A validated spec from a list of activations (one per layer) and the widths
    [inputs, units_0, units_1, ...] (default 3 inputs, hidden width 4, 3 outputs)."""
    activations = [activations] if isinstance(activations, str) else list(activations)
    if widths is None:
        widths = [3] + [4] * (len(activations) - 1) + [3]
    assert len(widths) == len(activations) + 1, "one width per layer plus the inputs"
    layers = [{"units": units, "activation": act, "init": init, "use_bias": use_bias}
              for act, units in zip(activations, widths[1:])]
    layers[0]["inputs"] = widths[0]
    raw = {"seed": seed, "dtype": dtype, "layers": layers, "loss": {"name": loss}}
    if reduction is not None:
        raw["loss"]["reduction"] = reduction
    raw.update(extra)
    return parse_spec(raw)


def explicit_spec(weights, biases=None, activations=None, loss: str = "mse", reduction: str | None = None,
                  dtype: str = "float64", x=None, y=None, params=None) -> Spec:
    """A spec with explicit weights (each (inputs, units)) and biases, optional activation
    parameters (one dict per layer) and optional inline data."""
    layers = []
    for i, w in enumerate(weights):
        w = np.asarray(w, dtype=float)
        layer = {"units": w.shape[1], "weight": w.tolist(),
                 "activation": "identity" if activations is None else activations[i]}
        if i == 0:
            layer["inputs"] = w.shape[0]
        if params is not None and params[i]:
            layer["activation_params"] = dict(params[i])
        if biases is not None and biases[i] is not None:
            layer["bias"] = np.asarray(biases[i], dtype=float).tolist()
        layers.append(layer)
    raw = {"dtype": dtype, "layers": layers, "loss": {"name": loss}}
    if reduction is not None:
        raw["loss"]["reduction"] = reduction
    if x is not None:
        raw["data"] = {"x": np.asarray(x, dtype=float).tolist(), "y": np.asarray(y).tolist()}
    return parse_spec(raw)


# --------------------------------------------------------------------------------- verdicts


def report_errors(report: dict) -> dict[str, float]:
    """Every compared tensor's norm-relative error, by name."""
    e = report["errors"]
    out = {"output": e["output"]["rel"], "loss": e["loss"]["rel"]}
    out.update({f"activation {k}": v["rel"] for k, v in e["activations"].items()})
    out.update({f"grad {k}": v["rel"] for k, v in e["grads"].items()})
    out.update({f"buffer {k}": v["rel"] for k, v in e.get("buffers", {}).items()})
    return out


def assert_parity(report: dict, tol: float | None = None) -> dict[str, float]:
    """Every tensor of a check report within ``tol`` (default: the policy for its dtype)."""
    tol = CHECK_TOL[report["dtype"]] if tol is None else tol
    errors = report_errors(report)
    bad = {name: rel for name, rel in errors.items() if not rel <= tol}
    assert not bad, f"{report['dtype']} tensors beyond tol {tol:g}: {bad}"
    return errors


def run_check(spec: Spec, dtype: str | None = None, batch: int | None = None, x=None, y=None) -> dict:
    """check() and assert parity under the policy; returns the report."""
    report = check(spec, dtype=dtype, batch=batch, x=x, y=y)
    assert_parity(report)
    return report


def assert_close(got, expected, dtype: str = "float64", tol: float | None = None, what: str = "") -> float:
    """Norm-relative error of ``got`` against ``expected`` within the policy for ``dtype``."""
    tol = CHECK_TOL[dtype] if tol is None else tol
    err = rel_error(got, expected)
    assert err <= tol, f"{what}: rel error {err:.3e} > {tol:g}\n got      {got}\n expected {expected}"
    return err


def assert_check_refuses(raw: dict, field: str, words, tmp_path, capsys) -> None:
    """`nnparity check` on the spec ``raw`` exits 2 with one line naming ``field`` and holding ``words``."""
    import json

    from nnparity.cli import main

    path = tmp_path / "bad.json"
    path.write_text(json.dumps(raw))
    assert main(["check", str(path)]) == 2
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert out == "" and len(lines) == 1, err
    assert f"{field}: " in lines[0], lines[0]
    for word in words:
        assert word in lines[0], (word, lines[0])


# ------------------------------------------------------------------------------ training runs


def per_step_error(ours, theirs) -> float:
    """max over steps of |ours − theirs| / |theirs|."""
    ours, theirs = np.asarray(ours, dtype=float), np.asarray(theirs, dtype=float)
    assert ours.shape == theirs.shape, f"{ours.shape} steps vs {theirs.shape}"
    return float(np.max(np.abs(ours - theirs) / np.abs(theirs)))


def assert_same_run(a, b, tol: float, what: str) -> dict:
    """Two TrainResults agree step by step (loss, gradient norm), in bookkeeping (stop reason,
    epochs, per-epoch accuracy) and in the final parameters, each within ``tol``.
    Returns the measured errors."""
    errors = {"step_loss": per_step_error(a.history.step_loss, b.history.step_loss),
              "grad_norm": per_step_error(a.history.grad_norm, b.history.grad_norm),
              "params": max(rel_error(a.params[k], b.params[k]) for k in b.params)}
    assert a.params.keys() == b.params.keys()
    assert a.stopped == b.stopped
    assert len(a.history.epoch_loss) == len(b.history.epoch_loss)
    assert a.history.epoch_accuracy == pytest.approx(b.history.epoch_accuracy, rel=0, abs=0)
    bad = {k: v for k, v in errors.items() if not v <= tol}
    assert not bad, f"{what}: beyond {tol:g}: {bad}"
    return errors


def strict_and_torch(spec: Spec, seed: int) -> tuple[dict, dict]:
    """One pass of three seeded rows (labels 0, 2, 1) on the CuPy stand-in that refuses host
    round-trips (strict_xp.py), and the same through torch: (scratch's, torch's) run results."""
    from strict_xp import strict
    from torch_ref.check import run_scratch, run_torch

    x = np.random.default_rng(seed).normal(size=(3, *spec.shapes[0]))
    y = np.array([0, 2, 1])
    return run_scratch(spec, x, y, xp=strict), run_torch(spec, x, y)


def assert_no_input_gradient_changes_nothing(spec: Spec, x, y) -> None:
    """A training step asks the first layer for no dL/dx (``input_grad=False``): the network returns
    None, and every parameter gradient is what a pass that computes dL/dx (of x's shape) leaves."""
    from scratch.network import Network, build_loss

    grads = []
    for input_grad in (False, True):
        net, loss = Network.from_spec(spec), build_loss(spec)
        loss.forward(net.forward(x), y)
        got = net.backward(loss.backward(), input_grad=input_grad)
        assert (got is None) == (not input_grad) and (got is None or got.shape == x.shape)
        grads.append({name: np.array(g) for name, g in net.gradients().items()})
    assert grads[0].keys() == grads[1].keys()
    for name, value in grads[0].items():
        np.testing.assert_array_equal(value, grads[1][name], err_msg=name)


def resumed_run(trainer, spec: Spec, tmp_path):
    """(whole, saved, resumed): ``spec`` trained whole; trained one epoch into a checkpoint (saved,
    as loaded back); then resumed from it to the end."""
    from scratch import checkpoint
    from scratch.checkpoint import Checkpointer

    whole = trainer(spec, progress=False)
    path = tmp_path / checkpoint.FILENAME
    trainer(spec, epochs=1, progress=False, checkpoints=Checkpointer(path))
    saved = checkpoint.load(path)
    resumed = trainer(spec, progress=False, checkpoints=Checkpointer(tmp_path / "again.npz", resume=saved))
    return whole, saved, resumed


def torch_checkpoint_roundtrip(spec: Spec, tmp_path):
    """(checkpoint, torch state_dict): ``spec`` trained by scratch into a checkpoint, written as a
    torch .pt and read back bit for bit (asserted), and the state_dict torch's modules load."""
    from scratch import checkpoint
    from scratch.checkpoint import Checkpointer
    from scratch.training import train
    from torch_ref import checkpoint as torch_checkpoint

    path = tmp_path / checkpoint.FILENAME
    train(spec, progress=False, checkpoints=Checkpointer(path))
    original = checkpoint.load(path)
    torch_checkpoint.write_torch(original, tmp_path / "c.pt")
    assert torch_checkpoint.read_torch(tmp_path / "c.pt").equal(original)
    model_state, _ = torch_checkpoint.to_torch(original)
    return original, model_state


def run_nnparity(*args, cwd):
    """`python -m nnparity ARGS` run to its end in ``cwd`` (a whole-run subprocess: mark its test slow)."""
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "nnparity", *map(str, args)], capture_output=True, text=True,
                          timeout=600, cwd=cwd)


def cuda_ready() -> bool:
    """Whether both device sides can run here: torch sees a CUDA device and CuPy has a driver."""
    try:
        import cupy
        import torch
        return torch.cuda.is_available() and cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:   # no CuPy, or CuPy without a driver
        return False
