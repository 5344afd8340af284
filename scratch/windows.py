"""Sliding windows over NCHW images: the output size, padding, and each kernel offset's slice.

Convolution and pooling both see a window of kh × kw positions (spread ``dilation`` apart) slide
over a padded image in steps of ``stride``. For one kernel offset (i, j) the positions that every
window reads form a strided slice of the padded image:

    rows i·d_h, i·d_h + s_h, …, i·d_h + s_h·(OH − 1)    (columns alike)

so a pass over the kh·kw offsets gathers every window's values (im2col) or scatters gradients
back (col2im) in kh·kw array operations, whatever the batch and image size.
"""
from __future__ import annotations


def pair(value) -> tuple[int, int]:
    """An int or an [h, w] pair as (h, w): the form the spec's kernel, stride, padding and dilation take."""
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


def output_size(size: int, kernel: int, stride: int, padding: int, dilation: int = 1) -> int:
    """floor((size + 2·padding − dilation·(kernel − 1) − 1) / stride) + 1: torch's rule (ceil_mode off)."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


class Windows:
    """The geometry of one sliding window: kernel, stride, padding and dilation, each (h, w)."""

    def __init__(self, kernel, stride, padding, dilation=1):
        self.kernel, self.stride = pair(kernel), pair(stride)
        self.padding, self.dilation = pair(padding), pair(dilation)

    def out_hw(self, height: int, width: int) -> tuple[int, int]:
        return tuple(output_size(n, k, s, p, d) for n, k, s, p, d in
                     zip((height, width), self.kernel, self.stride, self.padding, self.dilation))

    def offsets(self):
        """The kernel offsets (i, j) in row-major order: the order torch reads a window in."""
        return [(i, j) for i in range(self.kernel[0]) for j in range(self.kernel[1])]

    def offset_slice(self, i: int, j: int, out_h: int, out_w: int) -> tuple:
        """The index into the padded (N, C, H + 2p_h, W + 2p_w) image of what every window reads at
        kernel offset (i, j): an (N, C, OH, OW) strided view."""
        (s_h, s_w), (d_h, d_w) = self.stride, self.dilation
        rows = slice(i * d_h, i * d_h + s_h * (out_h - 1) + 1, s_h)
        cols = slice(j * d_w, j * d_w + s_w * (out_w - 1) + 1, s_w)
        return (slice(None), slice(None), rows, cols)

    def pad(self, x, xp, fill=0.0):
        """x (N, C, H, W) with ``fill`` around it (p_h rows, p_w columns each side); x itself when unpadded."""
        p_h, p_w = self.padding
        if p_h == 0 and p_w == 0:
            return x
        n, c, h, w = x.shape
        padded = xp.full((n, c, h + 2 * p_h, w + 2 * p_w), fill, dtype=x.dtype)
        padded[:, :, p_h:p_h + h, p_w:p_w + w] = x
        return padded

    def padded_zeros(self, shape, dtype, xp):
        """Zeros of the padded shape of an (N, C, H, W) input: where col2im adds the windows' gradients."""
        n, c, h, w = shape
        return xp.zeros((n, c, h + 2 * self.padding[0], w + 2 * self.padding[1]), dtype=dtype)

    def crop(self, padded, shape):
        """The (N, C, H, W) interior of a padded array (dL/dx of the padding is dropped)."""
        p_h, p_w = self.padding
        return padded[:, :, p_h:p_h + shape[2], p_w:p_w + shape[3]] if p_h or p_w else padded
