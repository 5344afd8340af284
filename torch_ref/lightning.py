"""The spec trained by PyTorch Lightning's Trainer: the production path, step for step the torch loop.

- ``SpecModule`` (LightningModule): torch_ref.model's network, its loss and the optimizer the spec
  names (torch_ref.optimizers.make_torch_optimizer). Manual optimization, because Armijo and random
  search evaluate ``closure()`` without a backward (Lightning's automatic closure would run backward
  at every trial point), and so that one step is exactly the torch loop's step
  (torch_ref/training.py): zero_grad; forward and loss; backward; global gradient norm; clipping
  (norm, then value, through Lightning's ``clip_gradients``); ``optimizer.step(closure)``.
- ``SpecDataModule`` (LightningDataModule): the spec's dataset (scratch.data.load_dataset) as
  tensors made once, served in the shared batch order (scratch.data.batch_order) by a
  ``BatchOrderSampler`` whose items are whole batches of row indices and a ``BatchDataset`` that
  indexes the tensors with them (DataLoader ``batch_size=None``: no per-sample collation).
- ``make_trainer``: deterministic, no sanity validation, no checkpoints, no model summary, the
  progress bar only when interactive, CSVLogger in a temporary (or given) directory, accelerator
  auto (CPU here, CUDA when present), precision "64-true" / "32-true" from the spec's dtype.
- ``train(spec, ...) -> TrainResult``: as scratch.training.train and torch_ref.training.train.

Per-step loss: every step's loss (and gradient norm and wall time) is kept by the module's
RunLog (the bookkeeping the scratch and torch loops share) and written to the CSVLogger, one row
per step, at each epoch's end. ``self.log`` per step costs more than the whole step of a small
model (see README, "Compare with Lightning"), so the step itself only appends to a list.

Distributed (DDP): ``devices=N`` / ``num_nodes=M`` / ``strategy="ddp"|"ddp_spawn"`` run Lightning's
DDP (gloo on CPU, NCCL on CUDA). Every process computes the same global batch order and takes its
shard of each global batch (``np.array_split``: sizes differ by at most one row). DDP averages the
gradients over the W processes, so each process trains on W·(n_r/B)·(its mean loss) (W·(its
sum) for sum-reduced losses): the average is then exactly the gradient of the global batch's
loss, equal shards or not. The recorded loss is the global batch's (an all-reduce of the shards'
shares). A global batch with fewer rows than processes is refused (some process would get none).
"""
from __future__ import annotations

import inspect
import logging
import math
import os
import shutil
import sys
import tempfile
import time
import warnings
from contextlib import nullcontext

import numpy as np
import torch
import lightning as L  # after torch, as Lightning's own examples import it
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.plugins.io import TorchCheckpointIO
from lightning.pytorch.plugins.precision.double import DoublePrecision

from scratch.checkpoint import default_every
from scratch.signals import DeferredSignals, Interrupted
from scratch.data import batch_order, load_dataset
from scratch.errors import SpecError
from scratch.losses import LOSSES
from scratch.loop import (CLOSURE_OPTIMIZERS, History, RunLog, TrainingDiverged, TrainResult, accuracy_rule,
                          check_batch_sizes, check_final_parameters, count_correct)
from torch_ref.model import (TORCH_DTYPES, build, buffers_to_scratch, build_loss, named_to_scratch,
                             scratch_named_parameters, to_scratch)
from torch_ref.checkpoint import optimizer_from_common_extra, optimizer_to_common, read_checked, save_checked
from torch_ref.optimizers import make_torch_optimizer
from torch_ref.training import as_tensor, evaluate

STRATEGIES = ("auto", "ddp", "ddp_spawn")


# ------------------------------------------------------------------------------------------ data


def shard(rows: np.ndarray, rank: int, world_size: int) -> np.ndarray:
    """Process ``rank``'s slice of a global batch: ``np.array_split`` (contiguous, sizes ±1)."""
    if world_size == 1:
        return rows
    return np.array_split(rows, world_size)[rank]


