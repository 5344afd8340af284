"""The plain torch training loop: the scratch loop's twin, step for step.

``train(spec, dataset=None, epochs=None, progress=None, callback=None, device=None) -> TrainResult``

Same batches (scratch.data.batch_order), same order of operations and the same records
(History, TrainResult, RunLog: plain bookkeeping shared with scratch.training), but the maths is
torch's: torch_ref.model.build (nn.Linear + torch activations), build_loss (torch's losses),
autograd for the gradients, torch.nn.utils.get_total_norm / clip_grad_norm_ / clip_grad_value_,
and the torch optimizer from torch_ref.optimizers.make_torch_optimizer.

Per step: zero_grad; forward and loss (recorded before the update); backward; the global
gradient norm (recorded before clipping); NaN/inf -> TrainingDiverged; grad_tol stops without
stepping; clip_grad_norm_, then clip_grad_value_; ``optimizer.step()`` (``step(closure)`` for the
optimizers that evaluate it). Data tensors are made once; batches are tensor indexing.
"""
from __future__ import annotations

import math
import time

import numpy as np
import torch
from torch.nn.utils import clip_grad_norm_, clip_grad_value_, get_total_norm

from scratch.data import load_dataset
from scratch.training import (CLOSURE_OPTIMIZERS, History, RunLog, TrainingDiverged, TrainResult,
                              accuracy_rule, accuracy_targets, check_final_parameters, epoch_batches,
                              scored_per_row)
from torch_ref.model import (TORCH_DTYPES, build, build_loss, named_to_scratch, scratch_named_parameters,
                             to_scratch)
from torch_ref.optimizers import make_torch_optimizer

__all__ = ["train", "History", "TrainResult", "TrainingDiverged"]


def as_tensor(a, dtype: torch.dtype, device=None) -> torch.Tensor:
    """A data array as a tensor: integer class labels as long, booleans as bool, floats in ``dtype``."""
    a = np.asarray(a)
    if a.dtype.kind == "b":
        return torch.as_tensor(a, device=device)
    if a.dtype.kind in "iu":
        return torch.as_tensor(a, dtype=torch.long, device=device)
    return torch.as_tensor(a, dtype=dtype, device=device)


def count_correct(rule, out, targets) -> torch.Tensor:
    """Hits under scratch.training's accuracy rule, as a 0-d tensor (no host sync until asked)."""
    if rule[0] == "argmax":
        return (out.argmax(dim=1) == targets).sum()
    return ((out > rule[1]) == targets).sum()


def evaluate(model, loss_fn, dataset, spec, rule, device=None) -> tuple[float | None, float | None]:
    """Test loss and accuracy (None where they do not apply) of ``model`` on the dataset's test rows."""
    if dataset.x_test is None or not len(dataset.x_test):
        return None, None
    dtype = TORCH_DTYPES[spec.dtype]
    with torch.no_grad():
        out = model(as_tensor(dataset.x_test, dtype, device))
        test_loss = loss_fn(out, as_tensor(dataset.y_test, dtype, device)).item()
        if rule is None:
            return test_loss, None
        hits = count_correct(rule, out, as_tensor(accuracy_targets(rule, dataset.y_test), dtype, device))
        return test_loss, int(hits) / (out.shape[0] * scored_per_row(rule, spec.outputs))


def train(spec, dataset=None, epochs: int | None = None, progress: bool | None = None,
          callback=None, device=None) -> TrainResult:
    """Train the torch twin of the spec; the same arguments and result as scratch.training.train.

    ``device``: where the model and data live (default CPU). The final parameters come back as
    NumPy arrays in scratch's (inputs, units) layout.
    """
    dataset = load_dataset(spec) if dataset is None else dataset
    epochs = spec.train.epochs if epochs is None else epochs
    device = torch.device("cpu" if device is None else device)
    dtype = TORCH_DTYPES[spec.dtype]
    model = build(spec).to(device)
    loss_fn = build_loss(spec)
    named = scratch_named_parameters(model)
    params = list(named.values())
    optimizer = make_torch_optimizer(spec.optimizer, params, seed=spec.seed)
    needs_closure = spec.optimizer.name in CLOSURE_OPTIMIZERS
    clip_norm, clip_value = spec.optimizer.clip_norm, spec.optimizer.clip_value

    x = as_tensor(dataset.x_train, dtype, device)
    y = as_tensor(dataset.y_train, dtype, device)
    n = x.shape[0]
    rule = accuracy_rule(spec, dataset.y_train)
    targets = None if rule is None else as_tensor(accuracy_targets(rule, dataset.y_train), dtype, device)

    def torch_batches(epoch):
        batches = epoch_batches(n, spec, epoch)
        return [b if isinstance(b, slice) else torch.as_tensor(b, device=device) for b in batches]

    batches = torch_batches(0)
    log = RunLog(spec, n, len(batches), epochs, rule, progress, callback)
    step = 0
    clock = time.perf_counter

    for epoch in range(epochs):
        if spec.train.shuffle and epoch:
            batches = torch_batches(epoch)
        for b, rows in enumerate(batches):
            t0 = clock()
            step += 1
            xb, yb = x[rows], y[rows]
            optimizer.zero_grad()
            out = model(xb)
            loss_t = loss_fn(out, yb)
            loss = loss_t.item()
            if not math.isfinite(loss):
                raise TrainingDiverged.diagnose("loss", loss, epoch + 1, step, b + 1, named_to_scratch(named),
                                                log.history)
            loss_t.backward()
            grads = [p.grad for p in params if p.grad is not None]
            norm = get_total_norm(grads).item() if grads else 0.0
            if not math.isfinite(norm):
                raise TrainingDiverged.diagnose("gradient norm", norm, epoch + 1, step, b + 1,
                                                named_to_scratch(named, grads=True), log.history)
            with torch.no_grad():
                correct = int(count_correct(rule, out, targets[rows])) if rule else 0
            stop = log.gradient_small(norm)
            if not stop:
                if clip_norm is not None:
                    clip_grad_norm_(params, clip_norm)
                if clip_value is not None:
                    clip_grad_value_(params, clip_value)
                if needs_closure:
                    def closure(xb=xb, yb=yb):
                        with torch.no_grad():
                            return loss_fn(model(xb), yb)
                    optimizer.step(closure)
                else:
                    optimizer.step()
            log.step(loss, norm, correct, out.shape[0], clock() - t0)
            if stop:
                break
        if log.end_epoch():
            break
    seconds = log.elapsed()

    final = to_scratch(model)
    check_final_parameters(final, len(log.history.epoch_loss), log.history)
    test_loss, test_accuracy = evaluate(model, loss_fn, dataset, spec, rule, device)
    return log.finish(final, test_loss, test_accuracy, seconds)
