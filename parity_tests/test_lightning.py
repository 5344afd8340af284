"""Lightning (torch_ref/lightning.py) against the scratch loop and the plain torch loop, step by step.

The LightningModule, the data module (the shared batch order as whole batches) and the Trainer
factory are the real ones; parity is each step's loss (and gradient norm) relative to the
scratch loop's, and the final parameters, within the policy's TRAJECTORY_TOL (1e-10).
"""
from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import CHECK_TOL, TRAJECTORY_TOL, assert_same_run
from scratch.data import batch_order
from scratch.spec import SpecError, load_spec, parse_spec
from scratch.training import TrainingDiverged
from scratch.training import train as scratch_train
from torch_ref import lightning as tl
from torch_ref.training import train as torch_train

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"


def small_spec(optimizer: dict, **changes) -> dict:
    """A 2-8-1 tanh network on moons (bce_logits), shuffled batches of 25 (the last one short)."""
    raw = {"seed": 3, "dtype": "float64",
           "layers": [{"inputs": 2, "units": 8, "activation": "tanh"}, {"units": 1}],
           "loss": {"name": "bce_logits"}, "optimizer": optimizer,
           "data": {"name": "moons", "samples": 110, "test_fraction": 0.1},
           "train": {"epochs": 5, "batch_size": 25, "shuffle": True}}
    raw.update(changes)
    return raw


# ----------------------------------------------------------------------------- whole runs


def test_xor_lightning_and_torch_match_scratch_every_step():
    spec = load_spec(SPECS / "xor.toml")
    ours = scratch_train(spec, epochs=300, progress=False)
    for other in (torch_train(spec, epochs=300, progress=False), tl.train(spec, epochs=300, progress=False)):
        assert len(other.history.step_loss) == 300
        assert_same_run(other, ours, TRAJECTORY_TOL, "xor, 300 steps of full-batch GD")


def test_digits_shuffled_minibatches_lightning_and_torch_match_scratch_every_step():
    spec = load_spec(SPECS / "digits.toml")
    ours = scratch_train(spec, epochs=2, progress=False)
    theirs = torch_train(spec, epochs=2, progress=False)
    light = tl.train(spec, epochs=2, progress=False)
    assert len(light.history.step_loss) == 2 * 45       # 1,437 training images in batches of 32
    assert_same_run(theirs, ours, TRAJECTORY_TOL, "torch loop, digits, 2 shuffled epochs")
    assert_same_run(light, ours, TRAJECTORY_TOL, "Lightning, digits, 2 shuffled epochs")
    assert light.test_accuracy == ours.test_accuracy
    assert abs(light.test_loss - ours.test_loss) <= TRAJECTORY_TOL * ours.test_loss
    assert light.lightning["world_size"] == 1


@pytest.mark.parametrize("optimizer", [
    {"name": "sgd", "lr": 0.3, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01},
    {"name": "sgd", "lr": 0.3, "momentum": 0.8, "dampening": 0.2, "clip_norm": 0.1},
    {"name": "adam", "lr": 0.02, "weight_decay": 0.01, "clip_value": 0.01},
    {"name": "adamw", "lr": 0.02, "weight_decay": 0.1},
    {"name": "armijo", "lr": 2.0},
    {"name": "random_search", "lr": 0.1},
], ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items() if k != "lr"))
def test_every_optimizer_through_lightning_matches_scratch(optimizer):
    """Manual optimization: Armijo and random search get the closure, clipping goes through
    Lightning's clip_gradients (norm, then value), as in the torch loop."""
    spec = parse_spec(small_spec(optimizer))
    ours = scratch_train(spec, progress=False)
    light = tl.train(spec, progress=False)
    assert len(light.history.step_loss) == 5 * 4
    assert_same_run(light, ours, TRAJECTORY_TOL, f"Lightning, {optimizer}")
    assert_same_run(light, torch_train(spec, progress=False), TRAJECTORY_TOL, f"Lightning vs torch, {optimizer}")
    assert light.history.step_loss[-1] != light.history.step_loss[0]  # it moved