def check_shards(n: int, batch_size: int | None, world_size: int) -> None:
    """Raise SpecError when a global batch has fewer rows than there are processes."""
    smallest = min(len(b) for b in batch_order(n, batch_size, False, 0, 0))
    if smallest < world_size:
        raise SpecError("train.batch_size",
                        f"a global batch of {smallest} row(s) cannot be split over {world_size} processes; "
                        f"use fewer processes or a batch size (and data size) that leaves every batch "
                        f">= {world_size} rows")


class BatchOrderSampler(torch.utils.data.Sampler):
    """Yields, for each global batch of ``batch_order(n, batch_size, shuffle, seed, epoch)``, this
    process's shard of its row indices (a LongTensor) and the global batch's row count.

    Lightning calls ``set_epoch`` before each epoch (as for a DistributedSampler), so every
    epoch has the order the scratch and torch loops use for it.
    """

    def __init__(self, n: int, batch_size: int | None, shuffle: bool, seed: int,
                 rank: int = 0, world_size: int = 1, device=None, start: tuple[int, int] | None = None):
        self.n, self.batch_size, self.shuffle, self.seed = n, batch_size, shuffle, seed
        self.rank, self.world_size = rank, world_size
        self.device = device
        # A resumed run's (epoch, batches already done): that epoch's first pass skips them.
        self.epoch = 0 if start is None else start[0]
        self._skip = start
        check_shards(n, batch_size, world_size)
        self._cache: tuple[int, list] | None = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def batches(self, epoch: int) -> list[tuple[torch.Tensor, int]]:
        if self._cache is not None and self._cache[0] == epoch:
            return self._cache[1]
        out = [(torch.as_tensor(shard(rows, self.rank, self.world_size), device=self.device), len(rows))
               for rows in batch_order(self.n, self.batch_size, self.shuffle, self.seed, epoch)]
        self._cache = (epoch, out)
        return out

    def __iter__(self):
        skip, self._skip = self._skip, None
        batches = self.batches(self.epoch)
        return iter(batches[skip[1]:] if skip is not None and skip[0] == self.epoch else batches)

    def __len__(self) -> int:
        size = self.n if self.batch_size is None else min(self.batch_size, self.n)
        return math.ceil(self.n / size)


class BatchDataset(torch.utils.data.Dataset):
    """A map-style dataset whose items are whole batches: ``ds[(rows, global_rows)]`` is
    ``(x[rows], y[rows], global_rows)``, one tensor index per batch."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor):
        self.x, self.y = x, y

    def __getitem__(self, item):
        rows, global_rows = item
        return self.x[rows], self.y[rows], global_rows


class SpecDataModule(L.LightningDataModule):
    """The spec's training rows, served in the shared batch order (this process's shard of each
    global batch under DDP). The tensors are made once, on the device that trains."""

    def __init__(self, spec, dataset=None):
        super().__init__()
        self.spec = spec
        self.dataset = dataset
        self.resume_at: tuple[int, int] | None = None   # (epoch, batch) of a resumed run

    def setup(self, stage: str | None = None) -> None:
        if self.dataset is None:
            self.dataset = load_dataset(self.spec)
        device = self.trainer.strategy.root_device if self.trainer is not None else None
        dtype = TORCH_DTYPES[self.spec.dtype]
        self.x = as_tensor(self.dataset.x_train, dtype, device)
        self.y = as_tensor(self.dataset.y_train, dtype, device)

    def transfer_batch_to_device(self, batch, device, dataloader_idx):
        """The tensors were made on the training device (setup): batches are already there.
        Lightning's default would walk every batch with apply_to_collection."""
        return batch

    def train_dataloader(self):
        rank, world = (self.trainer.global_rank, self.trainer.world_size) if self.trainer else (0, 1)
        t = self.spec.train
        sampler = BatchOrderSampler(self.x.shape[0], t.batch_size, t.shuffle, self.spec.seed,
                                    rank, world, device=self.x.device, start=self.resume_at)
        return torch.utils.data.DataLoader(BatchDataset(self.x, self.y), sampler=sampler, batch_size=None)


# ---------------------------------------------------------------------------------------- module


