"""What both SSIM designs share: the window's taps, the row-by-row sliding of
its vertical sums, the horizontal filter of one input row, and how a launch
splits a frame's rows into segments.

``ssim.py`` keeps the derivative maps between a forward and a backward pass;
``ssim_one_pass.py`` computes the value and the gradient in one pass. Both walk
down a frame one row at a time, so their vertical filters are register
sliding sums (:func:`_slide`) and their horizontal filters shifted loads.
"""

from __future__ import annotations

import functools

import torch
import triton
import triton.language as tl

from ..reference import SSIM_WINDOW, gaussian_window
from .grid import launch_grid

_TAPS = tl.constexpr(tuple(float(t) for t in gaussian_window(SSIM_WINDOW, dtype=torch.float64)))
_WIN = tl.constexpr(SSIM_WINDOW)


@triton.jit
def _slide(h, s0, s1, s2, s3, s4, s5, s6, s7, s8, s9):
    """Feeds one filtered row ``h`` into the partial vertical sums of the 10 output rows still open, nearest
    first: returns the row that ``h`` completes and the partial sums moved up one row. Each carried value is
    computed afresh (an add), never copied: a ring of rows shifted by copies costs a move per entry per row,
    and ptxas gave that form twice the registers."""
    return (s0 + _TAPS[10] * h, s1 + _TAPS[9] * h, s2 + _TAPS[8] * h, s3 + _TAPS[7] * h, s4 + _TAPS[6] * h,
            s5 + _TAPS[5] * h, s6 + _TAPS[4] * h, s7 + _TAPS[3] * h, s8 + _TAPS[2] * h, s9 + _TAPS[1] * h,
            _TAPS[0] * h)


@triton.jit
def _filter_row(xs, ys, row, cols, H, W, sx_h, sx_w, sy_h, sy_w):
    """Row ``row`` of the five statistics (x, y, x^2, y^2, xy), filtered horizontally: output column j sums
    input columns j .. j + 10. Rows and columns outside the frame read as zero."""
    h_x = tl.zeros(cols.shape, dtype=tl.float32)
    h_y = tl.zeros(cols.shape, dtype=tl.float32)
    h_xx = tl.zeros(cols.shape, dtype=tl.float32)
    h_yy = tl.zeros(cols.shape, dtype=tl.float32)
    h_xy = tl.zeros(cols.shape, dtype=tl.float32)
    rows = row + tl.zeros(cols.shape, dtype=tl.int32)  # as a vector: the interpreter cannot mask with a scalar
    row_inside = (rows >= 0) & (rows < H)
    for dw in tl.static_range(_WIN):
        inside = (cols + dw >= 0) & (cols + dw < W) & row_inside
        xv = tl.load(xs + row * sx_h + (cols + dw) * sx_w, mask=inside, other=0.0).to(tl.float32)
        yv = tl.load(ys + row * sy_h + (cols + dw) * sy_w, mask=inside, other=0.0).to(tl.float32)
        h_x += _TAPS[dw] * xv
        h_y += _TAPS[dw] * yv
        h_xx += _TAPS[dw] * (xv * xv)
        h_yy += _TAPS[dw] * (yv * yv)
        h_xy += _TAPS[dw] * (xv * yv)
    return h_x, h_y, h_xx, h_yy, h_xy


@triton.jit
def _local_ssim(mu_x, mu_y, e_xx, e_yy, e_xy, C1: tl.constexpr, C2: tl.constexpr):
    """The SSIM of one window from its raw statistics, and its derivatives with respect to the statistics of
    x (mu_x, E[x^2], E[xy]), y held fixed: the maps a gradient is gathered from."""
    lum_num = 2 * mu_x * mu_y + C1
    lum_den = mu_x * mu_x + mu_y * mu_y + C1
    con_num = 2 * (e_xy - mu_x * mu_y) + C2
    con_den = (e_xx - mu_x * mu_x) + (e_yy - mu_y * mu_y) + C2
    denom = lum_den * con_den
    value = (lum_num * con_num) / denom
    d_mu = (2 * mu_y * (con_num - lum_num) - 2 * mu_x * value * (con_den - lum_den)) / denom
    d_xx = -value / con_den
    d_xy = 2 * lum_num / denom
    return value, d_mu, d_xx, d_xy


@functools.cache
def _multiprocessors(device: torch.device) -> int:
    return torch.cuda.get_device_properties(device).multi_processor_count if device.type == "cuda" else 0


def segment_grid(kernel: str, planes: int, strips: int, rows: int, seg: int, programs_per_sm: int,
                 device: torch.device) -> tuple[tuple[int, int, int], int]:
    """The grid (planes, strips, segments) and the segment length: ``seg`` rows, halved (to 16 at least) while
    the grid would leave SMs with fewer than ``programs_per_sm`` programs."""
    while seg > 16 and planes * strips * triton.cdiv(rows, seg) < programs_per_sm * _multiprocessors(device):
        seg //= 2
    return launch_grid(kernel, planes, strips, triton.cdiv(rows, seg)), seg
