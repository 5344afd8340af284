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
that were right. Test loss and accuracy are measured once, at the final parameters.

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

import math
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass, field

import numpy as np

from scratch import checkpoint
from scratch.data import CLASS_LOSSES, batch_order, load_dataset
from scratch.device import array_module, host_copy, to_device, to_host
from scratch.network import Network, build_loss
from scratch.optimizers import apply_clipping, global_norm, make_optimizer

# Optimizers whose step evaluates closure() (the others would spend a forward pass on it).
CLOSURE_OPTIMIZERS = ("armijo", "random_search")


@dataclass
class History:
    """What a training run records. Lists are per optimizer step or per epoch."""

    step_loss: list[float] = field(default_factory=list)     # loss of each mini-batch, before its step
    epoch_loss: list[float] = field(default_factory=list)    # mean of the epoch's step losses
    epoch_accuracy: list[float] = field(default_factory=list)  # share of the epoch's predictions (made
    #                                                            before each step) that were right, if it applies
    grad_norm: list[float] = field(default_factory=list)     # global gradient norm of each step (before clipping)


@dataclass
class TrainResult:
    """The outcome of a run: history, final parameters in scratch layout, and timings."""

    history: History
    params: dict                      # name -> ndarray, (inputs, units) layout
    stopped: str = "epochs"           # epochs | loss_tol | grad_tol | callback
    seconds: float = 0.0              # wall time of the whole loop (test evaluation excluded)
    step_seconds: list[float] = field(default_factory=list)   # wall time of each step
    test_accuracy: float | None = None
    test_loss: float | None = None


class TrainingDiverged(ValueError):
    """The loss or a gradient became NaN or inf. ``epoch``, ``step`` and ``batch`` count from 1
    (``step`` over the whole run, ``batch`` within the epoch); ``parameter`` names the culprit;
    ``history`` holds what the run recorded before it (the steps before the failing one)."""

    def __init__(self, what: str, value: float, epoch: int, step: int, batch: int,
                 parameter: str | None, detail: str, history: History | None = None):
        self.what, self.value = what, value
        self.epoch, self.step, self.batch, self.parameter = epoch, step, batch, parameter
        self.history = history
        where = f"step {step} (epoch {epoch}, batch {batch})" if step else f"the end of epoch {epoch}"
        super().__init__(f"training diverged at {where}: {what} is {value}; {detail}")

    @classmethod
    def diagnose(cls, what: str, value: float, epoch: int, step: int, batch: int,
                 arrays: dict, history: History | None = None) -> "TrainingDiverged":
        """Name the parameter at fault among ``arrays`` (name -> ndarray: the parameters when the
        loss diverged, the gradients when the gradient norm did): the first holding a NaN or inf,
        else the one with the largest magnitude."""
        noun = "gradient of " if what == "gradient norm" else ""
        for name, a in arrays.items():
            bad = ~np.isfinite(a)
            if bad.any():
                first = a.reshape(-1)[int(np.argmax(bad.reshape(-1)))]
                return cls(what, value, epoch, step, batch, name, f"{noun}{name} holds {first}", history)
        if not arrays:
            return cls(what, value, epoch, step, batch, None, "no parameters", history)
        name, peak = max(((n, float(np.max(np.abs(a)))) for n, a in arrays.items() if a.size),
                         key=lambda item: item[1])
        kind = "gradients" if noun else "parameters"
        return cls(what, value, epoch, step, batch, name,
                   f"the {kind} are finite, the largest being in {noun}{name} (|{peak:.3g}|)", history)


def check_final_parameters(params: dict, epoch: int, history: History | None = None) -> None:
    """The last step is followed by no loss to catch a NaN or inf it made: look at the parameters."""
    for name, p in params.items():
        bad = ~np.isfinite(p)
        if bad.any():
            value = float(p.reshape(-1)[int(np.argmax(bad.reshape(-1)))])
            raise TrainingDiverged(f"parameter {name}", value, epoch, 0, 0, name,
                                   f"the last step left {name} non-finite", history)


# ------------------------------------------------------------------------------------ accuracy