# Attributes Lightning sets on the module around every hook call: plain values, so they skip
# nn.Module.__setattr__'s parameter/buffer/submodule checks (a measurable share of a small step).
_PLAIN_ATTRIBUTES = frozenset({"_current_fx_name"})


class SpecModule(L.LightningModule):
    """The spec's network, loss and optimizer, trained exactly as the torch loop trains them.

    ``run_log`` (scratch.loop.RunLog) records every step, as the scratch and torch loops do.
    """

    def __init__(self, spec, epochs: int | None = None, callback=None, rule=None, n_rows: int = 0,
                 steps_per_epoch: int = 0):
        super().__init__()
        self.automatic_optimization = False
        self.spec = spec
        self.epochs = spec.train.epochs if epochs is None else epochs
        self.model = build(spec)
        self.loss_fn = build_loss(spec)
        self.named = scratch_named_parameters(self.model)
        self.epoch_callback = callback
        self.rule = rule
        self.n_rows, self.steps_per_epoch = n_rows, steps_per_epoch
        self.run_log = None
        self.result_path = None
        self.resume_record = None        # nnparity's record from the checkpoint resumed (on_load_checkpoint)
        self.position = (0, 0, 0)        # (epoch, batches of it done, steps done) after the last step
        reduction = spec.loss.reduction or _default_reduction(spec)
        self.mean_reduced = reduction == "mean"
        self.needs_closure = spec.optimizer.name in _closure_optimizers()

    def __setattr__(self, name, value):
        if name in _PLAIN_ATTRIBUTES:
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    def forward(self, x):
        return self.model(x)

    def configure_optimizers(self):
        return make_torch_optimizer(self.spec.optimizer, list(self.named.values()), seed=self.spec.seed,
                                    transposed=[name in self.model.transposed for name in self.named])

    # ----------------------------------------------------------------------------- the run

    def on_train_start(self) -> None:
        self.run_log = RunLog(self.spec, self.n_rows, self.steps_per_epoch, self.epochs, self.rule,
                              progress=False, callback=self.epoch_callback)
        self.world = self.trainer.world_size
        self.clip_norm, self.clip_value = self.spec.optimizer.clip_norm, self.spec.optimizer.clip_value
        self._step = 0
        self._epoch_rows_start = 0
        if self.resume_record is not None:
            self._resume(self.resume_record)
        self._last = time.perf_counter()

    # ----------------------------------------------------------------------- checkpoints

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Lightning saves the weights, optimizer state and loops; nnparity's record adds the rest."""
        log_state = self.run_log.get_state()
        _, extra = optimizer_to_common(self.optimizers().optimizer, self.named, self.model.transposed)
        epoch, batch, step = self.position
        checkpoint["nnparity"] = {"spec": self.spec.to_dict(), "epoch": epoch, "batch": batch, "step": step,
                                  "history": log_state.pop("history"), "epoch_sums": log_state,
                                  "optimizer_extra": extra, "stopped": self.stopped}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        record = checkpoint.get("nnparity")
        if record is None:
            raise SpecError("checkpoint", "this .ckpt holds no nnparity record; `nnparity convert` it with the spec")
        self.resume_record = record
        epoch, batch = record["epoch"], record["batch"]
        if batch >= self.steps_per_epoch:
            # Saved after an epoch's last step: Lightning restarts with the next epoch's batches
            # (they are served whole); that epoch's end runs in _resume.
            epoch, batch = epoch + 1, 0
        if self.trainer.datamodule is not None:
            self.trainer.datamodule.resume_at = (epoch, batch)

    def _resume(self, record: dict) -> None:
        """Continue the run's records and the optimizer's non-tensor state from the checkpoint."""
        self.run_log.set_state(dict(record["epoch_sums"], history=record["history"]))
        optimizer_from_common_extra(self.optimizers().optimizer, record["optimizer_extra"])
        self._step = record["step"]
        self.position = (record["epoch"], record["batch"], record["step"])
        self._epoch_rows_start = len(self.run_log.history.step_loss) - record["epoch_sums"]["steps"]
        if record["batch"] >= self.steps_per_epoch:
            # Saved after an epoch's last step: Lightning goes on with the next epoch without
            # running this one's end, so it runs here.
            self.on_train_epoch_end()

    @property
    def stopped(self) -> str | None:
        """Why the run stopped, once it has (None while it goes on)."""
        return self.run_log.stopped if getattr(self, "_finished", False) else None

    def _global(self, value: torch.Tensor) -> torch.Tensor:
        """The sum of ``value`` over all processes (itself on one process)."""
        if self.world == 1:
            return value
        return self.trainer.strategy.reduce(value.detach().clone(), reduce_op="sum")

    def training_step(self, batch, batch_idx):
        xb, yb, global_rows = batch
        opt = self.optimizers()
        self._step += 1
        opt.zero_grad()
        out = self.model(xb)
        loss_t = self.loss_fn(out, yb)
        correct = 0
        if self.world > 1:
            # This process's share of the global batch loss; DDP's gradient average over W
            # processes then gives the global batch's gradient (see the module docstring).
            share = loss_t * (xb.shape[0] / global_rows) if self.mean_reduced else loss_t
            # One all-reduce for the global batch's loss and its count of right predictions.
            with torch.no_grad():
                hits = count_correct(self.rule, out, self.targets_of(yb)) if self.rule else 0
                total = self._global(torch.stack([share.detach(), torch.as_tensor(hits, dtype=share.dtype,
                                                                                  device=share.device)]))
            loss, correct = total[0].item(), round(total[1].item())
        else:
            loss = loss_t.item()
        if not math.isfinite(loss):
            raise self._diverged("loss", loss, batch_idx)
        self.manual_backward(loss_t if self.world == 1 else share * self.world)
        params = list(self.named.values())
        grads = [p.grad for p in params if p.grad is not None]
        norm = torch.nn.utils.get_total_norm(grads).item() if grads else 0.0
        if not math.isfinite(norm):
            raise self._diverged("gradient norm", norm, batch_idx, grads=True)
        if self.rule is not None and self.world == 1:
            with torch.no_grad():
                correct = int(count_correct(self.rule, out, self.targets_of(yb)))
        stop = self.run_log.gradient_small(norm)
        if stop:
            self.trainer.should_stop = True
        else:
            if self.clip_norm is not None:
                self.clip_gradients(opt, gradient_clip_val=self.clip_norm, gradient_clip_algorithm="norm")
            if self.clip_value is not None:
                self.clip_gradients(opt, gradient_clip_val=self.clip_value, gradient_clip_algorithm="value")
            if self.needs_closure:
                opt.step(closure=self._closure(xb, yb, global_rows))
            else:
                opt.step()
        now = time.perf_counter()
        self.run_log.step(loss, norm, correct, global_rows, now - self._last)
        self._last = now
        self.position = (self.current_epoch, batch_idx + 1, self._step)

    def _closure(self, xb, yb, global_rows):
        """The loss of the global batch at the current parameters, without backward."""
        model, loss_fn = self.model, self.loss_fn
        if self.world == 1:
            def closure():
                with torch.no_grad():
                    return loss_fn(model(xb), yb)
            return closure
        scale = xb.shape[0] / global_rows if self.mean_reduced else 1.0

        def closure():
            with torch.no_grad():
                return self._global(loss_fn(model(xb), yb) * scale)
        return closure

    def targets_of(self, yb):
        """The batch's targets as the accuracy rule scores them (labels, per-step labels, or 0/1 booleans)."""
        if self.rule[0] == "tokens":
            return yb
        if self.rule[0] == "argmax":
            return yb if yb.dim() == 1 else yb.argmax(dim=1)
        return yb > 0.5

    def on_train_epoch_end(self) -> None:
        log = self.run_log
        first = self._epoch_rows_start
        if log.end_epoch():
            self.trainer.should_stop = True
        self._write_steps(first)
        self._epoch_rows_start = len(log.history.step_loss)
        self.position = (self.position[0] + 1, 0, self.position[2])

    def on_train_end(self) -> None:
        """Under DDP rank 0 saves the run, so that a ``ddp_spawn`` caller, whose copy of the
        module did not train, can read it back (train() does)."""
        if self.world > 1 and self.trainer.global_rank == 0 and self.result_path:
            log = self.run_log
            torch.save({"history": vars(log.history), "step_seconds": log.step_seconds, "stopped": log.stopped,
                        "seconds": log.elapsed(), "params": to_scratch(self.model),
                        "buffers": buffers_to_scratch(self.model)}, self.result_path)

    def _write_steps(self, first: int) -> None:
        """One CSVLogger row per step of the epoch just ended (rank 0 writes; the logger flushes
        every 100 rows and when training ends)."""
        logger = self.logger
        if logger is None or self.trainer.global_rank != 0:
            return
        h, seconds = self.run_log.history, self.run_log.step_seconds
        epoch = len(h.epoch_loss) - 1
        for i in range(first, len(h.step_loss)):
            logger.log_metrics({"epoch": epoch, "loss": h.step_loss[i], "grad_norm": h.grad_norm[i],
                                "step_seconds": seconds[i]}, step=i)

    def _diverged(self, what, value, batch_idx, grads=False):
        err = TrainingDiverged.diagnose(what, value, self.current_epoch + 1, self._step, batch_idx + 1,
                                        named_to_scratch(self.named, self.model.transposed, grads), self.run_log.history)
        if self.world > 1 and self.trainer.global_rank == 0 and self.result_path:
            torch.save({"error": [err.what, err.value, err.epoch, err.step, err.batch, err.parameter,
                                  str(err).split("; ", 1)[-1]]}, self.result_path)
        return err


