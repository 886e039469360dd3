"""Fused per-frame SSIM, forward and backward (gradient for the first argument,
the perturbed frame). Same function as ``reference.ssim``.

Bytes per value (float32), forward + backward:
* keep the derivative maps: the forward reads x, y (8 B) and writes the three
  maps dS/dmu_x, dS/dE[x^2], dS/dE[xy] (12 B); the backward reads the maps
  (12 B) and x, y (8 B) and writes dx (4 B): 44 B.
* recompute them: the backward needs the maps at every window position around
  a pixel, so it must first rebuild them in a pass of its own (read x, y 8 B,
  write 12 B) before the same gather: 52 B, and one more launch.
So the forward keeps the maps, and writes them only when a gradient is wanted
(an evaluation-only forward moves 8 B per value). ``ssim_one_pass.py`` is the
second design (20 B, no maps in device memory); ``DESIGN`` picks one.

Layout of the work: one program per (frame and channel, strip of COLS columns,
segment of SEG rows), so channels and frames fill the grid. A program walks
down its segment one input row at a time: it filters the row horizontally (11
shifted loads per tensor, cache hits after the first) and adds it, with its
vertical tap, into the partial sums of the 10 output rows still open, which
live in registers (5 statistics x 10 rows); the row it completes comes out.
Per output: 22 loads, 143 multiply-adds for the five statistics, none on taps
outside the window (the tiled version this replaced multiplied 26 vertical
taps of which 11 are non-zero, and held five ROWS x COLS tiles in registers).
The segment's first 10 input rows are a halo shared with the segment above.
The backward walks the three derivative maps the same way. The window's taps
are compile-time constants; the Gaussian is symmetric, which lets the
backward's transposed sums use the forward's taps.

ptxas (sm_90): 87 registers forward (keeping the maps), 86 backward, no spills, at 4 warps and
COLS = 128 (`python -m sava.aot_report`).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from ..reference import SSIM_K1, SSIM_K2, SSIM_WINDOW
from . import ssim_one_pass
from .ssim_window import _TAPS, _WIN, _filter_row, _local_ssim, _slide, segment_grid

# Launch constants, read at each launch (`bench_ssim.py --sweep` tries others). One program covers SEG rows of
# COLS columns; at 4 warps a COLS of 128 is one column per thread, so the 50 open sums take 50 registers.
SEG, COLS = 64, 128
NUM_WARPS = 4
# Fewer programs than this many per SM at SEG rows: the launcher halves SEG (down to 16) to fill the GPU.
PROGRAMS_PER_SM = 4
# How a gradient is computed: "maps" (this module's forward keeps three derivative maps, its backward gathers
# them) or "one_pass" (``ssim_one_pass``: the forward computes dS/dx itself, the backward scales it). Read at
# each forward; an evaluation without a gradient always takes this module's value-only forward.
DESIGNS = ("maps", "one_pass")
DESIGN = "maps"


# --------------------------------------------------------------------------- kernels
@triton.jit
def _locate(C, COLS: tl.constexpr, SEG: tl.constexpr):
    """This program's frame, channel, columns and first row."""
    plane = tl.program_id(0).to(tl.int64)
    cols = tl.program_id(1) * COLS + tl.arange(0, COLS)
    return plane // C, plane % C, cols, tl.program_id(2) * SEG