def accuracy_rule(spec, y) -> tuple[str, float] | None:
    """Which accuracy applies to the spec's outputs and the targets ``y``, or None.

    - ("argmax", 0): class-index targets, the cross-entropies, or a softmax output layer:
      the predicted class is the row's argmax, the true one the label (or the target row's argmax);
    - ("threshold", t): 0/1 targets of bce (t = 0.5 on probabilities), bce_logits (t = 0 on
      logits), or of any loss on a sigmoid output layer (t = 0.5): the prediction is output > t,
      scored element by element;
    - None: regression.
    """
    y = np.asarray(y)
    loss, activation = spec.loss.name, spec.layers[-1].activation
    if y.ndim == 1 or ((loss in CLASS_LOSSES or activation == "softmax") and spec.outputs > 1):
        return ("argmax", 0.0)
    if not np.all((y == 0) | (y == 1)):
        return None
    if loss == "bce_logits":
        return ("threshold", 0.0)
    if loss == "bce" or activation == "sigmoid":
        return ("threshold", 0.5)
    return None


def accuracy_targets(rule, y):
    """What predictions are scored against: class labels (argmax), 0/1 booleans (threshold)."""
    if rule is None:
        return None
    y = np.asarray(y)
    if rule[0] == "argmax":
        return y if y.ndim == 1 else y.argmax(axis=1)
    return y > 0.5


def count_correct(rule, out, targets):
    """How many of ``out``'s predictions match ``targets`` (rows for argmax, elements for threshold),
    as a 0-d integer array on out's device (``int()`` of it is a host read)."""
    if rule[0] == "argmax":
        return (out.argmax(axis=1) == targets).sum()
    return ((out > rule[1]) == targets).sum()


def scored_per_row(rule, outputs: int) -> int:
    """Predictions scored per row: one for argmax, one per output for threshold."""
    return 1 if rule[0] == "argmax" else outputs


# -------------------------------------------------------------------------------- bookkeeping


class RunLog:
    """Bookkeeping every loop shares (scratch, torch): history, per-epoch sums, stopping rules,
    timings and the progress bar. Plain Python, no maths: the loops call it once per step and
    once per epoch."""

    def __init__(self, spec, n_rows: int, steps_per_epoch: int, epochs: int, rule,
                 progress: bool | None = None, callback=None):
        self.history = History()
        self.step_seconds: list[float] = []
        self.loss_tol = spec.train.loss_tol
        self.grad_tol = spec.train.grad_tol
        self.callback = callback
        self.rule = rule
        self.per_row = scored_per_row(rule, spec.outputs) if rule else 0
        self.epochs = epochs
        self.stopped = "epochs"
        self.bar = None
        if progress is None:
            progress = sys.stderr.isatty()
        if progress:
            from tqdm import tqdm

            # delay: the bar shows only for runs longer than a couple of seconds
            self.bar = tqdm(total=epochs * steps_per_epoch, unit="step", delay=2.0, leave=False,
                            dynamic_ncols=True, file=sys.stderr)
        self._epoch_loss = 0.0
        self._epoch_steps = 0
        self._correct = 0
        self._scored = 0
        self._start = time.perf_counter()

    def step(self, loss: float, grad_norm: float, correct: int, rows: int, seconds: float) -> None:
        """Record one step (its loss before the update, gradient norm, correct predictions)."""
        self.history.step_loss.append(loss)
        self.history.grad_norm.append(grad_norm)
        self.step_seconds.append(seconds)
        self._epoch_loss += loss
        self._epoch_steps += 1
        self._correct += correct
        self._scored += rows * self.per_row
        if self.bar is not None:
            self.bar.update()

    def gradient_small(self, grad_norm: float) -> bool:
        """grad_tol: True (and the run stops, without stepping) when ‖g‖ ≤ grad_tol."""
        if self.grad_tol is not None and grad_norm <= self.grad_tol:
            self.stopped = "grad_tol"
            return True
        return False

    def end_epoch(self) -> bool:
        """Close the epoch's sums; True when a stopping rule (loss_tol, the callback) ends the run."""
        if not self._epoch_steps:
            return self.stopped != "epochs"
        loss = self._epoch_loss / self._epoch_steps
        self.history.epoch_loss.append(loss)
        if self.rule is not None:
            self.history.epoch_accuracy.append(self._correct / self._scored)
        self._epoch_loss, self._epoch_steps, self._correct, self._scored = 0.0, 0, 0, 0
        if self.bar is not None:
            self.bar.set_postfix_str(f"loss={loss:.4g}", refresh=False)
        if self.stopped != "epochs":          # grad_tol already ended the run mid-epoch
            return True
        if self.loss_tol is not None and loss <= self.loss_tol:
            self.stopped = "loss_tol"
            return True
        if self.callback is not None and self.callback(len(self.history.epoch_loss), self.history):
            self.stopped = "callback"
            return True
        return False

    def finish(self, params: dict, test_loss=None, test_accuracy=None, seconds=None) -> TrainResult:
        if self.bar is not None:
            self.bar.close()
        return TrainResult(history=self.history, params=params, stopped=self.stopped,
                           seconds=time.perf_counter() - self._start if seconds is None else seconds,
                           step_seconds=self.step_seconds, test_accuracy=test_accuracy, test_loss=test_loss)

    def elapsed(self) -> float:
        return time.perf_counter() - self._start

    def get_state(self) -> dict:
        """The history (copies), step timings and the open epoch's sums: what a checkpoint keeps."""
        state = {f: list(v) for f, v in vars(self.history).items()}
        return {"history": dict(state, step_seconds=list(self.step_seconds)), "loss": self._epoch_loss,
                "steps": self._epoch_steps, "correct": self._correct, "scored": self._scored}

    def set_state(self, state: dict) -> None:
        """Continue from get_state's record (as a checkpoint holds it)."""
        history = dict(state["history"])
        self.step_seconds = [float(s) for s in history.pop("step_seconds", [])]
        self.history = History(**{f: [float(v) for v in history.get(f, [])] for f in vars(History())})
        self._epoch_loss, self._epoch_steps = float(state["loss"]), int(state["steps"])
        self._correct, self._scored = int(state["correct"]), int(state["scored"])
        if self.bar is not None:
            self.bar.update(len(self.history.step_loss))