def test_float32_lightning_within_the_float32_policy():
    spec = parse_spec(small_spec({"name": "adam", "lr": 0.02}, dtype="float32"))
    ours, light = scratch_train(spec, progress=False), tl.train(spec, progress=False)
    assert light.params["layers.0.weight"].dtype == np.float32
    assert_same_run(light, ours, CHECK_TOL["float32"], "Lightning float32")


@pytest.mark.parametrize("train, stopped", [({"loss_tol": 0.45}, "loss_tol"), ({"grad_tol": 0.2}, "grad_tol")])
def test_stopping_rules_stop_lightning_where_they_stop_scratch(train, stopped):
    spec = parse_spec(small_spec({"name": "adam", "lr": 0.05},
                                 train={"epochs": 40, "batch_size": 25, "shuffle": True, **train}))
    ours, light = scratch_train(spec, progress=False), tl.train(spec, progress=False)
    assert ours.stopped == stopped and len(ours.history.epoch_loss) < 40
    assert_same_run(light, ours, TRAJECTORY_TOL, f"Lightning stopping on {stopped}")
    assert len(light.history.step_loss) == len(ours.history.step_loss)


def test_divergence_raises_at_the_same_step_as_the_torch_loop():
    raw = {"seed": 0, "dtype": "float64",
           "layers": [{"inputs": 1, "units": 16, "activation": "relu", "init": "he_uniform"},
                      {"units": 16, "activation": "relu", "init": "he_uniform"}, {"units": 1}],
           "loss": {"name": "mse"}, "optimizer": {"name": "sgd", "lr": 30.0},
           "data": {"name": "square"}, "train": {"epochs": 200}}
    spec = parse_spec(raw)
    errors = []
    for train in (torch_train, tl.train):
        with pytest.raises(TrainingDiverged) as info:
            train(spec, progress=False)
        errors.append(info.value)
    t, lt = errors
    assert (lt.what, lt.step, lt.epoch, lt.parameter) == (t.what, t.step, t.epoch, t.parameter)
    assert len(lt.history.step_loss) == lt.step - 1


# ---------------------------------------------------------------------------------- data


@pytest.mark.parametrize("shuffle", [False, True])
def test_sampler_serves_the_shared_batch_order_as_whole_batches(shuffle):
    n, size, seed = 103, 10, 7
    sampler = tl.BatchOrderSampler(n, size, shuffle, seed)
    assert len(sampler) == 11
    for epoch in (0, 1, 4):
        sampler.set_epoch(epoch)
        got = [(rows.tolist(), rows_global) for rows, rows_global in sampler]
        want = [(b.tolist(), len(b)) for b in batch_order(n, size, shuffle, seed, epoch)]
        assert got == want
    x = torch.arange(2 * n, dtype=torch.float64).reshape(n, 2)
    y = torch.arange(n)
    loader = torch.utils.data.DataLoader(tl.BatchDataset(x, y), sampler=sampler, batch_size=None)
    sampler.set_epoch(1)
    for (xb, yb, rows_global), b in zip(loader, batch_order(n, size, shuffle, seed, 1)):
        assert torch.equal(xb, x[torch.as_tensor(b)]) and torch.equal(yb, y[torch.as_tensor(b)])
        assert rows_global == len(b)


def test_sampler_shards_partition_each_global_batch():
    n, size, world = 103, 10, 3
    shards = [list(tl.BatchOrderSampler(n, size, True, 1, rank, world)) for rank in range(world)]
    for b, global_batch in enumerate(batch_order(n, size, True, 1, 0)):
        parts = [shards[rank][b][0].tolist() for rank in range(world)]
        assert sum(parts, []) == global_batch.tolist()          # in order, nothing lost or repeated
        assert max(map(len, parts)) - min(map(len, parts)) <= 1
        assert all(shards[rank][b][1] == len(global_batch) for rank in range(world))


