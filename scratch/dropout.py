"""Dropout and the mask stream both backends share.

torch's nn.Dropout draws its mask from torch's generator, which NumPy cannot reproduce. So the
mask comes from one stream both sides read: the mask of a dropout layer's k-th train-mode forward
(k = 0, 1, … its ``draws`` buffer) is

    keep = default_rng([seed, STREAM, k, *name bytes]).random(x.shape) >= p

with ``seed`` the spec's seed and ``name`` the layer's path (``layers.3``, ``layers.2.body.1``):
a pure function of (seed, layer, k), so a checkpoint resumes it from the count alone. Each layer
draws once per train-mode forward (a closure optimizer's extra forwards included, on both sides
alike); eval mode draws nothing. torch_ref's twin applies that mask in torch as ATen's CPU
dropout does (noise = keep / (1 − p), z = x ⊙ noise); a parity test runs torch's own nn.Dropout,
reads its mask back from its output and proves it computes exactly that for the mask it drew.
"""
from __future__ import annotations

import numpy as np

STREAM = 0x44524F50          # "DROP": keeps the masks apart from every other seeded draw


def keep_mask(seed: int, name: str, draw: int, shape, p: float) -> np.ndarray:
    """The boolean keep-mask of draw ``draw`` of the dropout layer ``name`` (host NumPy)."""
    rng = np.random.default_rng([seed, STREAM, draw, *name.encode()])
    return rng.random(shape) >= p


class Dropout:
    """Dropout with keep-probability 1 − p, in train mode:

        z = x ⊙ noise, noise = keep / (1 − p), keep ~ Bernoulli(1 − p) from the shared stream;
        eval mode: z = x.

    Backward: dL/dx = dL/dz ⊙ noise (train), dL/dz (eval).
    Torch twin: torch_ref.model.StreamDropout (the same mask, ATen's dropout arithmetic), checked
    against nn.Dropout(p) itself.
    """

    params = ()
    buffers = ("draws",)
    takes_state = True   # from_spec takes the layer's buffers, input shape and the layer builder too

    def __init__(self, p: float, draws, xp=np):
        self.xp, self.p, self.draws = xp, p, draws
        self.seed, self.name = 0, ""
        self.training = True
        self.noise = None

    @classmethod
    def from_spec(cls, layer_spec, params: dict, xp=np, buffers: dict | None = None, in_shape=None,
                  build=None) -> "Dropout":
        return cls(layer_spec.p, buffers["draws"], xp=xp)

    def name_stream(self, seed: int, name: str) -> None:
        """Which stream the layer reads: the spec's seed and the layer's path."""
        self.seed, self.name = seed, name

    def release(self) -> None:
        self.noise = None

    def forward(self, x):
        if not self.training:
            self.noise = None
            return x
        keep = keep_mask(self.seed, self.name, int(self.draws), x.shape, self.p)
        self.draws[...] += 1
        noise = self.xp.asarray(keep.astype(x.dtype))
        noise /= 1 - self.p          # in x's dtype, as ATen's noise.div_(1 - p)
        self.noise = noise
        return x * noise

    def backward(self, grad_out, input_grad: bool = True):
        if not input_grad:
            return None
        return grad_out if self.noise is None else grad_out * self.noise
