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
(an evaluation-only forward moves 8 B per value).

Each program computes a ROWS x COLS tile, separably: it walks the ROWS + 10
input rows the tile's windows cover, filters each row horizontally with 11
shifted loads, and adds the filtered row into every output row it belongs to
with that row's vertical tap (a broadcast multiply-add; taps outside the window
are zero). Per output, with ROWS = 16: 36 loads and ~220 multiply-adds for the
five window statistics, against 242 loads and 605 multiply-adds for the direct
11 x 11 sum an earlier version of this file used. The backward is the same
separable sum, transposed, over the three derivative maps.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from ..reference import SSIM_K1, SSIM_K2, SSIM_WINDOW, gaussian_window

ROWS, COLS = 16, 64  # output tile of one program (forward: window positions; backward: pixels)
NUM_WARPS = 4  # launch constants are read at each launch: `bench_ssim.py --sweep` tries others


# --------------------------------------------------------------------------- kernels
@triton.jit
def _vertical_taps(taps_ptr, first, step: tl.constexpr, ROWS: tl.constexpr, WIN: tl.constexpr):
    """Column vector of the tile's vertical taps: entry o is taps[first + step * o], zero outside the window."""
    tap = first + step * tl.arange(0, ROWS)
    return tl.load(taps_ptr + tap, mask=(tap >= 0) & (tap < WIN), other=0.0)[:, None]


@triton.jit
def _ssim_forward_kernel(
    x_ptr, y_ptr, taps_ptr, partial_ptr, maps_ptr,
    C, H, W, HO, WO,
    sx_n, sx_c, sx_h, sx_w,
    sy_n, sy_c, sy_h, sy_w,
    C1: tl.constexpr, C2: tl.constexpr, WIN: tl.constexpr, KEEP_MAPS: tl.constexpr,
    ROWS: tl.constexpr, COLS: tl.constexpr,
):
    frame = tl.program_id(0).to(tl.int64)
    tile_i = tl.program_id(1)
    tile_j = tl.program_id(2)
    out_rows = tile_i * ROWS + tl.arange(0, ROWS)
    cols = tile_j * COLS + tl.arange(0, COLS)
    valid = (out_rows[:, None] < HO) & (cols[None, :] < WO)
    total = tl.zeros([ROWS, COLS], dtype=tl.float32)
    for c in range(C):
        xs = x_ptr + frame * sx_n + c * sx_c
        ys = y_ptr + frame * sy_n + c * sy_c
        mu_x = tl.zeros([ROWS, COLS], dtype=tl.float32)
        mu_y = tl.zeros([ROWS, COLS], dtype=tl.float32)
        e_xx = tl.zeros([ROWS, COLS], dtype=tl.float32)
        e_yy = tl.zeros([ROWS, COLS], dtype=tl.float32)
        e_xy = tl.zeros([ROWS, COLS], dtype=tl.float32)
        for r in range(ROWS + WIN - 1):
            # As a vector: the interpreter cannot mask with a scalar condition.
            row = tile_i * ROWS + r + tl.zeros([COLS], dtype=tl.int32)
            h_x = tl.zeros([COLS], dtype=tl.float32)
            h_y = tl.zeros([COLS], dtype=tl.float32)
            h_xx = tl.zeros([COLS], dtype=tl.float32)
            h_yy = tl.zeros([COLS], dtype=tl.float32)
            h_xy = tl.zeros([COLS], dtype=tl.float32)
            for dw in tl.static_range(WIN):
                weight = tl.load(taps_ptr + dw)
                inside = (row < H) & (cols + dw < W)
                xv = tl.load(xs + row * sx_h + (cols + dw) * sx_w, mask=inside, other=0.0).to(tl.float32)
                yv = tl.load(ys + row * sy_h + (cols + dw) * sy_w, mask=inside, other=0.0).to(tl.float32)
                h_x += weight * xv
                h_y += weight * yv
                h_xx += weight * xv * xv
                h_yy += weight * yv * yv
                h_xy += weight * xv * yv
            # Input row `row` is tap r - o of output row o of this tile.
            vertical = _vertical_taps(taps_ptr, r, -1, ROWS, WIN)
            mu_x += vertical * h_x[None, :]
            mu_y += vertical * h_y[None, :]
            e_xx += vertical * h_xx[None, :]
            e_yy += vertical * h_yy[None, :]
            e_xy += vertical * h_xy[None, :]
        lum_num = 2 * mu_x * mu_y + C1
        lum_den = mu_x * mu_x + mu_y * mu_y + C1
        con_num = 2 * (e_xy - mu_x * mu_y) + C2
        con_den = (e_xx - mu_x * mu_x) + (e_yy - mu_y * mu_y) + C2
        value = (lum_num * con_num) / (lum_den * con_den)
        total += tl.where(valid, value, 0.0)
        if KEEP_MAPS:
            # Derivatives of the local SSIM with respect to the raw window
            # statistics of x (mu_x, E[x^2], E[xy]), y held fixed.
            denom = lum_den * con_den
            d_mu = (2 * mu_y * (con_num - lum_num) - 2 * mu_x * value * (con_den - lum_den)) / denom
            d_xx = -value / con_den
            d_xy = 2 * lum_num / denom
            plane = maps_ptr + (frame * C + c) * 3 * HO * WO + out_rows[:, None] * WO + cols[None, :]
            tl.store(plane, d_mu, mask=valid)
            tl.store(plane + HO * WO, d_xx, mask=valid)
            tl.store(plane + 2 * HO * WO, d_xy, mask=valid)
    tiles = tl.num_programs(1) * tl.num_programs(2)
    tile_sum = tl.sum(tl.sum(total, axis=1), axis=0)
    tl.store(partial_ptr + frame * tiles + tile_i * tl.num_programs(2) + tile_j, tile_sum)


