"""The training loop off the host: scratch.training on a device array module, against the same
loop on NumPy (strict) and against torch on CUDA (cuda).

- ``strict`` (always): the loop on parity_tests/strict_xp.py, a CuPy stand-in on the CPU that
  raises HostRoundTrip on any implicit host read. A run that completes there has no hidden host
  round-trip in its steps; its trajectory must be NumPy's (TRAJECTORY_TOL), and its explicit reads
  are counted: one per epoch, plus the final parameters and test metrics.
- ``cuda`` (marked gpu; skipped cleanly without CUDA and CuPy): scratch on CuPy against the torch
  loop on CUDA; float64 to the trajectory tolerance, float32 with TF32 off to the float32 one;
  the drift of TF32 and of bf16 autocast is measured and printed, not asserted.
"""
from __future__ import annotations

import numpy as np
import pytest

from conftest import CHECK_TOL, TRAJECTORY_TOL, assert_same_run, cuda_ready
from scratch.checkpoint import Checkpointer, load, spec_difference
from scratch.errors import SpecError
from scratch.spec import parse_spec
from scratch.training import TrainingDiverged, train as scratch_train
from strict_xp import StrictNamespace, strict
from test_training import diverging_spec, moons_spec, square_spec

OPTIMIZERS = {
    "sgd_momentum": {"name": "sgd", "lr": 0.3, "momentum": 0.9},
    "adam": {"name": "adam", "lr": 0.01},
    "sgd_clip_norm": {"name": "sgd", "lr": 0.5, "clip_norm": 0.05},
    "adam_clip_both": {"name": "adam", "lr": 0.01, "clip_norm": 0.1, "clip_value": 0.005},
}


@pytest.fixture
def reads(monkeypatch) -> list:
    """Every explicit read back to the host from the strict device (``asnumpy``, whoever calls it:
    the loop, the optimizers), one entry each."""
    calls, read = [], StrictNamespace.asnumpy

    def counted(value):
        calls.append(getattr(value, "shape", ()))
        return read(value)

    monkeypatch.setattr(StrictNamespace, "asnumpy", staticmethod(counted))
    return calls


def assert_on_host(result) -> None:
    """A run's result lives on the host: NumPy parameters, Python floats in the history."""
    assert all(type(p) is np.ndarray for p in result.params.values())
    history = result.history
    for values in (history.step_loss, history.grad_norm, history.epoch_loss, history.epoch_accuracy):
        assert all(type(v) is float for v in values)


@pytest.mark.parametrize("shuffle", [True, False], ids=["shuffled", "in_order"])
@pytest.mark.parametrize("optimizer", OPTIMIZERS.values(), ids=OPTIMIZERS.keys())
def test_training_device_strict_trajectory_is_numpys(optimizer, shuffle):
    spec = parse_spec(moons_spec(optimizer=optimizer, train={"shuffle": shuffle}))
    ours, numpy_run = scratch_train(spec, device=strict), scratch_train(spec)
    assert_same_run(ours, numpy_run, TRAJECTORY_TOL, f"strict against NumPy, {optimizer}")
    assert ours.test_accuracy == numpy_run.test_accuracy
    assert abs(ours.test_loss - numpy_run.test_loss) <= TRAJECTORY_TOL * abs(numpy_run.test_loss)
    assert_on_host(ours)


@pytest.mark.parametrize("optimizer", [{"name": "armijo", "lr": 4.0}, {"name": "random_search", "lr": 0.05}],
                         ids=["armijo", "random_search"])
def test_training_device_strict_closure_optimizers_read_their_losses(optimizer, reads):
    """Line search and random search compare losses on the host: explicit reads (the strict device
    refuses any other), at least two per step, and the trajectory is still NumPy's."""
    spec = parse_spec(square_spec(epochs=30) | {"optimizer": optimizer})
    ours, numpy_run = scratch_train(spec, device=strict), scratch_train(spec)
    assert_same_run(ours, numpy_run, TRAJECTORY_TOL, f"strict against NumPy, {optimizer['name']}")
    assert len(reads) >= 30 + len(ours.params) + 2 * 30


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_training_device_strict_reads_back_once_per_epoch(dtype, reads):
    spec = parse_spec(moons_spec(dtype=dtype))           # 4 epochs of 10 steps, a test split
    result = scratch_train(spec, device=strict)
    epochs, params = len(result.history.epoch_loss), len(result.params)
    assert len(result.history.step_loss) == 40 and epochs == 4
    # one read per epoch (its 10 steps' loss, norm and hits); at the end one per parameter, the
    # test loss and the test hits
    assert reads[:epochs] == [(3, 10)] * epochs
    assert len(reads) == epochs + params + 2
    assert result.params["layers.0.weight"].dtype == np.dtype(dtype)


@pytest.mark.parametrize("dtype, what", [("float64", "loss"), ("float32", "gradient norm")])
def test_training_device_strict_divergence_names_the_first_bad_step(dtype, what):
    spec = parse_spec(diverging_spec(dtype))
    errors = {}
    for name, device in (("numpy", None), ("strict", strict)):
        with pytest.raises(TrainingDiverged) as info:
            scratch_train(spec, device=device)
        errors[name] = info.value
    ours, numpy_err = errors["strict"], errors["numpy"]
    assert (ours.what, ours.step, ours.epoch, ours.batch) == (what, numpy_err.step, numpy_err.epoch, numpy_err.batch)
    assert ours.parameter.startswith("layers.") and f"step {ours.step} " in str(ours)
    assert ours.history.step_loss == numpy_err.history.step_loss and len(ours.history.step_loss) == ours.step - 1