class HostSteps:
    """Where a loop's steps go on the host (NumPy, torch on the CPU): each step's loss, gradient
    norm and hit count are read as they are made, and a NaN or inf stops the run at once.

    ``arrays(what)`` gives the arrays a divergence is diagnosed from (name -> host ndarray): the
    parameters for ``what == "loss"``, the gradients for ``"gradient norm"``."""

    def __init__(self, log: RunLog, arrays):
        self.log, self.arrays = log, arrays

    def check(self, what: str, value, at: tuple[int, int, int]) -> None:
        """TrainingDiverged if ``value`` (the loss or gradient norm of the step at (epoch, step,
        batch)) is NaN or inf."""
        value = float(value)
        if not math.isfinite(value):
            raise TrainingDiverged.diagnose(what, value, *at, self.arrays(what), self.log.history)

    def read(self, value) -> float:
        """One value as a Python float, now (a host read on a device)."""
        return float(value)

    def add(self, loss, norm, correct, rows: int, seconds: float, at: tuple[int, int, int]) -> None:
        """Record a finished step (``correct``: None where no accuracy applies)."""
        self.log.step(float(loss), float(norm), 0 if correct is None else int(correct), rows, seconds)

    def flush(self) -> None:
        """Nothing waits on the host: every step was recorded as it ended."""


class DeviceSteps(HostSteps):
    """Where a loop's steps go on a device: their loss, gradient norm and hit count stay device
    scalars until ``flush`` (at each epoch's end, and before a checkpoint), which brings the lot
    back in one transfer, checks the steps in order for NaN or inf, and records them.

    ``stack(values)``: device scalars (or 1-d arrays) stacked into one float64 device array;
    ``host(array)``: that array on the host, as a NumPy array."""

    def __init__(self, log: RunLog, arrays, stack, host):
        super().__init__(log, arrays)
        self.stack, self.host = stack, host
        self.losses, self.norms, self.hits, self.steps = [], [], [], []

    def check(self, what: str, value, at: tuple[int, int, int]) -> None:
        """Left to ``flush``: a check now would wait for the device."""

    def read(self, value) -> float:
        return float(self.host(self.stack([value]))[0])

    def add(self, loss, norm, correct, rows: int, seconds: float, at: tuple[int, int, int]) -> None:
        self.losses.append(loss)
        self.norms.append(norm)
        if correct is not None:
            self.hits.append(correct)
        self.steps.append((rows, seconds, at))

    def flush(self) -> None:
        if not self.steps:
            return
        columns = [self.losses, self.norms] + ([self.hits] if self.hits else [])
        values = self.host(self.stack([self.stack(column) for column in columns]))   # the one transfer
        steps, hits = self.steps, bool(self.hits)
        self.losses, self.norms, self.hits, self.steps = [], [], [], []
        for i, (rows, seconds, at) in enumerate(steps):
            loss, norm = float(values[0, i]), float(values[1, i])
            super().check("loss", loss, at)
            super().check("gradient norm", norm, at)
            self.log.step(loss, norm, int(values[2, i]) if hits else 0, rows, seconds)


