"""Pooling over NCHW images: the max and the mean of each window, and the global mean of each channel."""
from __future__ import annotations

import numpy as np

from scratch.windows import Windows


class Pool2d:
    """What the windowed pools share: the window geometry, built from the spec."""

    params = ()

    def __init__(self, kernel, stride=None, padding=0, xp=np):
        self.xp = xp
        self.windows = Windows(kernel, kernel if stride is None else stride, padding)
        self.x_shape = None    # the input's shape

    @classmethod
    def from_spec(cls, layer_spec, params: dict, xp=np):
        return cls(layer_spec.kernel, layer_spec.stride, layer_spec.padding, xp=xp)

    def release(self) -> None:
        self.x_shape = None


class MaxPool2d(Pool2d):
    """z[n, c, y, x] = max over the window (i, j) of x_p[n, c, y·s_h + i, x·s_w + j], the input
    padded with −inf (padding never wins).

    Backward: dL/dx gets dL/dz at the window's maximum and 0 elsewhere; where several positions
    tie, the first in row-major order (i, then j) gets it, as torch's kernel, which keeps the first
    maximum it meets; windows that overlap add up.
    Torch twin: nn.MaxPool2d(kernel, stride, padding).

    Shape: (N, C, H, W) -> (N, C, OH, OW), OH = ⌊(H + 2p_h − kh) / s_h⌋ + 1 (OW alike).
    """

    def __init__(self, kernel, stride=None, padding=0, xp=np):
        super().__init__(kernel, stride, padding, xp)
        self.argmax = None     # which offset of each window held its maximum

    def release(self) -> None:
        self.argmax = self.x_shape = None

    def forward(self, x):
        windows = self.windows
        out_h, out_w = windows.out_hw(*x.shape[2:])
        padded = windows.pad(x, self.xp, fill=-np.inf)
        values = self.xp.stack([padded[windows.offset_slice(i, j, out_h, out_w)] for i, j in windows.offsets()])
        self.argmax, self.x_shape = values.argmax(axis=0), x.shape   # argmax: the first maximum
        return values.max(axis=0)

    def backward(self, grad_out, input_grad: bool = True):
        if not input_grad:   # no parameters: nothing to do but dL/dx
            return None
        xp, windows = self.xp, self.windows
        out_h, out_w = grad_out.shape[2:]
        grad_padded = windows.padded_zeros(self.x_shape, grad_out.dtype, xp)
        for k, (i, j) in enumerate(windows.offsets()):
            grad_padded[windows.offset_slice(i, j, out_h, out_w)] += xp.where(self.argmax == k, grad_out, 0)
        return windows.crop(grad_padded, self.x_shape)


class AvgPool2d(Pool2d):
    """z[n, c, y, x] = (1 / (kh·kw)) Σ_{i, j} x_p[n, c, y·s_h + i, x·s_w + j], the input padded with
    zeros that count in the mean (torch's count_include_pad=True).

    Backward: each input position gets dL/dz / (kh·kw) from every window it lies in.
    Torch twin: nn.AvgPool2d(kernel, stride, padding).

    Shape: as MaxPool2d.
    """

    def __init__(self, kernel, stride=None, padding=0, xp=np):
        super().__init__(kernel, stride, padding, xp)
        self.size = self.windows.kernel[0] * self.windows.kernel[1]

    def forward(self, x):
        windows = self.windows
        out_h, out_w = windows.out_hw(*x.shape[2:])
        padded = windows.pad(x, self.xp)
        total = None
        for i, j in windows.offsets():   # torch's order: row by row through the window
            part = padded[windows.offset_slice(i, j, out_h, out_w)]
            total = part.copy() if total is None else total + part
        self.x_shape = x.shape
        return total / self.size

    def backward(self, grad_out, input_grad: bool = True):
        if not input_grad:
            return None
        windows = self.windows
        out_h, out_w = grad_out.shape[2:]
        share = grad_out / self.size
        grad_padded = windows.padded_zeros(self.x_shape, grad_out.dtype, self.xp)
        for i, j in windows.offsets():
            grad_padded[windows.offset_slice(i, j, out_h, out_w)] += share
        return windows.crop(grad_padded, self.x_shape)


class GlobalAvgPool:
    """z[n, c] = (1 / (H·W)) Σ_{y, x} x[n, c, y, x]: each channel's mean.

    Backward: dL/dx[n, c, y, x] = dL/dz[n, c] / (H·W).
    Torch twin: nn.AdaptiveAvgPool2d(1) then nn.Flatten().

    Shape: (N, C, H, W) -> (N, C).
    """

    params = ()

    def __init__(self, xp=np):
        self.xp = xp
        self.x_shape = None    # all backward needs

    @classmethod
    def from_spec(cls, layer_spec, params: dict, xp=np) -> "GlobalAvgPool":
        return cls(xp=xp)

    def release(self) -> None:
        self.x_shape = None

    def forward(self, x):
        self.x_shape = x.shape
        return x.mean(axis=(2, 3))

    def backward(self, grad_out, input_grad: bool = True):
        if not input_grad:
            return None
        n, c, h, w = self.x_shape
        grad_x = self.xp.empty(self.x_shape, dtype=grad_out.dtype)
        grad_x[...] = (grad_out / (h * w)).reshape(n, c, 1, 1)
        return grad_x