# Lightning inspects training_step's signature at every step (does it take batch_idx?); a
# precomputed __signature__ makes that lookup cheap. The signature is the function's own.
SpecModule.training_step.__signature__ = inspect.signature(SpecModule.training_step)


def _default_reduction(spec) -> str:
    return LOSSES[spec.loss.name].reductions[0]


def _closure_optimizers():
    return CLOSURE_OPTIMIZERS


# --------------------------------------------------------------------------------------- trainer


class Float64Precision(DoublePrecision):
    """Lightning's "64-true" precision plugin (module in float64, default dtype float64 in the
    step), minus its per-step walk over the batch to cast inputs: the data module already made
    them float64."""

    def convert_input(self, data):
        return data


def make_trainer(spec, epochs: int | None = None, devices: int | str = 1, strategy: str = "auto",
                 num_nodes: int = 1, accelerator: str = "auto", log_dir: str | None = None,
                 progress: bool | None = None, callbacks=(), profiler=None, plugins=()) -> L.Trainer:
    """A Trainer for parity runs: deterministic, lean, reproducible.

    - max_epochs from ``epochs`` (default spec.train.epochs); stopping rules are the module's;
    - precision "64-true" for float64 specs ("32-true" for float32);
    - no sanity validation, no model summary, no checkpointing unless ``callbacks`` hold a
      ModelCheckpoint (``plugins``: e.g. AtomicCheckpointIO), no distributed sampler (the
      module's sampler shards the shared batch order itself);
    - the progress bar only when ``progress`` (None: when stderr is a terminal);
    - CSVLogger under ``log_dir`` (None: a fresh temporary directory), one row per step;
    - ``profiler``: Lightning's ("simple", "advanced" or a Profiler), None for none.
    """
    if strategy not in STRATEGIES:
        raise SpecError("strategy", f"unknown {strategy!r}; expected one of {', '.join(STRATEGIES)}")
    quiet_lightning()
    if progress is None:
        progress = sys.stderr.isatty()
    log_dir = tempfile.mkdtemp(prefix="nnparity-lightning-") if log_dir is None else str(log_dir)
    return L.Trainer(
        accelerator=accelerator,
        devices=devices,
        num_nodes=num_nodes,
        strategy=strategy,
        **({"plugins": [Float64Precision(), *plugins]} if spec.dtype == "float64"
           else {"precision": "32-true", "plugins": list(plugins)}),
        max_epochs=spec.train.epochs if epochs is None else epochs,
        deterministic=True,
        benchmark=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        enable_checkpointing=any(isinstance(c, ModelCheckpoint) for c in callbacks),
        enable_model_summary=False,
        enable_progress_bar=bool(progress),
        use_distributed_sampler=False,
        logger=CSVLogger(log_dir, name="", version=""),
        log_every_n_steps=1,
        default_root_dir=log_dir,
        callbacks=list(callbacks),
        profiler=profiler,
    )


