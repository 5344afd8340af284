"""The scratch training loop: epochs of mini-batches, history, stopping rules, divergence checks.

``train(spec, dataset=None, epochs=None, progress=None, callback=None, checkpoints=None, device=None)
-> TrainResult``

Each step, on the rows ``scratch.data.batch_order(n, batch_size, shuffle, seed, epoch)`` names
(the order every loop shares: scratch, torch_ref.training, Lightning):

1. forward and loss on the batch (recorded as the step's loss, *before* its update);
2. backward; the global gradient norm ‖g‖ = √Σ_p ‖g_p‖² (recorded, before clipping);
3. a NaN or inf loss or gradient raises TrainingDiverged naming the step and the parameter;
4. grad_tol: when ‖g‖ ≤ train.grad_tol the run stops here, without taking the step;
5. clipping (optimizer.clip_norm, then optimizer.clip_value), then ``optimizer.step(grads, closure)``
   where ``closure()`` is the loss on the same batch at the current parameters (given to the
   optimizers that use it: line search, random search).

After each epoch: loss_tol stops the run when the epoch loss (the mean of its step losses) is
≤ train.loss_tol; ``callback(epoch, history)`` runs and may return True to stop it.

Accuracy, where it applies (see ``accuracy_rule``), is counted from the same forward passes as
the losses: the epoch accuracy is the share of the epoch's predictions, made before each step,
that were right. Test loss and accuracy are measured once, at the final parameters, in eval mode
(batch normalization on its running statistics, no dropout); the steps run in train mode.

Devices. ``device`` (the spec's ``device``, or the argument) picks the array module
(scratch.device.array_module: NumPy on ``cpu``, CuPy on ``cuda``). The data move to the device
once, the network, loss and optimizer live there, and the parameters and history come back to
the host once, at the end. On NumPy each step's loss, gradient norm and hit count are read as
they are made (``HostSteps``). On a device a step keeps them as device values, and the epoch's
records come back in one transfer at its end (``DeviceSteps``): a NaN or inf is found there, and
TrainingDiverged still names the first bad step and carries the history before it (the steps
after it were computed and are dropped; the parameter it names is diagnosed from the arrays of
the epoch's end, where the NaN has usually spread). Two host reads per step remain by design,
where the spec asks for a decision at every step: ``train.grad_tol`` reads ‖g‖ after each
backward, and the closure optimizers (armijo, random_search) read the closure's losses to compare
them. On a device the step times measure the queueing of each step's work (the GPU runs
asynchronously); the read at each epoch's end waits for it.
"""
from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np

from scratch import checkpoint
from scratch.data import load_dataset
from scratch.device import array_module, host_copy, to_device, to_host
from scratch.loop import (CLOSURE_OPTIMIZERS, DeviceSteps, History, HostSteps, RunLog, TrainingDiverged, TrainResult,
                          accuracy_rule, accuracy_targets, check_batch_sizes, check_final_parameters, count_correct,
                          epoch_batches, run_epochs, scored_per_row, start_position)
from scratch.network import Network, build_loss
from scratch.optimizers import apply_clipping, global_norm, make_optimizer

__all__ = ["train", "History", "RunLog", "TrainResult", "TrainingDiverged", "epoch_batches"]

# ------------------------------------------------------------------------------------- the loop


@dataclass
class _Run:
    """The live state of one scratch training run: the network, its loss and optimizer, the log,
    and where its steps are recorded (HostSteps on NumPy, DeviceSteps on a device)."""

    spec: object
    net: Network
    loss_fn: object
    optimizer: object
    rule: str | None
    log: RunLog
    steps: HostSteps | None = None

    @property
    def params(self) -> dict:
        return self.net.parameters()

    @property
    def xp(self):
        """The array module the run's arrays live in (NumPy, CuPy or the test suite's strict one)."""
        return self.net.xp


def _start(spec, xp, n_rows: int, steps_per_epoch: int, epochs: int, y, progress, callback) -> _Run:
    net = Network.from_spec(spec, xp=xp)
    optimizer = make_optimizer(spec.optimizer, net.parameters(), seed=spec.seed)
    rule = accuracy_rule(spec, y)
    log = RunLog(spec, n_rows, steps_per_epoch, epochs, rule, progress, callback)
    run = _Run(spec, net, build_loss(spec, xp=xp), optimizer, rule, log)
    run.steps = _steps(run)
    return run


def _steps(run: _Run) -> HostSteps:
    """Where the run's steps go: read at once on NumPy, read once per epoch on a device."""
    xp = run.xp

    def arrays(what: str) -> dict:   # a diverged step's parameters (loss) or gradients, on the host
        live = run.params if what == "loss" else run.net.gradients()
        return {name: to_host(a, xp) for name, a in live.items()}

    if xp is np:
        return HostSteps(run.log, arrays)
    return DeviceSteps(run.log, arrays, stack=lambda values: xp.stack(values).astype(xp.float64),
                       host=lambda a: to_host(a, xp))


def _train_step(run: _Run, xb, yb, targets, at: tuple[int, int, int]) -> bool:
    """One step on one batch: forward, loss, backward, clipping, update. True: stop (gradient small).
    ``at``: (epoch, step, batch), counted from 1, for a divergence's message."""
    t0 = time.perf_counter()
    net, loss_fn, steps = run.net, run.loss_fn, run.steps
    out = net.forward(xb)
    loss = loss_fn.forward(out, yb)
    steps.check("loss", loss, at)
    net.backward(loss_fn.backward())
    grads = net.gradients()
    norm = global_norm(grads)
    steps.check("gradient norm", norm, at)
    correct = count_correct(run.rule, out, targets) if run.rule else None
    # grad_tol decides at every step: a host read of the norm, by design (only when it is set)
    stop = run.log.grad_tol is not None and run.log.gradient_small(steps.read(norm))
    if not stop:
        _update(run, grads, norm, xb, yb)
    steps.add(loss, norm, correct, out.shape[0], time.perf_counter() - t0, at)
    return stop


