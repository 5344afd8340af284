"""The plain torch training loop: the scratch loop's twin, step for step.

``train(spec, dataset=None, epochs=None, progress=None, callback=None, device=None, checkpoints=None)
-> TrainResult``

Same batches (scratch.data.batch_order), same order of operations and the same records
(History, TrainResult, RunLog: the bookkeeping of scratch.loop, which every loop shares), but the maths is
torch's: torch_ref.model.build (nn.Linear + torch activations), build_loss (torch's losses),
autograd for the gradients, torch.nn.utils.get_total_norm, clipping through torch_ref.optimizers.apply_clipping,
and the torch optimizer from torch_ref.optimizers.make_torch_optimizer.

Per step: zero_grad; forward and loss (recorded before the update); backward; the global
gradient norm (recorded before clipping); NaN/inf -> TrainingDiverged; grad_tol stops without
stepping; clip_grad_norm_, then clip_grad_value_; ``optimizer.step()`` (``step(closure)`` for the
optimizers that evaluate it). Data tensors are made once; batches are tensor indexing.

``device`` (default: the spec's ``device``): where the model and the data live, moved there once.
On the CPU each step's loss and norm are read as they are made, as they always were
(scratch.loop.HostSteps); on CUDA they stay on the device and come back once per epoch
(scratch.loop.DeviceSteps), as in the scratch loop, with the same two per-step host reads
by design: ``train.grad_tol`` and the closure optimizers.
"""
from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn.utils import get_total_norm

from scratch.data import load_dataset
from scratch.loop import (CLOSURE_OPTIMIZERS, DeviceSteps, History, HostSteps, RunLog, TrainingDiverged, TrainResult,
                          accuracy_rule, accuracy_targets, check_batch_sizes, check_final_parameters, count_correct,
                          epoch_batches, run_epochs, scored_per_row, start_position)
from torch_ref.model import (TORCH_DTYPES, build, buffers_to_scratch, build_loss, named_to_scratch,
                             scratch_named_parameters, to_scratch)
from torch_ref import checkpoint
from torch_ref.optimizers import apply_clipping, make_torch_optimizer

__all__ = ["train", "History", "TrainResult", "TrainingDiverged"]


def as_tensor(a, dtype: torch.dtype, device=None) -> torch.Tensor:
    """A data array as a tensor: integer class labels as long, booleans as bool, floats in ``dtype``."""
    a = np.asarray(a)
    if a.dtype.kind == "b":
        return torch.as_tensor(a, device=device)
    if a.dtype.kind in "iu":
        return torch.as_tensor(a, dtype=torch.long, device=device)
    return torch.as_tensor(a, dtype=dtype, device=device)


def evaluate(model, loss_fn, dataset, spec, rule, device=None) -> tuple[float | None, float | None]:
    """Test loss and accuracy (None where they do not apply) of ``model`` on the dataset's test rows,
    in eval mode (the model is left in the mode it was in)."""
    if dataset.x_test is None or not len(dataset.x_test):
        return None, None
    dtype = TORCH_DTYPES[spec.dtype]
    was_training = model.training
    model.eval()
    try:
        return _evaluate(model, loss_fn, dataset, spec, rule, device, dtype)
    finally:
        model.train(was_training)


def _evaluate(model, loss_fn, dataset, spec, rule, device, dtype) -> tuple[float | None, float | None]:
    with torch.no_grad():
        out = model(as_tensor(dataset.x_test, dtype, device))
        test_loss = loss_fn(out, as_tensor(dataset.y_test, dtype, device)).item()
        if rule is None:
            return test_loss, None
        hits = count_correct(rule, out, as_tensor(accuracy_targets(rule, dataset.y_test), dtype, device))
        return test_loss, int(hits) / (out.shape[0] * scored_per_row(rule, spec.outputs))


@dataclass
class _Run:
    """The live state of one torch training run: the model, its loss and optimizer, the log, and
    where its steps are recorded (HostSteps on the CPU, DeviceSteps on CUDA)."""

    spec: object
    model: torch.nn.Module
    loss_fn: object
    named: dict
    optimizer: object
    rule: str | None
    log: RunLog
    steps: HostSteps | None = None


def _steps(run: _Run, device: torch.device) -> HostSteps:
    """Where the run's steps go: read at once on the CPU, read once per epoch on CUDA."""
    def arrays(what: str) -> dict:   # a diverged step's parameters (loss) or gradients, on the host
        return named_to_scratch(run.named, run.model.transposed, grads=what != "loss")

    if device.type == "cpu":
        return HostSteps(run.log, arrays)
    return DeviceSteps(run.log, arrays, stack=lambda values: torch.stack(values).double(),
                       host=lambda t: t.cpu().numpy())