def quiet_lightning() -> None:  # also run at import: DDP's spawned processes import this module
    """Silence Lightning's start-up banner lines (GPU available..., tips) and known-harmless warnings."""
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.pytorch.accelerators.cuda",
                 "lightning.fabric.utilities.rank_zero", "lightning.fabric.utilities.distributed"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*isinstance\\(treespec, LeafSpec\\).*")
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*`training_step` returned `None`.*")
    warnings.filterwarnings("ignore", message=".*Checkpoint directory .* exists and is not empty.*")
    # A checkpoint holds the state after the step (what resuming needs), as ModelCheckpoint warns.
    warnings.filterwarnings("ignore", message=".*ModelCheckpoint with manual optimization.*")


def train(spec, dataset=None, epochs: int | None = None, progress: bool | None = None, callback=None,
          devices: int | str = 1, strategy: str = "auto", num_nodes: int = 1, accelerator: str = "auto",
          log_dir: str | None = None, trainer_callbacks=(), profiler=None, checkpoints: dict | None = None):
    """Train the spec with Lightning; the same arguments and result as torch_ref.training.train.

    ``checkpoints``: {"dir": DIR, "every": N or None, "resume": a .ckpt path or None}: Lightning's
    ModelCheckpoint writes DIR/last.ckpt every N steps (None: default_every), the run writes it when
    it ends and on SIGINT/SIGTERM (then raises scratch.signals.Interrupted), and a resumed run
    starts from ``ckpt_path`` (read with weights_only=True).

    Under DDP every process returns the same TrainResult (the recorded losses are the global
    batches'); with ``strategy="ddp_spawn"`` the calling process gets rank 0's result.
    ``result.lightning`` holds the Trainer's timing of ``fit`` and where its log went.
    """
    quiet_lightning()
    dataset = load_dataset(spec) if dataset is None else dataset
    epochs = spec.train.epochs if epochs is None else epochs
    n = len(dataset.x_train)
    check_batch_sizes(spec, n)
    rule = accuracy_rule(spec, dataset.y_train)
    steps = len(batch_order(n, spec.train.batch_size, False, spec.seed, 0))
    module = SpecModule(spec, epochs, callback, rule, n, steps)
    data = SpecDataModule(spec, dataset)
    own_dir = log_dir is None
    log_dir = tempfile.mkdtemp(prefix="nnparity-lightning-") if own_dir else str(log_dir)
    signals, options = nullcontext(), {}
    if checkpoints is not None:
        signals = DeferredSignals()
        options = _checkpoint_options(checkpoints, steps, signals)
        trainer_callbacks = [*trainer_callbacks, *options.pop("callbacks")]
    try:
        with signals:
            result, trainer, fit_seconds = _fit(spec, module, data, epochs, log_dir, devices=devices,
                                                strategy=strategy, num_nodes=num_nodes, accelerator=accelerator,
                                                progress=progress, callbacks=trainer_callbacks, profiler=profiler,
                                                **options)
    finally:
        if own_dir:
            shutil.rmtree(log_dir, ignore_errors=True)
    if checkpoints is not None and signals.pending is not None:   # came after the last step: still an interrupt
        raise Interrupted(signals.pending, os.path.join(checkpoints["dir"], "last.ckpt"))
    check_final_parameters(result.params, len(result.history.epoch_loss), result.history)
    # Test loss and accuracy at the final parameters, as the torch loop measures them.
    result.test_loss, result.test_accuracy = evaluate(build(spec, result.params, result.buffers), build_loss(spec),
                                                      dataset, spec, rule)
    result.lightning = {"fit_seconds": fit_seconds, "world_size": trainer.world_size,
                        "global_rank": trainer.global_rank, "strategy": type(trainer.strategy).__name__,
                        "log_dir": None if own_dir else log_dir}
    return result


