"""Per-frame SSIM and its gradient for the first argument in one pass: the
second SSIM design, beside the two passes of ``ssim.py`` (``ssim.DESIGN``
chooses; ``bench_ssim.py --sweep`` times both).

Why it can be one pass: the loss reaches a frame's SSIM through one scalar per
frame, so dS/dx does not depend on the upstream gradient except by a factor.
The forward computes dS/dx itself and keeps it; the backward only scales it.

Bytes per value (float32): read x, y (8 B), write dS/dx (4 B), then the
backward's scale reads it and writes dx (8 B): 20 B, against 44 B for the maps
design. The derivative maps never reach device memory: each row of them goes
through a small per-program scratch row (L1/L2) so that the transposed
horizontal filter can read its neighbours' columns.

Layout: one program per (frame and channel, strip of COLS - 10 pixel columns,
segment of SEG pixel rows). It walks input rows from 10 above the segment to 10
below it, keeping the five statistics' open vertical sums in registers as the
two-pass forward does; every input row completes one window row, whose SSIM
and three derivative maps come out. The map row is filtered horizontally the
transposed way through the scratch row (a window column feeds pixel columns
j .. j + 10, so a strip computes 10 window columns left of its pixels), then
fed into the open vertical sums of the gradient (3 maps x 10 rows, registers),
which complete one pixel row per window row. Halo cost: (SEG + 20) / SEG rows
and COLS / (COLS - 10) columns of the forward's arithmetic.

ptxas (sm_90): 155 registers, no spills, at 4 warps and COLS = 128 (81 open
sums carried per column; `python -m sava.aot_report`): fewer resident warps
than the maps design's 87, which the sweep weighs against the bytes saved.

Memory kept for the backward: dS/dx (4 B per value), against three maps (12 B
per window position); the scratch adds 6 x COLS floats per program, about a
tenth of a frame at SEG 64 and COLS 128.

Ordering: the scratch row is written by every thread of the program and read
shifted by others, so a barrier separates the stores from the loads; two
scratch rows alternate, so the next row's stores need no second barrier (a
thread that passes row t's barrier knows every thread finished reading row
t - 1's buffer, the one row t + 1 writes).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from ..reference import SSIM_K1, SSIM_K2, SSIM_WINDOW
from .ssim_window import _TAPS, _WIN, _filter_row, _local_ssim, _slide, segment_grid

# Launch constants, read at each launch (`bench_ssim.py --sweep` tries others). COLS is the width of a
# program's window columns: it writes the gradient of COLS - 10 pixel columns.
SEG, COLS = 64, 128
NUM_WARPS = 4
PROGRAMS_PER_SM = 4


@triton.jit
def _ssim_one_pass_kernel(
    x_ptr, y_ptr, grad_ptr, partial_ptr, scratch_ptr,
    C, H, W, HO, WO,
    sx_n, sx_c, sx_h, sx_w,
    sy_n, sy_c, sy_h, sy_w,
    C1: tl.constexpr, C2: tl.constexpr, SEG: tl.constexpr, COLS: tl.constexpr,
):
    plane = tl.program_id(0).to(tl.int64)
    frame, c = plane // C, plane % C
    lane = tl.arange(0, COLS)
    first_col = tl.program_id(1) * (COLS - (_WIN - 1))  # the strip's first pixel column
    window_cols = first_col - (_WIN - 1) + lane
    pixel_cols = first_col + lane  # lanes 0 .. COLS - 11 carry a pixel column
    first = tl.program_id(2) * SEG  # the segment's first pixel row
    xs = x_ptr + frame * sx_n + c * sx_c
    ys = y_ptr + frame * sy_n + c * sy_c
    program = (plane * tl.num_programs(1) + tl.program_id(1)) * tl.num_programs(2) + tl.program_id(2)
    scratch = scratch_ptr + program * (2 * 3 * COLS)
    maps_cols = (window_cols >= 0) & (window_cols < WO)
    # The windows whose value this program adds: its own strip's columns (the 10 on its left are the strip
    # before's), rows inside its segment.
    owned_cols = maps_cols & (lane >= _WIN - 1)
    pixel_lanes = (lane < COLS - (_WIN - 1)) & (pixel_cols < W)
    scale = 1.0 / (C * HO * WO)

    zero = tl.zeros([COLS], dtype=tl.float32)
    # Open vertical sums of the five statistics (x, y, x^2, y^2, xy) for the next 10 window rows.
    x0, x1, x2, x3, x4, x5, x6, x7, x8, x9 = zero, zero, zero, zero, zero, zero, zero, zero, zero, zero
    y0, y1, y2, y3, y4, y5, y6, y7, y8, y9 = zero, zero, zero, zero, zero, zero, zero, zero, zero, zero
    a0, a1, a2, a3, a4, a5, a6, a7, a8, a9 = zero, zero, zero, zero, zero, zero, zero, zero, zero, zero
    b0, b1, b2, b3, b4, b5, b6, b7, b8, b9 = zero, zero, zero, zero, zero, zero, zero, zero, zero, zero
    p0, p1, p2, p3, p4, p5, p6, p7, p8, p9 = zero, zero, zero, zero, zero, zero, zero, zero, zero, zero
    # Open vertical sums of the three filtered maps for the next 10 pixel rows.
    m0, m1, m2, m3, m4, m5, m6, m7, m8, m9 = zero, zero, zero, zero, zero, zero, zero, zero, zero, zero
    q0, q1, q2, q3, q4, q5, q6, q7, q8, q9 = zero, zero, zero, zero, zero, zero, zero, zero, zero, zero
    r0, r1, r2, r3, r4, r5, r6, r7, r8, r9 = zero, zero, zero, zero, zero, zero, zero, zero, zero, zero
    total = zero

    # Input rows first - 10 .. first - 1 only open the statistics' sums: the first window row a pixel of this
    # segment needs, first - 10, is complete only at input row first.
    for t in range(_WIN - 1):
        row = first - (_WIN - 1) + t
        h_x, h_y, h_xx, h_yy, h_xy = _filter_row(xs, ys, row, window_cols, H, W, sx_h, sx_w, sy_h, sy_w)
        _, x0, x1, x2, x3, x4, x5, x6, x7, x8, x9 = _slide(h_x, x0, x1, x2, x3, x4, x5, x6, x7, x8, x9)
        _, y0, y1, y2, y3, y4, y5, y6, y7, y8, y9 = _slide(h_y, y0, y1, y2, y3, y4, y5, y6, y7, y8, y9)
        _, a0, a1, a2, a3, a4, a5, a6, a7, a8, a9 = _slide(h_xx, a0, a1, a2, a3, a4, a5, a6, a7, a8, a9)
        _, b0, b1, b2, b3, b4, b5, b6, b7, b8, b9 = _slide(h_yy, b0, b1, b2, b3, b4, b5, b6, b7, b8, b9)
        _, p0, p1, p2, p3, p4, p5, p6, p7, p8, p9 = _slide(h_xy, p0, p1, p2, p3, p4, p5, p6, p7, p8, p9)

    # From input row first on, each input row completes window row `done` (10 rows up), and feeding that row's
    # maps completes pixel row `done` (window rows done - 10 .. done cover it); window rows first - 10 ..
    # first - 1 only open the gradient's sums.
    for t in range(_WIN - 1, tl.minimum(SEG, H - first) + 2 * (_WIN - 1)):
        row = first - (_WIN - 1) + t
        done = row - (_WIN - 1) + tl.zeros([COLS], dtype=tl.int32)  # a vector: the interpreter masks with no scalar
        h_x, h_y, h_xx, h_yy, h_xy = _filter_row(xs, ys, row, window_cols, H, W, sx_h, sx_w, sy_h, sy_w)
        mu_x, x0, x1, x2, x3, x4, x5, x6, x7, x8, x9 = _slide(h_x, x0, x1, x2, x3, x4, x5, x6, x7, x8, x9)
        mu_y, y0, y1, y2, y3, y4, y5, y6, y7, y8, y9 = _slide(h_y, y0, y1, y2, y3, y4, y5, y6, y7, y8, y9)
        e_xx, a0, a1, a2, a3, a4, a5, a6, a7, a8, a9 = _slide(h_xx, a0, a1, a2, a3, a4, a5, a6, a7, a8, a9)
        e_yy, b0, b1, b2, b3, b4, b5, b6, b7, b8, b9 = _slide(h_yy, b0, b1, b2, b3, b4, b5, b6, b7, b8, b9)
        e_xy, p0, p1, p2, p3, p4, p5, p6, p7, p8, p9 = _slide(h_xy, p0, p1, p2, p3, p4, p5, p6, p7, p8, p9)
        value, d_mu, d_xx, d_xy = _local_ssim(mu_x, mu_y, e_xx, e_yy, e_xy, C1, C2)
        window = maps_cols & (done >= 0) & (done < HO)
        total += tl.where(owned_cols & (done >= first) & (done < HO), value, 0.0)

        # The transposed horizontal filter: pixel lane m sums window lanes m .. m + 10 (symmetric taps).
        buffer = scratch + (t % 2) * (3 * COLS)
        tl.store(buffer + lane, tl.where(window, d_mu, 0.0))
        tl.store(buffer + COLS + lane, tl.where(window, d_xx, 0.0))
        tl.store(buffer + 2 * COLS + lane, tl.where(window, d_xy, 0.0))
        tl.debug_barrier()
        g_mu = tl.zeros([COLS], dtype=tl.float32)
        g_xx = tl.zeros([COLS], dtype=tl.float32)
        g_xy = tl.zeros([COLS], dtype=tl.float32)
        for dw in tl.static_range(_WIN):
            inside = lane + dw < COLS
            g_mu += _TAPS[dw] * tl.load(buffer + lane + dw, mask=inside, other=0.0)
            g_xx += _TAPS[dw] * tl.load(buffer + COLS + lane + dw, mask=inside, other=0.0)
            g_xy += _TAPS[dw] * tl.load(buffer + 2 * COLS + lane + dw, mask=inside, other=0.0)
        acc_mu, m0, m1, m2, m3, m4, m5, m6, m7, m8, m9 = _slide(g_mu, m0, m1, m2, m3, m4, m5, m6, m7, m8, m9)
        acc_xx, q0, q1, q2, q3, q4, q5, q6, q7, q8, q9 = _slide(g_xx, q0, q1, q2, q3, q4, q5, q6, q7, q8, q9)
        acc_xy, r0, r1, r2, r3, r4, r5, r6, r7, r8, r9 = _slide(g_xy, r0, r1, r2, r3, r4, r5, r6, r7, r8, r9)

        # dS/dx at pixel row `done` = scale * sum over the windows covering it of g * [dS/dmu_x + 2 x dS/dE[x^2]
        # + y dS/dE[xy]]; the upstream gradient comes later (the backward's scale).
        pixels = pixel_lanes & (done >= first)
        xv = tl.load(xs + done * sx_h + pixel_cols * sx_w, mask=pixels, other=0.0).to(tl.float32)
        yv = tl.load(ys + done * sy_h + pixel_cols * sy_w, mask=pixels, other=0.0).to(tl.float32)
        gradient = scale * (acc_mu + 2 * xv * acc_xx + yv * acc_xy)
        tl.store(grad_ptr + plane * H * W + done * W + pixel_cols, gradient, mask=pixels)

    tl.store(partial_ptr + program, tl.sum(total, axis=0))


def launch(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-frame SSIM of N x C x H x W frames and dS/dx (float32, contiguous, for an upstream gradient of 1)."""
    frames, channels, height, width = x.shape
    ho, wo = height - SSIM_WINDOW + 1, width - SSIM_WINDOW + 1
    if COLS <= SSIM_WINDOW - 1:
        raise ValueError(f"ssim one pass: COLS = {COLS} leaves no pixel columns (it must exceed {SSIM_WINDOW - 1})")
    strips = triton.cdiv(width, COLS - (SSIM_WINDOW - 1))
    grid, seg = segment_grid("ssim one pass", frames * channels, strips, height, SEG, PROGRAMS_PER_SM, x.device)
    programs = grid[0] * grid[1] * grid[2]
    gradient = torch.empty(frames, channels, height, width, device=x.device, dtype=torch.float32)
    partial = torch.empty(frames, channels * grid[1] * grid[2], device=x.device, dtype=torch.float32)
    scratch = torch.empty(programs * 2 * 3 * COLS, device=x.device, dtype=torch.float32)
    if frames:
        _ssim_one_pass_kernel[grid](
            x, y, gradient, partial, scratch,
            channels, height, width, ho, wo,
            *x.stride(), *y.stride(), C1=SSIM_K1 ** 2, C2=SSIM_K2 ** 2, SEG=seg, COLS=COLS, num_warps=NUM_WARPS,
        )
    # Per-program partial sums, added in a fixed order: deterministic, unlike atomics.
    return partial.sum(dim=1) / (channels * ho * wo), gradient


@torch.library.custom_op("sava::ssim_one_pass", mutates_args=())
def _ssim_one_pass_op(x: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
    return list(launch(x, y))


@_ssim_one_pass_op.register_fake
def _(x, y):
    return [x.new_empty(x.shape[0], dtype=torch.float32), x.new_empty(x.shape, dtype=torch.float32)]