# dS/dx(q) = scale * sum over window positions p covering q of g(q - p) *
#            [ dS/dmu_x(p) + 2 x(q) dS/dE[x^2](p) + y(q) dS/dE[xy](p) ],
# scale = upstream gradient / (C * number of positions); g is the 2-D Gaussian.
@triton.jit
def _ssim_backward_kernel(
    x_ptr, y_ptr, taps_ptr, maps_ptr, grad_ptr, out_ptr,
    C, H, W, HO, WO,
    sx_n, sx_c, sx_h, sx_w,
    sy_n, sy_c, sy_h, sy_w,
    WIN: tl.constexpr, ROWS: tl.constexpr, COLS: tl.constexpr,
):
    frame = tl.program_id(0).to(tl.int64)
    tile_i = tl.program_id(1)
    rows = tile_i * ROWS + tl.arange(0, ROWS)
    cols = tl.program_id(2) * COLS + tl.arange(0, COLS)
    inside = (rows[:, None] < H) & (cols[None, :] < W)
    scale = tl.load(grad_ptr + frame).to(tl.float32) / (C * HO * WO)
    for c in range(C):
        plane = maps_ptr + (frame * C + c) * 3 * HO * WO
        acc_mu = tl.zeros([ROWS, COLS], dtype=tl.float32)
        acc_xx = tl.zeros([ROWS, COLS], dtype=tl.float32)
        acc_xy = tl.zeros([ROWS, COLS], dtype=tl.float32)
        for r in range(ROWS + WIN - 1):
            # Window row, as a vector for the masks; it covers pixel rows i .. i + WIN - 1.
            i = tile_i * ROWS - (WIN - 1) + r + tl.zeros([COLS], dtype=tl.int32)
            h_mu = tl.zeros([COLS], dtype=tl.float32)
            h_xx = tl.zeros([COLS], dtype=tl.float32)
            h_xy = tl.zeros([COLS], dtype=tl.float32)
            for dw in tl.static_range(WIN):
                weight = tl.load(taps_ptr + dw)
                j = cols - dw
                present = (i >= 0) & (i < HO) & (j >= 0) & (j < WO)
                at = plane + i * WO + j
                h_mu += weight * tl.load(at, mask=present, other=0.0)
                h_xx += weight * tl.load(at + HO * WO, mask=present, other=0.0)
                h_xy += weight * tl.load(at + 2 * HO * WO, mask=present, other=0.0)
            # Pixel row o of this tile sits at tap o - r + WIN - 1 of window row i.
            vertical = _vertical_taps(taps_ptr, WIN - 1 - r, 1, ROWS, WIN)
            acc_mu += vertical * h_mu[None, :]
            acc_xx += vertical * h_xx[None, :]
            acc_xy += vertical * h_xy[None, :]
        xv = tl.load(x_ptr + frame * sx_n + c * sx_c + rows[:, None] * sx_h + cols[None, :] * sx_w,
                     mask=inside, other=0.0).to(tl.float32)
        yv = tl.load(y_ptr + frame * sy_n + c * sy_c + rows[:, None] * sy_h + cols[None, :] * sy_w,
                     mask=inside, other=0.0).to(tl.float32)
        grad = scale * (acc_mu + 2 * xv * acc_xx + yv * acc_xy)
        tl.store(out_ptr + (frame * C + c) * H * W + rows[:, None] * W + cols[None, :], grad, mask=inside)