def test_training_device_strict_grad_tol_stops_at_numpys_step():
    free = scratch_train(parse_spec(square_spec()))
    tol = sorted(free.history.grad_norm)[len(free.history.grad_norm) // 2]
    spec = parse_spec(square_spec(grad_tol=tol))
    ours, numpy_run = scratch_train(spec, device=strict), scratch_train(spec)
    assert ours.stopped == numpy_run.stopped == "grad_tol"
    assert ours.history.step_loss == numpy_run.history.step_loss
    for name, value in numpy_run.params.items():
        np.testing.assert_array_equal(ours.params[name], value)


@pytest.mark.parametrize("optimizer", [OPTIMIZERS["sgd_momentum"], OPTIMIZERS["adam"]], ids=["sgd_momentum", "adam"])
def test_training_device_strict_checkpoint_is_numpys(tmp_path, optimizer):
    """Checkpoints of a device run are written from host copies: the same file as NumPy's run."""
    spec = parse_spec(moons_spec(optimizer=optimizer))
    saved = {}
    for name, device in (("numpy", None), ("strict", strict)):
        path = tmp_path / f"{name}.npz"
        scratch_train(spec, device=device, checkpoints=Checkpointer(path, every=7))
        saved[name] = load(path)
    assert saved["strict"].equal(saved["numpy"])
    assert saved["strict"].step == 40


def test_training_device_strict_resumes_a_numpy_checkpoint(tmp_path):
    spec = parse_spec(moons_spec(optimizer=OPTIMIZERS["adam"]))
    path = tmp_path / "half.npz"
    scratch_train(spec, epochs=2, checkpoints=Checkpointer(path))
    resumed = scratch_train(spec, device=strict, checkpoints=Checkpointer(tmp_path / "on.npz", resume=load(path)))
    whole = scratch_train(spec)
    assert_same_run(resumed, whole, TRAJECTORY_TOL, "NumPy's checkpoint resumed on the strict device")


def test_training_device_checkpoint_resumes_on_another_device():
    """A checkpoint holds host arrays: one saved on a GPU (or before specs had a device) resumes on
    the CPU; any other field that differs is still named."""
    current = parse_spec(square_spec()).to_dict()
    saved_on_gpu = dict(current, device="cuda")
    saved_before = {k: v for k, v in current.items() if k != "device"}
    assert spec_difference(saved_on_gpu, current) is None and spec_difference(saved_before, current) is None
    assert spec_difference(dict(saved_on_gpu, seed=1), current).startswith("seed:")


@pytest.mark.skipif(cuda_ready(), reason="checks the refusal on a machine without CUDA and CuPy")
def test_training_device_cuda_unavailable_is_a_spec_error_naming_device():
    spec = parse_spec(square_spec(epochs=2) | {"device": "cuda"})      # parsing does not look for CUDA
    with pytest.raises(SpecError) as info:
        scratch_train(spec)
    assert str(info.value).startswith("device: cuda") and "cpu" in str(info.value)


# ------------------------------------------------------------------------------------ CUDA


@pytest.fixture
def true_float32():
    """torch's float32 products in true float32 (no TF32) for the test, as before it afterwards."""
    import torch

    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield torch
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


CUDA = pytest.mark.skipif(not cuda_ready(), reason="needs CUDA and CuPy")


@pytest.mark.gpu
@CUDA
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("optimizer", OPTIMIZERS.values(), ids=OPTIMIZERS.keys())
def test_training_device_cuda_trajectory_matches_torch_on_cuda(true_float32, optimizer, dtype):
    from torch_ref.training import train as torch_train

    spec = parse_spec(moons_spec(optimizer=optimizer, dtype=dtype, device="cuda"))
    ours, theirs = scratch_train(spec), torch_train(spec)
    tol = TRAJECTORY_TOL if dtype == "float64" else CHECK_TOL["float32"]
    errors = assert_same_run(ours, theirs, tol, f"CuPy against torch on CUDA, {dtype}, {optimizer}")
    assert_on_host(ours)
    print(f"\n{dtype} {optimizer}: {errors}")


@pytest.mark.gpu
@CUDA
def test_training_device_cuda_tf32_and_bf16_drift_reported(true_float32):
    """TF32 products and bf16 autocast in torch, against scratch's float32 on CuPy: the drift is
    printed (it is what those modes trade for speed), never asserted."""
    from scratch.policy import rel_error
    from torch_ref.training import train as torch_train

    torch = true_float32
    spec = parse_spec(moons_spec(optimizer=OPTIMIZERS["adam"], dtype="float32", device="cuda"))
    ours = scratch_train(spec)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    tf32 = torch_train(spec)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    with torch.autocast("cuda", dtype=torch.bfloat16):
        bf16 = torch_train(spec)
    for name, run in (("tf32", tf32), ("bf16 autocast", bf16)):
        steps = np.abs(np.subtract(run.history.step_loss, ours.history.step_loss)) / np.abs(ours.history.step_loss)
        params = max(rel_error(run.params[k], ours.params[k]) for k in ours.params)
        print(f"\n{name}: max step loss drift {steps.max():.3e}, final parameters {params:.3e}")
    assert len(tf32.history.step_loss) == len(bf16.history.step_loss) == len(ours.history.step_loss)