def _update(run: _Run, grads: dict, norm, xb, yb) -> None:
    """Clipping as the spec asks (clip_norm, then clip_value), then the optimizer's step."""
    opt = run.spec.optimizer
    apply_clipping(opt, grads, norm)
    if opt.name in CLOSURE_OPTIMIZERS:
        # line search and random search read each loss the closure gives on the host, to compare
        # them: the optimizer's reads, by design
        run.optimizer.step(grads, closure=lambda: run.loss_fn.forward(run.net.forward(xb), yb))
    else:
        run.optimizer.step(grads)


def _test_metrics(run: _Run, dataset) -> tuple[float | None, float | None]:
    """(test loss, test accuracy) at the final weights; None where there is no test split or rule."""
    if dataset.x_test is None or not len(dataset.x_test):
        return None, None
    xp = run.xp
    out = run.net.eval().forward(to_device(dataset.x_test, xp))
    run.net.train()
    test_loss = float(to_host(run.loss_fn.forward(out, to_device(dataset.y_test, xp)), xp))
    if run.rule is None:
        return test_loss, None
    scored = out.shape[0] * scored_per_row(run.rule, run.spec.outputs)
    targets = to_device(accuracy_targets(run.rule, dataset.y_test), xp)
    return test_loss, int(to_host(count_correct(run.rule, out, targets), xp)) / scored


def train(spec, dataset=None, epochs: int | None = None, progress: bool | None = None,
          callback=None, checkpoints=None, device: str | None = None) -> TrainResult:
    """Train the scratch network the spec describes; return its history and final parameters.

    Args:
        spec: the Spec (its optimizer, train and data tables drive the run).
        dataset: a scratch.data.Dataset; default ``load_dataset(spec)``.
        epochs: overrides spec.train.epochs.
        progress: a tqdm bar (shown after 2 s); None: only when stderr is a terminal.
        callback: ``callback(epochs_done, history)`` after each epoch; True stops the run.
        checkpoints: a scratch.checkpoint.Checkpointer: resume from its checkpoint, write one every
            N steps, when the run ends, and on SIGINT/SIGTERM (then raise Interrupted).
        device: ``cpu`` (NumPy) or ``cuda`` (CuPy), or an array module itself (the test suite's
            strict stand-in for CuPy); default: the spec's ``device``. The result's parameters and
            history are on the host (NumPy arrays, Python floats) either way.

    Raises:
        TrainingDiverged: the loss or a gradient became NaN or inf (names step and parameter).
        scratch.signals.Interrupted: a signal stopped a run that writes checkpoints (its ``path``:
            the checkpoint written before it stopped).
        SpecError: naming ``device``, when the device cannot be had (no CuPy, no CUDA device).
    """
    dataset = load_dataset(spec) if dataset is None else dataset
    epochs = spec.train.epochs if epochs is None else epochs
    device = spec.device if device is None else device
    xp = array_module(device) if isinstance(device, str) else device
    check_batch_sizes(spec, len(dataset.x_train))
    x, y = to_device(dataset.x_train, xp), to_device(dataset.y_train, xp)   # the data's one move
    batches = epoch_batches(len(x), spec, 0)
    run = _start(spec, xp, len(x), len(batches), epochs, dataset.y_train, progress, callback)
    targets = None if run.rule is None else to_device(accuracy_targets(run.rule, dataset.y_train), xp)
    position = start_position(run, checkpoints, epochs, checkpoint.restore)
    # Overflow and invalid operations are looked for explicitly (TrainingDiverged), not warned about.
    with np.errstate(over="ignore", invalid="ignore"), (checkpoints.signals if checkpoints else nullcontext()):
        epoch, step = _loop(run, x, y, targets, epochs, position, checkpoints)
        seconds = run.log.elapsed()
        final = {name: host_copy(p, xp) for name, p in run.params.items()}   # the parameters' one move back
        buffers = {name: host_copy(b, xp) for name, b in run.net.buffers().items()}
        check_final_parameters(final, len(run.log.history.epoch_loss), run.log.history)
        if checkpoints is not None:
            checkpoints.finish(checkpoint.capture(run, epoch, 0, step, stopped=run.log.stopped))
        test_loss, test_accuracy = _test_metrics(run, dataset)
    return run.log.finish(final, test_loss, test_accuracy, seconds, buffers)


def _device_batches(batches: list, xp) -> list:
    """An epoch's batches for xp's device: slices as they are; index arrays moved in one transfer
    (views of one device array), not one per step."""
    if xp is np or not batches or isinstance(batches[0], slice):
        return batches
    rows = to_device(np.concatenate(batches), xp)
    ends = np.cumsum([len(b) for b in batches]).tolist()
    return [rows[start:end] for start, end in zip([0] + ends[:-1], ends)]


def _loop(run: _Run, x, y, targets, epochs: int, position, checkpoints) -> tuple[int, int]:
    """The shared epoch loop (scratch.loop.run_epochs) with the scratch step on xp's arrays."""
    def step(rows, at):
        return _train_step(run, x[rows], y[rows], None if targets is None else targets[rows], at)

    return run_epochs(run, epochs, position, checkpoints,
                      batches_of=lambda epoch: _device_batches(epoch_batches(len(x), run.spec, epoch), run.xp),
                      step=step, capture=lambda epoch, batch, done: checkpoint.capture(run, epoch, batch, done))