# --------------------------------------------------------------------------- launchers
_TAPS: dict[torch.device, torch.Tensor] = {}


def _taps(device) -> torch.Tensor:
    """The window's taps, made once per device (nine operations at every call otherwise)."""
    if device not in _TAPS:
        _TAPS[device] = gaussian_window(SSIM_WINDOW, dtype=torch.float32, device=device)
    return _TAPS[device]


def _launch_forward(x: torch.Tensor, y: torch.Tensor, keep_maps: bool):
    frames, channels, height, width = x.shape
    ho, wo = height - SSIM_WINDOW + 1, width - SSIM_WINDOW + 1
    tiles = (triton.cdiv(ho, ROWS), triton.cdiv(wo, COLS))
    partial = torch.empty(frames, tiles[0] * tiles[1], device=x.device, dtype=torch.float32)
    maps = torch.empty(frames, channels, 3, ho, wo, device=x.device, dtype=torch.float32) if keep_maps \
        else x.new_empty(0, dtype=torch.float32)
    if frames:
        _ssim_forward_kernel[(frames, *tiles)](
            x, y, _taps(x.device), partial, maps if keep_maps else partial,
            channels, height, width, ho, wo, *x.stride(), *y.stride(),
            C1=(SSIM_K1) ** 2, C2=(SSIM_K2) ** 2, WIN=SSIM_WINDOW, KEEP_MAPS=keep_maps, ROWS=ROWS, COLS=COLS,
            num_warps=NUM_WARPS,
        )
    # Per-tile partial sums, added in a fixed order: deterministic, unlike atomics.
    return partial.sum(dim=1) / (channels * ho * wo), maps


def _launch_backward(grad: torch.Tensor, x: torch.Tensor, y: torch.Tensor, maps: torch.Tensor) -> torch.Tensor:
    frames, channels, height, width = x.shape
    out = torch.empty(frames, channels, height, width, device=x.device, dtype=torch.float32)
    if frames:
        _ssim_backward_kernel[(frames, triton.cdiv(height, ROWS), triton.cdiv(width, COLS))](
            x, y, _taps(x.device), maps, grad.contiguous(), out,
            channels, height, width, height - SSIM_WINDOW + 1, width - SSIM_WINDOW + 1,
            *x.stride(), *y.stride(), WIN=SSIM_WINDOW, ROWS=ROWS, COLS=COLS, num_warps=NUM_WARPS,
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
        # Eager calls launch directly (a custom op's dispatch costs more than the kernel on one frame).
        forward = _ssim_forward_op if torch.compiler.is_compiling() else _launch_forward
        values, maps = forward(x, y, keep)
        if keep:
            ctx.save_for_backward(x, y, maps)
        return values

    @staticmethod
    def backward(ctx, grad):
        x, y, maps = ctx.saved_tensors
        backward = _ssim_backward_op if torch.compiler.is_compiling() else _launch_backward
        return backward(grad, x, y, maps).to(x.dtype), None


# --------------------------------------------------------------------------- public
def ssim(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-frame SSIM ``(..., C, H, W) -> (...)``; differentiable in ``x`` only."""
    if x.shape != y.shape:
        raise ValueError(f"ssim: shapes differ: {tuple(x.shape)} vs {tuple(y.shape)}")
    if x.dim() < 3:
        raise ValueError(f"ssim: frames must be (..., C, H, W), got shape {tuple(x.shape)}")
    height, width = x.shape[-2:]
    if height < SSIM_WINDOW or width < SSIM_WINDOW:
        raise ValueError(
            f"ssim: frames of {height} x {width} are smaller than the {SSIM_WINDOW} x {SSIM_WINDOW} window"
        )
    if y.requires_grad:
        raise ValueError("ssim: the fused kernel differentiates the first argument only; use backend='reference'")
    lead = x.shape[:-3]
    values = _SSIM.apply(x.reshape(-1, *x.shape[-3:]), y.reshape(-1, *y.shape[-3:]))
    return values.reshape(lead)
