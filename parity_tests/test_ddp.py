"""Lightning DDP on CPU (gloo): two processes, each taking its shard of every global batch, must
train exactly as one process on the whole global batch (the scratch loop and the torch loop).

The shards are unequal on purpose (global batches of 45 rows: 23 + 22, and a last batch of 20:
10 + 10), so the per-process loss weighting is exercised, for a mean- and a sum-reduced loss.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import TRAJECTORY_TOL
from scratch.policy import rel_error
from scratch.spec import SpecError, parse_spec
from scratch.training import train as scratch_train
from torch_ref import lightning as tl
from torch_ref.training import train as torch_train

STEPS = 20


def ddp_spec(loss: dict, lr: float = 0.05) -> dict:
    """Digits, 200 images, shuffled global batches of 45 (4 x 45 + 20 = 5 steps an epoch), 4 epochs;
    SGD with momentum, whose steps scale with the gradient (Adam would hide a gradient scale error)."""
    return {"seed": 1, "dtype": "float64",
            "layers": [{"inputs": 64, "units": 16, "activation": "relu", "init": "he_uniform"}, {"units": 10}],
            "loss": loss, "optimizer": {"name": "sgd", "lr": lr, "momentum": 0.9},
            "data": {"name": "digits", "samples": 200, "scale": "standard"},
            "train": {"epochs": 4, "batch_size": 45, "shuffle": True}}


def max_step_error(a, b) -> float:
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape == (STEPS,)
    return float(np.max(np.abs(a - b) / np.abs(b)))


@pytest.mark.slow
@pytest.mark.parametrize("loss, lr", [({"name": "softmax_cce"}, 0.05), ({"name": "mse", "reduction": "sum"}, 0.002)],
                         ids=["mean-reduced", "sum-reduced"])
def test_two_process_ddp_equals_one_process_on_the_global_batch(loss, lr):
    spec = parse_spec(ddp_spec(loss, lr))
    one = torch_train(spec, progress=False)
    ours = scratch_train(spec, progress=False)
    ddp = tl.train(spec, progress=False, devices=2, strategy="ddp_spawn", accelerator="cpu")
    assert ddp.lightning["world_size"] == 2
    errors = {"torch loop": max_step_error(ddp.history.step_loss, one.history.step_loss),
              "scratch": max_step_error(ddp.history.step_loss, ours.history.step_loss),
              "grad norm": max_step_error(ddp.history.grad_norm, one.history.grad_norm),
              "params": max(rel_error(ddp.params[k], one.params[k]) for k in one.params)}
    assert all(e <= TRAJECTORY_TOL for e in errors.values()), errors
    assert ddp.history.epoch_accuracy == one.history.epoch_accuracy   # correct counts summed over ranks
    assert ddp.history.step_loss[-1] < 0.8 * ddp.history.step_loss[0]
    assert ddp.test_accuracy == one.test_accuracy


@pytest.mark.slow
def test_train_cli_lightning_ddp_reports_once_and_matches_the_torch_backend(tmp_path):
    """`nnparity train --backend lightning --devices 2 --strategy ddp` (Lightning relaunches the
    command for rank 1): one JSON report, from rank 0, equal to the torch backend's run."""
    path = tmp_path / "ddp.json"
    path.write_text(json.dumps(ddp_spec({"name": "softmax_cce"})))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    base = [sys.executable, "-m", "nnparity", "train", str(path), "--json", "--quiet"]
    runs = {}
    for backend, extra in (("torch", []), ("lightning", ["--devices", "2", "--strategy", "ddp"])):
        proc = subprocess.run(base + ["--backend", backend] + extra, capture_output=True, text=True,
                              env=env, cwd=tmp_path, timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
        lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
        assert len(lines) == 1, proc.stdout
        runs[backend] = json.loads(lines[0])
    light, one = runs["lightning"], runs["torch"]
    assert light["steps"] == one["steps"] == STEPS
    assert max_step_error(light["history"]["step_loss"], one["history"]["step_loss"]) <= TRAJECTORY_TOL
    for name, value in one["params"].items():
        assert rel_error(np.array(light["params"][name]), np.array(value)) <= TRAJECTORY_TOL
    assert sorted(os.listdir(tmp_path)) == ["ddp.json"]      # no lightning_logs or checkpoints left


def test_a_global_batch_smaller_than_the_world_is_refused_before_any_process_starts():
    raw = ddp_spec({"name": "softmax_cce"})
    raw["train"] = {"epochs": 1, "batch_size": 199}           # 200 rows: a last batch of 1 row
    with pytest.raises(SpecError, match="a global batch of 1 row"):
        tl.train(parse_spec(raw), progress=False, devices=2, strategy="ddp_spawn", accelerator="cpu")


@pytest.mark.gpu
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 CUDA devices")
def test_two_gpu_ddp_equals_one_process():
    spec = parse_spec(ddp_spec({"name": "softmax_cce"}))
    one = torch_train(spec, progress=False)
    ddp = tl.train(spec, progress=False, devices=2, strategy="ddp_spawn", accelerator="gpu")
    assert max_step_error(ddp.history.step_loss, one.history.step_loss) <= TRAJECTORY_TOL