def test_a_batch_smaller_than_the_world_is_refused():
    with pytest.raises(SpecError, match="train.batch_size: a global batch of 3 row"):
        tl.BatchOrderSampler(103, 10, False, 0, 0, 4)          # the last batch has 3 rows
    tl.BatchOrderSampler(103, 10, False, 0, 0, 3)


# ------------------------------------------------------------------------------- trainer


@pytest.fixture
def restore_deterministic_mode():
    """make_trainer(deterministic=True) switches torch's deterministic algorithms on, globally."""
    was = torch.are_deterministic_algorithms_enabled()
    yield
    torch.use_deterministic_algorithms(was)


def test_trainer_factory_is_lean_and_deterministic(tmp_path, restore_deterministic_mode):
    from lightning.pytorch.callbacks import ModelCheckpoint, ProgressBar
    from lightning.pytorch.loggers import CSVLogger

    spec = load_spec(SPECS / "digits.toml")
    torch.use_deterministic_algorithms(False)
    trainer = tl.make_trainer(spec, epochs=3, log_dir=tmp_path, progress=False)
    assert torch.are_deterministic_algorithms_enabled()
    assert trainer.max_epochs == 3
    assert not any(isinstance(c, (ModelCheckpoint, ProgressBar)) for c in trainer.callbacks)
    assert trainer.num_sanity_val_steps == 0
    assert isinstance(trainer.logger, CSVLogger) and Path(trainer.logger.log_dir) == tmp_path
    assert isinstance(trainer.strategy.precision_plugin, tl.DoublePrecision)
    assert trainer.accelerator.__class__.__name__ == ("CUDAAccelerator" if torch.cuda.is_available()
                                                      else "CPUAccelerator")
    shown = tl.make_trainer(spec, log_dir=tmp_path, progress=True)
    assert any(isinstance(c, ProgressBar) for c in shown.callbacks)
    f32 = tl.make_trainer(parse_spec({**spec.to_dict(), "dtype": "float32"}), log_dir=tmp_path, progress=False)
    assert not isinstance(f32.strategy.precision_plugin, tl.DoublePrecision)


def test_every_step_is_logged_to_csv_and_nothing_lands_in_the_cwd(tmp_path, monkeypatch):
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    spec = parse_spec(small_spec({"name": "adam", "lr": 0.02}))
    result = tl.train(spec, epochs=3, progress=False, log_dir=tmp_path / "logs")
    rows = list(csv.DictReader(open(tmp_path / "logs" / "metrics.csv")))
    assert [int(r["step"]) for r in rows] == list(range(12))
    assert [float(r["loss"]) for r in rows] == result.history.step_loss     # exact: repr round-trips
    assert [int(r["epoch"]) for r in rows] == [0] * 4 + [1] * 4 + [2] * 4
    tl.train(spec, epochs=1, progress=False)                   # default: a temporary log dir
    assert os.listdir(work) == []


def test_train_leaves_torch_deterministic_mode_as_it_found_it():
    spec = parse_spec(small_spec({"name": "sgd", "lr": 0.1}))
    for mode in (False, True, False):
        torch.use_deterministic_algorithms(mode)
        tl.train(spec, epochs=1, progress=False)
        assert torch.are_deterministic_algorithms_enabled() == mode


def test_per_step_times_are_recorded():
    spec = parse_spec(small_spec({"name": "sgd", "lr": 0.1}))
    result = tl.train(spec, epochs=2, progress=False)
    assert len(result.step_seconds) == 8 and all(s > 0 for s in result.step_seconds)
    assert sum(result.step_seconds) <= result.seconds
    assert result.lightning["fit_seconds"] >= result.seconds


# ----------------------------------------------------------------------------------- GPU


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_lightning_on_cuda_matches_scratch_float64():
    spec = load_spec(SPECS / "digits.toml")
    ours = scratch_train(spec, epochs=2, progress=False)
    light = tl.train(spec, epochs=2, progress=False, accelerator="gpu")
    assert_same_run(light, ours, TRAJECTORY_TOL, "Lightning on CUDA, digits, 2 epochs")
