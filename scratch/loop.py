"""What every training loop shares, whatever runs its steps (scratch, the torch loop, Lightning):
the history and its records, divergence, the accuracy rule and its counting, the epochs' batches,
and the epoch loop itself with its resume position and checkpoints.

A backend brings its own step (forward, loss, backward, clipping, update) and its own batches'
form (NumPy or CuPy index arrays, torch tensors); ``run_epochs`` runs them from a position and
gives ``after_step`` each step's checkpoint hook. Torch-free: the torch backends hand it tensors
it only indexes and counts with (``argmax(axis=1)``, comparison, ``sum``), which torch's tensors share.
"""
from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from scratch.data import CLASS_LOSSES, batch_order
from scratch.norm_kinds import check_batch_rows

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
    buffers: dict = field(default_factory=dict)   # name -> ndarray: running statistics, dropout's draw counts


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
    - ("tokens", ignore, k): token_cce's per-step targets with the same k steps to predict in every
      row (the others ``ignore``): each such step's argmax against its target;
    - None: regression, or per-step targets whose rows have different counts to predict.
    """
    y = np.asarray(y)
    loss, activation = spec.loss.name, spec.layers[-1].activation
    if loss == "token_cce":
        scored = (y != spec.loss.ignore).sum(axis=1)
        return ("tokens", spec.loss.ignore, int(scored[0])) if len(scored) and np.all(scored == scored[0]) else None
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
    if rule[0] == "tokens":
        return y
    if rule[0] == "argmax":
        return y if y.ndim == 1 else y.argmax(axis=1)
    return y > 0.5


def count_correct(rule, out, targets):
    """How many of ``out``'s predictions match ``targets`` (rows for argmax, elements for threshold),
    as a 0-d integer array on out's device (``int()`` of it is a host read)."""
    if rule[0] == "argmax":
        return (out.argmax(axis=1) == targets).sum()
    if rule[0] == "tokens":
        return ((out.argmax(axis=-1) == targets) & (targets != rule[1])).sum()
    return ((out > rule[1]) == targets).sum()


def scored_per_row(rule, outputs: int) -> int:
    """Predictions scored per row: one for argmax, one per output for threshold, the steps to
    predict for tokens."""
    if rule[0] == "tokens":
        return rule[2]
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

    def finish(self, params: dict, test_loss=None, test_accuracy=None, seconds=None,
               buffers: dict | None = None) -> TrainResult:
        if self.bar is not None:
            self.bar.close()
        return TrainResult(history=self.history, params=params, stopped=self.stopped,
                           seconds=time.perf_counter() - self._start if seconds is None else seconds,
                           step_seconds=self.step_seconds, test_accuracy=test_accuracy, test_loss=test_loss,
                           buffers=buffers or {})

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


def check_batch_sizes(spec, n: int) -> None:
    """Every batch of the epochs (the sizes do not change with the order) can run in train mode:
    SpecError naming train.batch_size when one is too small for a batchnorm."""
    sizes = [len(rows) for rows in batch_order(n, spec.train.batch_size, False, spec.seed, 0)]
    what = f"{n} rows in batches of {sizes[0]} leave a last batch" if len(sizes) > 1 else "a batch"
    check_batch_rows(spec, min(sizes), "train.batch_size" if spec.train.batch_size else "data.samples", what)


def epoch_batches(n: int, spec, epoch: int) -> list:
    """Epoch ``epoch``'s batches as index arrays (shuffled) or slices (in order: views, no copies)."""
    order = batch_order(n, spec.train.batch_size, spec.train.shuffle, spec.seed, epoch)
    if spec.train.shuffle:
        return order
    return [slice(int(b[0]), int(b[-1]) + 1) for b in order]


def start_position(run, checkpoints, epochs: int, restore) -> tuple[int, int, int, bool]:
    """Where the loop starts (epoch, batch, step, anything to do), after ``restore(run, checkpoint)``
    has put back the checkpoint a resumed run continues."""
    if checkpoints is None:
        return 0, 0, 0, True
    if checkpoints.resume is not None:
        restore(run, checkpoints.resume)
        run.log.stopped = checkpoints.resume.stopped or "epochs"
    return checkpoints.start(epochs)


def run_epochs(run, epochs: int, position, checkpoints, batches_of, step, capture) -> tuple[int, int]:
    """The epochs from ``position`` (epoch, batch, step, anything to do); returns (the epoch after
    the last one run, steps done in all).

    ``batches_of(epoch)``: the epoch's batches in the backend's form; ``step(rows, at)``: one
    train step on those rows, True to stop (``at``: epoch, step and batch, counted from 1);
    ``capture(epoch, batch, step)``: the backend's checkpoint of the run now. The steps a device
    still holds are flushed before each capture and at each epoch's end (their one read)."""
    epoch0, batch0, done, more = position
    if not more:
        return epoch0, done
    run.log.stopped = "epochs"

    def captured(epoch, batch, step_no):
        run.steps.flush()
        return capture(epoch, batch, step_no)

    epoch, batches = epoch0, batches_of(epoch0)
    for epoch in range(epoch0, epochs):
        if run.spec.train.shuffle and epoch != epoch0:
            batches = batches_of(epoch)
        for b in range(batch0 if epoch == epoch0 else 0, len(batches)):
            done += 1
            stop = step(batches[b], (epoch + 1, done, b + 1))
            if checkpoints is not None:
                checkpoints.after_step(done, lambda: captured(epoch, b + 1, done))
            if stop:
                break
        run.steps.flush()
        if run.log.end_epoch():
            break
    return epoch + 1, done