@triton.jit
def _ssim_forward_kernel(
    x_ptr, y_ptr, partial_ptr, maps_ptr, rows_ptr,
    C, H, W, HO, WO, PER_ROW,
    sx_n, sx_c, sx_h, sx_w,
    sy_n, sy_c, sy_h, sy_w,
    C1: tl.constexpr, C2: tl.constexpr, KEEP_MAPS: tl.constexpr, HAS_ROWS: tl.constexpr, SEG: tl.constexpr,
    COLS: tl.constexpr,
):
    frame, c, cols, first = _locate(C, COLS, SEG)
    steps = tl.minimum(SEG, HO - first) + _WIN - 1
    if HAS_ROWS:
        # A frame outside the row mask walks no rows: it reads nothing and its partial sum is zero.
        steps = tl.where(tl.load(rows_ptr + frame // PER_ROW) != 0, steps, 0)
    xs = x_ptr + frame * sx_n + c * sx_c
    ys = y_ptr + frame * sy_n + c * sy_c
    # Partial vertical sums of the five statistics (x, y, x^2, y^2, xy) for the next 10 output rows, nearest
    # first. The segment's first 10 input rows only open them.
    zero = tl.zeros([COLS], dtype=tl.float32)
    x0, x1, x2, x3, x4, x5, x6, x7, x8, x9 = zero, zero, zero, zero, zero, zero, zero, zero, zero, zero
    y0, y1, y2, y3, y4, y5, y6, y7, y8, y9 = zero, zero, zero, zero, zero, zero, zero, zero, zero, zero
    a0, a1, a2, a3, a4, a5, a6, a7, a8, a9 = zero, zero, zero, zero, zero, zero, zero, zero, zero, zero
    b0, b1, b2, b3, b4, b5, b6, b7, b8, b9 = zero, zero, zero, zero, zero, zero, zero, zero, zero, zero
    p0, p1, p2, p3, p4, p5, p6, p7, p8, p9 = zero, zero, zero, zero, zero, zero, zero, zero, zero, zero
    total = zero
    valid_cols = cols < WO
    for r in range(steps):
        h_x, h_y, h_xx, h_yy, h_xy = _filter_row(xs, ys, first + r, cols, H, W, sx_h, sx_w, sy_h, sy_w)
        mu_x, x0, x1, x2, x3, x4, x5, x6, x7, x8, x9 = _slide(h_x, x0, x1, x2, x3, x4, x5, x6, x7, x8, x9)
        mu_y, y0, y1, y2, y3, y4, y5, y6, y7, y8, y9 = _slide(h_y, y0, y1, y2, y3, y4, y5, y6, y7, y8, y9)
        e_xx, a0, a1, a2, a3, a4, a5, a6, a7, a8, a9 = _slide(h_xx, a0, a1, a2, a3, a4, a5, a6, a7, a8, a9)
        e_yy, b0, b1, b2, b3, b4, b5, b6, b7, b8, b9 = _slide(h_yy, b0, b1, b2, b3, b4, b5, b6, b7, b8, b9)
        e_xy, p0, p1, p2, p3, p4, p5, p6, p7, p8, p9 = _slide(h_xy, p0, p1, p2, p3, p4, p5, p6, p7, p8, p9)
        out_row = first + r - (_WIN - 1)  # the output row this input row completes (none for the first 10)
        value, d_mu, d_xx, d_xy = _local_ssim(mu_x, mu_y, e_xx, e_yy, e_xy, C1, C2)
        keep = valid_cols & (r >= _WIN - 1)
        total += tl.where(keep, value, 0.0)
        if KEEP_MAPS:
            plane = maps_ptr + (frame * C + c) * 3 * HO * WO + out_row * WO + cols
            tl.store(plane, d_mu, mask=keep)
            tl.store(plane + HO * WO, d_xx, mask=keep)
            tl.store(plane + 2 * HO * WO, d_xy, mask=keep)
    per_plane = tl.num_programs(1) * tl.num_programs(2)
    slot = (frame * C + c) * per_plane + tl.program_id(1) * tl.num_programs(2) + tl.program_id(2)
    tl.store(partial_ptr + slot, tl.sum(total, axis=0))


@triton.jit
def _filter_map_row(plane, i, cols, HO, WO):
    """Row ``i`` of the three derivative maps, filtered horizontally the transposed way: pixel column j sums
    window columns j - 10 .. j (zero outside the maps)."""
    h_mu = tl.zeros(cols.shape, dtype=tl.float32)
    h_xx = tl.zeros(cols.shape, dtype=tl.float32)
    h_xy = tl.zeros(cols.shape, dtype=tl.float32)
    rows = i + tl.zeros(cols.shape, dtype=tl.int32)  # as a vector: the interpreter cannot mask with a scalar
    for dw in tl.static_range(_WIN):
        j = cols - dw
        present = (j >= 0) & (j < WO) & (rows >= 0) & (rows < HO)
        at = plane + i * WO + j
        h_mu += _TAPS[dw] * tl.load(at, mask=present, other=0.0)
        h_xx += _TAPS[dw] * tl.load(at + HO * WO, mask=present, other=0.0)
        h_xy += _TAPS[dw] * tl.load(at + 2 * HO * WO, mask=present, other=0.0)
    return h_mu, h_xx, h_xy


# dS/dx(q) = scale * sum over window positions p covering q of g(q - p) *
#            [ dS/dmu_x(p) + 2 x(q) dS/dE[x^2](p) + y(q) dS/dE[xy](p) ],
# scale = upstream gradient / (C * number of positions); g is the 2-D Gaussian.
@triton.jit
def _ssim_backward_kernel(
    x_ptr, y_ptr, maps_ptr, grad_ptr, out_ptr,
    C, H, W, HO, WO,
    sx_n, sx_c, sx_h, sx_w,
    sy_n, sy_c, sy_h, sy_w,
    SEG: tl.constexpr, COLS: tl.constexpr,
):
    frame, c, cols, first = _locate(C, COLS, SEG)
    plane = maps_ptr + (frame * C + c) * 3 * HO * WO
    scale = tl.load(grad_ptr + frame).to(tl.float32) / (C * HO * WO)
    inside_cols = cols < W
    # Partial vertical sums of the three maps for the next 10 pixel rows, nearest first; window rows
    # first - 10 .. first - 1 (zero above the frame) only open them. Pixel row i takes window row i - d with
    # tap d, the transpose of the forward's; the Gaussian is symmetric, so the forward's _slide serves.
    zero = tl.zeros([COLS], dtype=tl.float32)
    m0, m1, m2, m3, m4, m5, m6, m7, m8, m9 = zero, zero, zero, zero, zero, zero, zero, zero, zero, zero
    a0, a1, a2, a3, a4, a5, a6, a7, a8, a9 = zero, zero, zero, zero, zero, zero, zero, zero, zero, zero
    p0, p1, p2, p3, p4, p5, p6, p7, p8, p9 = zero, zero, zero, zero, zero, zero, zero, zero, zero, zero
    for r in range(tl.minimum(SEG, H - first) + _WIN - 1):
        row = first - (_WIN - 1) + r  # the window row read, and the pixel row it completes
        h_mu, h_xx, h_xy = _filter_map_row(plane, row, cols, HO, WO)
        acc_mu, m0, m1, m2, m3, m4, m5, m6, m7, m8, m9 = _slide(h_mu, m0, m1, m2, m3, m4, m5, m6, m7, m8, m9)
        acc_xx, a0, a1, a2, a3, a4, a5, a6, a7, a8, a9 = _slide(h_xx, a0, a1, a2, a3, a4, a5, a6, a7, a8, a9)
        acc_xy, p0, p1, p2, p3, p4, p5, p6, p7, p8, p9 = _slide(h_xy, p0, p1, p2, p3, p4, p5, p6, p7, p8, p9)
        inside = inside_cols & (r >= _WIN - 1)
        xv = tl.load(x_ptr + frame * sx_n + c * sx_c + row * sx_h + cols * sx_w, mask=inside, other=0.0)
        yv = tl.load(y_ptr + frame * sy_n + c * sy_c + row * sy_h + cols * sy_w, mask=inside, other=0.0)
        grad = scale * (acc_mu + 2 * xv.to(tl.float32) * acc_xx + yv.to(tl.float32) * acc_xy)
        tl.store(out_ptr + (frame * C + c) * H * W + row * W + cols, grad, mask=inside)


# --------------------------------------------------------------------------- launchers
def _grid(planes: int, rows: int, cols: int, device: torch.device) -> tuple[tuple[int, int, int], int]:
    return segment_grid("ssim", planes, triton.cdiv(cols, COLS), rows, SEG, PROGRAMS_PER_SM, device)


def _launch_forward(x: torch.Tensor, y: torch.Tensor, keep_maps: bool, rows: torch.Tensor | None = None):
    """Per-frame SSIM of N x C x H x W frames and, when kept, the derivative maps. ``rows`` (bool, N / per_row
    entries) limits the work to the frames of those rows, ``N / len(rows)`` consecutive frames per row."""
    frames, channels, height, width = x.shape
    ho, wo = height - SSIM_WINDOW + 1, width - SSIM_WINDOW + 1
    grid, seg = _grid(frames * channels, ho, wo, x.device)
    partial = torch.empty(frames, channels * grid[1] * grid[2], device=x.device, dtype=torch.float32)
    maps = torch.empty(frames, channels, 3, ho, wo, device=x.device, dtype=torch.float32) if keep_maps \
        else x.new_empty(0, dtype=torch.float32)
    if frames:
        _ssim_forward_kernel[grid](
            x, y, partial, maps if keep_maps else partial,
            rows.contiguous().view(torch.uint8) if rows is not None else partial,
            channels, height, width, ho, wo, frames // rows.numel() if rows is not None else 1,
            *x.stride(), *y.stride(), C1=SSIM_K1 ** 2, C2=SSIM_K2 ** 2, KEEP_MAPS=keep_maps,
            HAS_ROWS=rows is not None, SEG=seg, COLS=COLS, num_warps=NUM_WARPS,
        )
    # Per-program partial sums, added in a fixed order: deterministic, unlike atomics.
    return partial.sum(dim=1) / (channels * ho * wo), maps


def _launch_backward(grad: torch.Tensor, x: torch.Tensor, y: torch.Tensor, maps: torch.Tensor) -> torch.Tensor:
    frames, channels, height, width = x.shape
    out = torch.empty(frames, channels, height, width, device=x.device, dtype=torch.float32)
    if frames:
        grid, seg = _grid(frames * channels, height, width, x.device)
        _ssim_backward_kernel[grid](
            x, y, maps, grad.contiguous(), out,
            channels, height, width, height - SSIM_WINDOW + 1, width - SSIM_WINDOW + 1,
            *x.stride(), *y.stride(), SEG=seg, COLS=COLS, num_warps=NUM_WARPS,
        )
    return out
# --------------------------------------------------------------------------- custom ops
@torch.library.custom_op("sava::ssim_forward", mutates_args=())
def _ssim_forward_op(x: torch.Tensor, y: torch.Tensor, keep_maps: bool) -> list[torch.Tensor]:
    return list(_launch_forward(x, y, keep_maps))


@_ssim_forward_op.register_fake
def _(x, y, keep_maps):
    frames, channels, height, width = x.shape
    maps_shape = (frames, channels, 3, height - SSIM_WINDOW + 1, width - SSIM_WINDOW + 1) if keep_maps else (0,)
    return [x.new_empty(frames, dtype=torch.float32), x.new_empty(maps_shape, dtype=torch.float32)]


@torch.library.custom_op("sava::ssim_backward", mutates_args=())
def _ssim_backward_op(grad: torch.Tensor, x: torch.Tensor, y: torch.Tensor, maps: torch.Tensor) -> torch.Tensor:
    return _launch_backward(grad, x, y, maps)


@_ssim_backward_op.register_fake
def _(grad, x, y, maps):
    return x.new_empty(x.shape, dtype=torch.float32)


class _SSIM(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, y):
        keep = x.requires_grad
        compiling = torch.compiler.is_compiling()
        ctx.one_pass = keep and DESIGN == "one_pass"
        # Eager calls launch directly (a custom op's dispatch costs more than the kernel on one frame).
        if ctx.one_pass:
            forward = ssim_one_pass._ssim_one_pass_op if compiling else ssim_one_pass.launch
            values, gradient = forward(x, y)
            ctx.save_for_backward(gradient)
            ctx.dtype = x.dtype
            return values
        forward = _ssim_forward_op if compiling else _launch_forward
        values, maps = forward(x, y, keep)
        if keep:
            ctx.save_for_backward(x, y, maps)
        return values

    @staticmethod
    def backward(ctx, grad):
        if ctx.one_pass:
            (gradient,) = ctx.saved_tensors
            return (grad.to(torch.float32).view(-1, 1, 1, 1) * gradient).to(ctx.dtype), None
        x, y, maps = ctx.saved_tensors
        backward = _ssim_backward_op if torch.compiler.is_compiling() else _launch_backward
        return backward(grad, x, y, maps).to(x.dtype), None


# --------------------------------------------------------------------------- public
def ssim(x: torch.Tensor, y: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
    """Per-frame SSIM ``(..., C, H, W) -> (...)``; differentiable in ``x`` only. ``rows`` (bool, one per entry
    of the first dimension; evaluation only) limits the work to those rows: the others' values are zero."""
    if x.shape != y.shape:
        raise ValueError(f"ssim: shapes differ: {tuple(x.shape)} vs {tuple(y.shape)}")
    if x.dim() < 3:
        raise ValueError(f"ssim: frames must be (..., C, H, W), got shape {tuple(x.shape)}")
    height, width = x.shape[-2:]
    if height < SSIM_WINDOW or width < SSIM_WINDOW:
        raise ValueError(
            f"ssim: frames of {height} x {width} are smaller than the {SSIM_WINDOW} x {SSIM_WINDOW} window"
        )
    if DESIGN not in DESIGNS:
        raise ValueError(f"ssim: DESIGN is {DESIGN!r}; choose from {', '.join(DESIGNS)}")
    if y.requires_grad:
        raise ValueError("ssim: the fused kernel differentiates the first argument only; use backend='reference'")
    lead = x.shape[:-3]
    if rows is not None:
        values, _ = _launch_forward(x.reshape(-1, *x.shape[-3:]), y.reshape(-1, *y.shape[-3:]), False, rows)
        return values.reshape(lead)
    values = _SSIM.apply(x.reshape(-1, *x.shape[-3:]), y.reshape(-1, *y.shape[-3:]))
    return values.reshape(lead)