def epoch_batches(n: int, spec, epoch: int) -> list:
    """Epoch ``epoch``'s batches as index arrays (shuffled) or slices (in order: views, no copies)."""
    order = batch_order(n, spec.train.batch_size, spec.train.shuffle, spec.seed, epoch)
    if spec.train.shuffle:
        return order
    return [slice(int(b[0]), int(b[-1]) + 1) for b in order]


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
    out = run.net.forward(to_device(dataset.x_test, xp))
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
        scratch.checkpoint.Interrupted: a signal stopped a run that writes checkpoints.
        SpecError: naming ``device``, when the device cannot be had (no CuPy, no CUDA device).
    """
    dataset = load_dataset(spec) if dataset is None else dataset
    epochs = spec.train.epochs if epochs is None else epochs
    device = spec.device if device is None else device
    xp = array_module(device) if isinstance(device, str) else device
    x, y = to_device(dataset.x_train, xp), to_device(dataset.y_train, xp)   # the data's one move
    batches = epoch_batches(len(x), spec, 0)
    run = _start(spec, xp, len(x), len(batches), epochs, dataset.y_train, progress, callback)
    targets = None if run.rule is None else to_device(accuracy_targets(run.rule, dataset.y_train), xp)
    position = _position(run, checkpoints, epochs)
    # Overflow and invalid operations are looked for explicitly (TrainingDiverged), not warned about.
    with np.errstate(over="ignore", invalid="ignore"), (checkpoints.signals if checkpoints else nullcontext()):
        epoch, step = _loop(run, x, y, targets, epochs, position, checkpoints)
        seconds = run.log.elapsed()
        final = {name: host_copy(p, xp) for name, p in run.params.items()}   # the parameters' one move back
        check_final_parameters(final, len(run.log.history.epoch_loss), run.log.history)
        if checkpoints is not None:
            checkpoints.finish(checkpoint.capture(run, epoch, 0, step, stopped=run.log.stopped))
        test_loss, test_accuracy = _test_metrics(run, dataset)
    return run.log.finish(final, test_loss, test_accuracy, seconds)


def _position(run: _Run, checkpoints, epochs: int) -> tuple[int, int, int, bool]:
    """Where the loop starts (epoch, batch, step, anything to do), after restoring the checkpoint
    a resumed run continues."""
    if checkpoints is None:
        return 0, 0, 0, True
    if checkpoints.resume is not None:
        checkpoint.restore(run, checkpoints.resume)
        run.log.stopped = checkpoints.resume.stopped or "epochs"
    return checkpoints.start(epochs)


def _capture(run: _Run, epoch: int, batch: int, step: int) -> checkpoint.Checkpoint:
    """A checkpoint of the run now: the steps a device still holds are recorded first."""
    run.steps.flush()
    return checkpoint.capture(run, epoch, batch, step)


def _device_batches(batches: list, xp) -> list:
    """An epoch's batches for xp's device: slices as they are; index arrays moved in one transfer
    (views of one device array), not one per step."""
    if xp is np or not batches or isinstance(batches[0], slice):
        return batches
    rows = to_device(np.concatenate(batches), xp)
    ends = np.cumsum([len(b) for b in batches]).tolist()
    return [rows[start:end] for start, end in zip([0] + ends[:-1], ends)]


def _loop(run: _Run, x, y, targets, epochs: int, position, checkpoints) -> tuple[int, int]:
    """The epochs from ``position`` (epoch, batch, step, anything to do); returns (the epoch after
    the last one run, steps done in all)."""
    epoch0, batch0, step, more = position
    if not more:
        return epoch0, step
    run.log.stopped = "epochs"
    epoch, batches = epoch0, _device_batches(epoch_batches(len(x), run.spec, epoch0), run.xp)
    for epoch in range(epoch0, epochs):
        if run.spec.train.shuffle and epoch != epoch0:
            batches = _device_batches(epoch_batches(len(x), run.spec, epoch), run.xp)
        for b in range(batch0 if epoch == epoch0 else 0, len(batches)):
            rows = batches[b]
            step += 1
            batch_targets = None if targets is None else targets[rows]
            stop = _train_step(run, x[rows], y[rows], batch_targets, (epoch + 1, step, b + 1))
            if checkpoints is not None:
                checkpoints.after_step(step, lambda: _capture(run, epoch, b + 1, step))
            if stop:
                break
        run.steps.flush()   # the epoch's records: on a device, their one read
        if run.log.end_epoch():
            break
    return epoch + 1, step
