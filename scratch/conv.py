"""Conv2d: 2-D convolution by im2col, one matrix product per pass."""
from __future__ import annotations

import numpy as np

from scratch.windows import Windows


class Conv2d:
    """2-D convolution (cross-correlation, as torch) of NCHW images, in ``groups`` channel groups:

        z[n, o, y, x] = b[o] + Σ_{c, i, j} W[o, c, i, j] · x_p[n, g·C_g + c, y·s_h + i·d_h, x·s_w + j·d_w]

    with W of shape (O, C_g, kh, kw), C_g = C / groups, g = o // (O / groups) the group of output
    channel o, and x_p the input zero-padded by p. im2col gathers every window into the columns
    X (C·kh·kw, N·OH·OW), so that per group Z_g = W_g @ X_g, W_g the group's weight as (O_g, C_g·kh·kw):
    one (batched) BLAS product.

    Backward, with G_g = dL/dz of the group as (O_g, N·OH·OW): dL/dW_g = G_g @ X_gᵀ;
    dL/db = Σ_{n, y, x} dL/dz; dL/dX_g = W_gᵀ @ G_g, and dL/dx adds each column back onto the
    positions its window read (col2im, one strided slice per kernel offset), the padding's share dropped.
    Torch twin: nn.Conv2d(C, O, kernel, stride, padding, dilation, groups, bias), weight in the same
    (O, C_g, kh, kw) layout.

    Shape: x (N, C, H, W) -> z (N, O, OH, OW), OH = ⌊(H + 2p_h − d_h(kh − 1) − 1) / s_h⌋ + 1 (OW alike).
    The gradients go into ``grad_weight`` and ``grad_bias`` in place, as Dense's.
    """

    params = ("weight", "bias")

    def __init__(self, weight, bias=None, stride=1, padding=0, dilation=1, groups: int = 1, xp=np):
        self.xp = xp
        self.weight, self.bias, self.groups = weight, bias, groups
        self.windows = Windows(tuple(weight.shape[2:]), stride, padding, dilation)
        self.grad_weight = self.grad_bias = None
        self.columns = None    # X of the last forward, (C, kh, kw, N, OH, OW)
        self.x_shape = None

    @classmethod
    def from_spec(cls, layer_spec, params: dict, xp=np) -> "Conv2d":
        return cls(params["weight"], params.get("bias"), layer_spec.stride, layer_spec.padding,
                   layer_spec.dilation, layer_spec.groups, xp=xp)

    def release(self) -> None:
        self.columns = None

    def forward(self, x):
        xp, windows = self.xp, self.windows
        n, c, h, w = x.shape
        out_h, out_w = windows.out_hw(h, w)
        kh, kw = windows.kernel
        padded = windows.pad(x, xp)
        columns = xp.empty((c, kh, kw, n, out_h, out_w), dtype=x.dtype)
        for i, j in windows.offsets():
            columns[:, i, j] = padded[windows.offset_slice(i, j, out_h, out_w)].transpose(1, 0, 2, 3)
        self.columns, self.x_shape = columns, x.shape
        out_channels = self.weight.shape[0]
        z = xp.matmul(self._grouped_weight(), columns.reshape(self.groups, -1, n * out_h * out_w))
        z = z.reshape(out_channels, n, out_h, out_w)
        if self.bias is not None:
            z += self.bias.reshape(out_channels, 1, 1, 1)
        return z.transpose(1, 0, 2, 3)

    def backward(self, grad_out, input_grad: bool = True):
        xp, groups = self.xp, self.groups
        columns = self.columns.reshape(groups, -1, grad_out.shape[0] * grad_out.shape[2] * grad_out.shape[3])
        dtype = np.result_type(columns.dtype, grad_out.dtype)
        out_channels = self.weight.shape[0]
        grad_rows = grad_out.transpose(1, 0, 2, 3).reshape(groups, out_channels // groups, -1)
        if self.grad_weight is None or self.grad_weight.dtype != dtype:
            self.grad_weight = xp.empty(self.weight.shape, dtype=dtype)
        xp.matmul(grad_rows, columns.transpose(0, 2, 1), out=self.grad_weight.reshape(grad_rows.shape[:2] + (-1,)))
        if self.bias is not None:
            if self.grad_bias is None or self.grad_bias.dtype != dtype:
                self.grad_bias = xp.empty(self.bias.shape, dtype=dtype)
            grad_out.sum(axis=(0, 2, 3), out=self.grad_bias)
        return self._col2im(xp.matmul(self._grouped_weight().transpose(0, 2, 1), grad_rows)) if input_grad else None

    def _grouped_weight(self):
        """W as (groups, O_g, C_g·kh·kw)."""
        return self.weight.reshape(self.groups, self.weight.shape[0] // self.groups, -1)

    def _col2im(self, grad_columns):
        """dL/dx from dL/dX: each kernel offset's columns added back onto the positions they came from."""
        windows, shape = self.windows, self.x_shape
        c, kh, kw, n, out_h, out_w = self.columns.shape
        grad_columns = grad_columns.reshape(c, kh, kw, n, out_h, out_w)
        grad_padded = windows.padded_zeros(shape, grad_columns.dtype, self.xp)
        for i, j in windows.offsets():
            grad_padded[windows.offset_slice(i, j, out_h, out_w)] += grad_columns[:, i, j].transpose(1, 0, 2, 3)
        return windows.crop(grad_padded, shape)