def _checkpoint_options(checkpoints: dict, steps_per_epoch: int, signals) -> dict:
    """The callbacks, plugin and ckpt_path that make a run write and resume checkpoints."""
    path = os.path.join(checkpoints["dir"], "last.ckpt")
    every = checkpoints.get("every") or default_every(steps_per_epoch)
    saver = ModelCheckpoint(dirpath=checkpoints["dir"], save_top_k=0, save_last=True, every_n_train_steps=every,
                            enable_version_counter=False)
    return {"callbacks": [saver, CheckpointOnSignal(path, signals)], "plugins": [AtomicCheckpointIO()],
            "ckpt_path": checkpoints.get("resume")}


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint files written atomically (temporary file, fsync, rename) with a
    digest of their content, and read with ``weights_only=True`` and checked against it."""

    def save_checkpoint(self, checkpoint, path, storage_options=None):
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        save_checked(checkpoint, path)

    def load_checkpoint(self, path, map_location=None, weights_only=None):
        return read_checked(path)


class CheckpointOnSignal(L.Callback):
    """Writes ``path`` when SIGINT or SIGTERM came during a step (``signals``: DeferredSignals), then
    stops the run with Interrupted; and writes it once more when the run ends."""

    def __init__(self, path: str, signals):
        self.path, self.signals = path, signals

    def on_train_start(self, trainer, pl_module):
        # The Trainer has just installed its SIGTERM handler; a SIGTERM it sees between our hooks
        # would end fit with SystemExit(None), exit 0 and no checkpoint of the last step.
        self.signals.reclaim()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if self.signals.pending is not None:
            trainer.save_checkpoint(self.path, weights_only=False)
            raise Interrupted(self.signals.pending, self.path)

    def on_train_end(self, trainer, pl_module):
        pl_module._finished = True
        trainer.save_checkpoint(self.path, weights_only=False)


def _fit(spec, module, data, epochs, log_dir, ckpt_path=None, **trainer_options):
    """Make the Trainer, fit, and return (TrainResult without test figures, trainer, fit seconds)."""
    deterministic = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    trainer = make_trainer(spec, epochs, log_dir=log_dir, **trainer_options)
    module.result_path = os.path.join(log_dir, "result.pt")
    if os.path.exists(module.result_path):
        os.remove(module.result_path)
    check_shards(len(data.dataset.x_train), spec.train.batch_size, trainer.world_size)  # before DDP starts
    t0 = time.perf_counter()
    try:
        trainer.fit(module, datamodule=data, ckpt_path=ckpt_path, weights_only=True if ckpt_path else None)
    except TrainingDiverged:
        raise
    except Exception:  # ddp_spawn wraps a worker's exception: re-raise ours
        saved = _read_result(module.result_path)
        if saved is not None and saved.get("error"):
            raise TrainingDiverged(*saved["error"]) from None
        raise
    finally:  # the Trainer switched torch's deterministic algorithms on, process-wide
        torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
    fit_seconds = time.perf_counter() - t0
    if module.run_log is None:  # ddp_spawn: the run happened in the workers; rank 0 saved it
        result = _result_from_saved(_read_result(module.result_path))
        os.remove(module.result_path)
    else:
        result = module.run_log.finish(to_scratch(module.model), seconds=module.run_log.elapsed(),
                                       buffers=buffers_to_scratch(module.model))
    return result, trainer, fit_seconds


def _read_result(path: str) -> dict | None:
    return torch.load(path, weights_only=False) if os.path.exists(path) else None


def _result_from_saved(saved: dict):
    if saved is None:
        raise RuntimeError("lightning: the training processes saved no result")
    return TrainResult(history=History(**saved["history"]), params=saved["params"], stopped=saved["stopped"],
                       seconds=saved["seconds"], step_seconds=saved["step_seconds"], buffers=saved.get("buffers", {}))


quiet_lightning()
