"""The scratch training loop.  (Contract below; being implemented.)

``train(spec, dataset=None, epochs=None, progress=False) -> TrainResult``
- dataset: a scratch.data.Dataset (default: load_dataset(spec)).
- the batch order of every epoch comes from scratch.data.batch_order(n, spec.train.batch_size,
  spec.train.shuffle, spec.seed, epoch) so every loop (scratch, torch, Lightning) visits the same rows.
- per step: forward, loss, backward, clipping (spec.optimizer.clip_norm / clip_value), optimizer.step.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class History:
    """What a training run records. Lists are per optimizer step or per epoch."""

    step_loss: list[float] = field(default_factory=list)     # loss of each mini-batch, before its step
    epoch_loss: list[float] = field(default_factory=list)    # mean of the epoch's step losses
    epoch_accuracy: list[float] = field(default_factory=list)  # train accuracy after each epoch, if it applies
    grad_norm: list[float] = field(default_factory=list)     # global gradient norm of each step (before clipping)


@dataclass
class TrainResult:
    """The outcome of a run: history, final parameters in scratch layout, and timings."""

    history: History
    params: dict                      # name -> ndarray, (inputs, units) layout
    stopped: str = "epochs"           # epochs | loss_tol | grad_tol
    seconds: float = 0.0
    step_seconds: list[float] = field(default_factory=list)
    test_accuracy: float | None = None
    test_loss: float | None = None