def _train_step(run: _Run, xb, yb, targets, at: tuple[int, int, int]) -> bool:
    """One step on one batch: forward, loss, backward, clipping, update. True: stop (gradient small).
    ``at``: (epoch, step, batch), counted from 1, for a divergence's message."""
    t0 = time.perf_counter()
    steps = run.steps
    run.optimizer.zero_grad()
    out = run.model(xb)
    loss = run.loss_fn(out, yb)
    steps.check("loss", loss.detach(), at)
    loss.backward()
    grads = [p.grad for p in run.named.values() if p.grad is not None]
    norm = get_total_norm(grads) if grads else torch.zeros((), device=out.device)
    steps.check("gradient norm", norm, at)
    with torch.no_grad():
        correct = count_correct(run.rule, out, targets) if run.rule else None
    # grad_tol decides at every step: a host read of the norm, by design (only when it is set)
    stop = run.log.grad_tol is not None and run.log.gradient_small(steps.read(norm))
    if not stop:
        _update(run, norm, xb, yb)
    steps.add(loss.detach(), norm, correct, out.shape[0], time.perf_counter() - t0, at)
    return stop


def _update(run: _Run, norm, xb, yb) -> None:
    """Clipping as the spec asks (clip_norm, then clip_value), then the optimizer's step."""
    opt = run.spec.optimizer
    apply_clipping(opt, run.named.values(), norm)
    if opt.name in CLOSURE_OPTIMIZERS:
        def closure():
            with torch.no_grad():
                return run.loss_fn(run.model(xb), yb)
        run.optimizer.step(closure)
    else:
        run.optimizer.step()


def train(spec, dataset=None, epochs: int | None = None, progress: bool | None = None,
          callback=None, device=None, checkpoints=None) -> TrainResult:
    """Train the torch twin of the spec; the same arguments and result as scratch.training.train.

    ``device``: where the model and data live ("cpu", "cuda"; default: the spec's ``device``). The
    final parameters come back as NumPy arrays in scratch's (inputs, units) layout. ``checkpoints``:
    a scratch.checkpoint.Checkpointer, as for the scratch loop (the same file format).
    """
    dataset = load_dataset(spec) if dataset is None else dataset
    epochs = spec.train.epochs if epochs is None else epochs
    device = torch.device(spec.device if device is None else device)
    dtype = TORCH_DTYPES[spec.dtype]
    check_batch_sizes(spec, len(dataset.x_train))
    model = build(spec).to(device)
    named = scratch_named_parameters(model)
    optimizer = make_torch_optimizer(spec.optimizer, list(named.values()), seed=spec.seed,
                                     transposed=[name in model.transposed for name in named])
    x = as_tensor(dataset.x_train, dtype, device)
    y = as_tensor(dataset.y_train, dtype, device)
    rule = accuracy_rule(spec, dataset.y_train)
    targets = None if rule is None else as_tensor(accuracy_targets(rule, dataset.y_train), dtype, device)
    log = RunLog(spec, len(x), len(epoch_batches(len(x), spec, 0)), epochs, rule, progress, callback)
    run = _Run(spec, model, build_loss(spec), named, optimizer, rule, log)
    run.steps = _steps(run, device)
    position = start_position(run, checkpoints, epochs, checkpoint.restore)
    with checkpoints.signals if checkpoints is not None else nullcontext():
        epoch, step = _loop(run, x, y, targets, epochs, position, checkpoints)
        seconds = log.elapsed()
        final = to_scratch(model)
        check_final_parameters(final, len(log.history.epoch_loss), log.history)
        if checkpoints is not None:
            checkpoints.finish(checkpoint.capture(run, epoch, 0, step, stopped=log.stopped))
    test_loss, test_accuracy = evaluate(model, run.loss_fn, dataset, spec, rule, device)
    return log.finish(final, test_loss, test_accuracy, seconds, buffers_to_scratch(model))


def _loop(run: _Run, x, y, targets, epochs: int, position, checkpoints) -> tuple[int, int]:
    """The shared epoch loop (scratch.loop.run_epochs) with the torch step on tensors."""
    def batches_of(epoch):
        batches = epoch_batches(len(x), run.spec, epoch)
        return [b if isinstance(b, slice) else torch.as_tensor(b, device=x.device) for b in batches]

    def step(rows, at):
        return _train_step(run, x[rows], y[rows], None if targets is None else targets[rows], at)

    return run_epochs(run, epochs, position, checkpoints, batches_of, step,
                      capture=lambda epoch, batch, done: checkpoint.capture(run, epoch, batch, done))
