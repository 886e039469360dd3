"""Fused sparse perturbation: gather the selected frames, warp them by the flow,
add the noise, clamp -- one pass, cost proportional to the k selected frames.

Same function as ``reference.perturb_frames`` applied to
``reference.gather_frames(video, frame_idx)``; the tests hold them together.

Layout of this file: Triton kernels, launchers, the registered custom ops with
their fake and autograd implementations, and the public functions.
"""

from __future__ import annotations

import weakref

import torch
import triton
import triton.language as tl

from .grid import launch_grid

BLOCK = 1024  # pixels per program; every channel of those pixels is handled by the same program
# 8 warps, 4 pixels per thread. At 4 warps ptxas gives the flow backward 146-253 registers and the forward
# 96-128 (8 to 12 resident warps of 64 per SM); at 8 warps 94-150 and 48-80, with no spills either way
# (`python -m sava.kernels.aot`, sm_90). The gather is latency-bound, so the resident warps are what counts.
NUM_WARPS = 8


# --------------------------------------------------------------------------- kernels
@triton.jit
def _bilinear_setup(flow, offs, h, w, mask, H, W):
    """Sample point, its cell (top-left corner, clamped so the point lies inside)
    and whether each coordinate was inside the frame before clamping. ``flow``: this frame's 2 x H x W flow."""
    y_raw = h.to(tl.float32) + tl.load(flow + offs, mask=mask, other=0.0).to(tl.float32)
    x_raw = w.to(tl.float32) + tl.load(flow + H * W + offs, mask=mask, other=0.0).to(tl.float32)
    y = tl.minimum(tl.maximum(y_raw, 0.0), H - 1.0)
    x = tl.minimum(tl.maximum(x_raw, 0.0), W - 1.0)
    y0 = tl.minimum(tl.floor(y), H - 2.0)
    x0 = tl.minimum(tl.floor(x), W - 2.0)
    y_inside = (y_raw >= 0.0) & (y_raw <= H - 1.0)
    x_inside = (x_raw >= 0.0) & (x_raw <= W - 1.0)
    return y - y0, x - x0, y0.to(tl.int64), x0.to(tl.int64), y_inside, x_inside


@triton.jit
def _locate(idx_ptr, K, si_b, si_k, H, W, BLOCK: tl.constexpr):
    """This program's selected frame (row ``frame`` of the B x k selected frames: video b, frame number t) and
    block of pixels (h, w)."""
    frame = tl.program_id(0).to(tl.int64)
    b = frame // K
    t = tl.load(idx_ptr + b * si_b + (frame % K) * si_k).to(tl.int64)
    offs = tl.program_id(1).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < H * W
    return frame, b, t, offs, mask, offs // W, offs % W


@triton.jit
def _corners(plane, sv_h, sv_w, mask):
    """The four pixels of each bilinear cell, top-left first (the weights come from _bilinear_setup)."""
    v00 = tl.load(plane, mask=mask, other=0.0).to(tl.float32)
    v01 = tl.load(plane + sv_w, mask=mask, other=0.0).to(tl.float32)
    v10 = tl.load(plane + sv_h, mask=mask, other=0.0).to(tl.float32)
    v11 = tl.load(plane + sv_h + sv_w, mask=mask, other=0.0).to(tl.float32)
    return v00, v01, v10, v11


@triton.jit
def _perturb_pixels(plane, noise, wy, wx, sv_h, sv_w, mask, HAS_FLOW: tl.constexpr, HAS_NOISE: tl.constexpr):
    """One channel of the perturbation for a block of pixels: the output and the
    intermediates the backward masks and differentiates with (the sum before the
    outer clamp, the warped value before the inner clamp, the cell's corners)."""
    if HAS_FLOW:
        v00, v01, v10, v11 = _corners(plane, sv_h, sv_w, mask)
        warped = (1 - wy) * ((1 - wx) * v00 + wx * v01) + wy * ((1 - wx) * v10 + wx * v11)
        value = tl.minimum(tl.maximum(warped, 0.0), 1.0)
    else:
        value = tl.load(plane, mask=mask, other=0.0).to(tl.float32)
        # No cell without a flow; the backward does not read these (Triton has no chained assignment).
        v00 = value
        v01 = value
        v10 = value
        v11 = value
        warped = value
    total = value
    if HAS_NOISE:
        total = value + tl.load(noise, mask=mask, other=0.0).to(tl.float32)
        value = tl.minimum(tl.maximum(total, 0.0), 1.0)
    return value, total, warped, v00, v01, v10, v11


@triton.jit
def _perturb_forward_kernel(
    video_ptr, idx_ptr, flow_ptr, noise_ptr, out_ptr, rows_ptr,
    K, C, H, W,
    sv_b, sv_t, sv_c, sv_h, sv_w,
    si_b, si_k,
    HAS_FLOW: tl.constexpr, HAS_NOISE: tl.constexpr, HAS_ROWS: tl.constexpr, BLOCK: tl.constexpr,
):
    frame, b, t, offs, mask, h, w = _locate(idx_ptr, K, si_b, si_k, H, W, BLOCK)
    if HAS_ROWS:
        # A video outside the row mask moves no bytes: every load and store of its programs is masked off.
        # (As a vector: the interpreter cannot mask with a scalar.)
        mask = mask & (tl.zeros_like(offs) + tl.load(rows_ptr + b).to(tl.int64) != 0)
    src = video_ptr + b * sv_b + t * sv_t
    if HAS_FLOW:
        # Named, not `_`: the compiler types every name once per scope, and the loop below reuses `_`.
        wy, wx, y0, x0, _y_in, _x_in = _bilinear_setup(flow_ptr + frame * 2 * H * W, offs, h, w, mask, H, W)
        top_left = y0 * sv_h + x0 * sv_w
    else:
        top_left = h * sv_h + w * sv_w
        wy = tl.zeros([BLOCK], dtype=tl.float32)  # unused without a flow
        wx = wy
    noise = noise_ptr + frame * C * H * W + offs
    out = out_ptr + frame * C * H * W + offs
    for c in range(C):
        value, _, _, _, _, _, _ = _perturb_pixels(src + c * sv_c + top_left, noise + c * H * W, wy, wx, sv_h,
                                                  sv_w, mask, HAS_FLOW, HAS_NOISE)
        tl.store(out + c * H * W, value, mask=mask)


# Backward. With s = warp(x, U) (bilinear in the four corners v00..v11 with
# weights from the fractional position (wy, wx)), a = clamp(s), o = clamp(a + N):
#   dL/dN        = g * [0 <= a + N <= 1]
#   dL/da        = dL/dN                       (noise present; else g)
#   dL/ds        = dL/da * [0 <= s <= 1]
#   dL/dU_rows   = sum_c dL/ds_c * ((1 - wx)(v10 - v00) + wx (v11 - v01)) * [row inside frame]
#   dL/dU_cols   = sum_c dL/ds_c * ((1 - wy)(v01 - v00) + wy (v11 - v10)) * [col inside frame]
#   dL/dv_corner = dL/ds * (bilinear weight of that corner)        (scattered; only when asked)
# The forward is recomputed from x and U: 4 reads per channel instead of
# storing the warped frame, and the flow gradient needs the corners anyway.
@triton.jit
def _perturb_backward_kernel(
    video_ptr, idx_ptr, flow_ptr, noise_ptr, grad_ptr,
    grad_flow_ptr, grad_noise_ptr, grad_video_ptr,
    K, C, H, W,
    sv_b, sv_t, sv_c, sv_h, sv_w,
    si_b, si_k,
    gv_b, gv_t, gv_c, gv_h, gv_w,
    HAS_FLOW: tl.constexpr, HAS_NOISE: tl.constexpr, NEED_VIDEO: tl.constexpr, BLOCK: tl.constexpr,
):
    frame, b, t, offs, mask, h, w = _locate(idx_ptr, K, si_b, si_k, H, W, BLOCK)
    src = video_ptr + b * sv_b + t * sv_t
    gsrc = grad_video_ptr + b * gv_b + t * gv_t
    if HAS_FLOW:
        wy, wx, y0, x0, y_inside, x_inside = _bilinear_setup(flow_ptr + frame * 2 * H * W, offs, h, w, mask, H, W)
        top_left = y0 * sv_h + x0 * sv_w
        g_top_left = y0 * gv_h + x0 * gv_w
    else:
        top_left = h * sv_h + w * sv_w
        g_top_left = h * gv_h + w * gv_w
        wy = tl.zeros([BLOCK], dtype=tl.float32)  # unused without a flow
        wx = wy
    noise = noise_ptr + frame * C * H * W + offs
    grad = grad_ptr + frame * C * H * W + offs
    grad_noise = grad_noise_ptr + frame * C * H * W + offs
    g_rows = tl.zeros([BLOCK], dtype=tl.float32)
    g_cols = tl.zeros([BLOCK], dtype=tl.float32)
    for c in range(C):
        g = tl.load(grad + c * H * W, mask=mask, other=0.0).to(tl.float32)
        _, total, warped, v00, v01, v10, v11 = _perturb_pixels(src + c * sv_c + top_left, noise + c * H * W, wy,
                                                               wx, sv_h, sv_w, mask, HAS_FLOW, HAS_NOISE)
        if HAS_NOISE:
            g = tl.where((total >= 0.0) & (total <= 1.0), g, 0.0)
            tl.store(grad_noise + c * H * W, g, mask=mask)
        if HAS_FLOW:
            g = tl.where((warped >= 0.0) & (warped <= 1.0), g, 0.0)
            g_rows += g * ((1 - wx) * (v10 - v00) + wx * (v11 - v01))
            g_cols += g * ((1 - wy) * (v01 - v00) + wy * (v11 - v10))
            if NEED_VIDEO:
                gplane = gsrc + c * gv_c + g_top_left
                tl.atomic_add(gplane, g * (1 - wy) * (1 - wx), mask=mask)
                tl.atomic_add(gplane + gv_w, g * (1 - wy) * wx, mask=mask)
                tl.atomic_add(gplane + gv_h, g * wy * (1 - wx), mask=mask)
                tl.atomic_add(gplane + gv_h + gv_w, g * wy * wx, mask=mask)
        elif NEED_VIDEO:
            tl.atomic_add(gsrc + c * gv_c + g_top_left, g, mask=mask)
    if HAS_FLOW:
        grad_flow = grad_flow_ptr + frame * 2 * H * W + offs
        tl.store(grad_flow, tl.where(y_inside, g_rows, 0.0), mask=mask)
        tl.store(grad_flow + H * W, tl.where(x_inside, g_cols, 0.0), mask=mask)


# --------------------------------------------------------------------------- launchers
def _strides(tensor: torch.Tensor | None, rank: int) -> tuple[int, ...]:
    return tuple(tensor.stride()) if tensor is not None else (0,) * rank


def _dense(tensor: torch.Tensor | None) -> torch.Tensor | None:
    """Flow and noise are read as dense B x k x ... blocks: offsets from the shape, not ten stride arguments
    per launch (the attack's parameters are dense already; this copies only a strided view)."""
    return tensor.contiguous() if tensor is not None else None


def _grid(frames: int, height: int, width: int) -> tuple[int, int]:
    """(selected frames, pixel blocks): the blocks on axis y reach 65,535 x 1,024 pixels, a 67 MP frame."""
    return launch_grid("perturb", frames, triton.cdiv(height * width, BLOCK))


def _launch_forward(video, frame_idx, flow, noise, rows=None):
    flow, noise = _dense(flow), _dense(noise)
    batch, _, channels, height, width = video.shape
    k = frame_idx.shape[1]
    out = torch.empty(batch, k, channels, height, width, device=video.device, dtype=torch.float32)
    if out.numel() == 0:
        return out
    _perturb_forward_kernel[_grid(batch * k, height, width)](
        video, frame_idx, flow if flow is not None else video, noise if noise is not None else video, out,
        _row_flags(rows) if rows is not None else frame_idx,
        k, channels, height, width,
        *video.stride(), *frame_idx.stride(),
        HAS_FLOW=flow is not None, HAS_NOISE=noise is not None, HAS_ROWS=rows is not None, BLOCK=BLOCK,
        num_warps=NUM_WARPS,
    )
    return out


def _row_flags(rows: torch.Tensor) -> torch.Tensor:
    """A bool row mask as bytes (the same memory): the kernels compare a byte with zero."""
    return rows.contiguous().view(torch.uint8)


def _launch_backward(grad, video, frame_idx, flow, noise, need_video: bool):
    flow, noise = _dense(flow), _dense(noise)
    batch, _, channels, height, width = video.shape
    k = frame_idx.shape[1]
    grad = grad.contiguous()
    # The kernel stores every pixel of the flow and noise gradients; only the video's is scattered (atomics).
    grad_flow = torch.empty(batch, k, 2, height, width, device=video.device) if flow is not None else None
    grad_noise = torch.empty(batch, k, channels, height, width, device=video.device) if noise is not None else None
    grad_video = torch.zeros(video.shape, device=video.device) if need_video else None
    if grad.numel():
        _perturb_backward_kernel[_grid(batch * k, height, width)](
            video, frame_idx, flow if flow is not None else video, noise if noise is not None else video, grad,
            grad_flow if grad_flow is not None else grad, grad_noise if grad_noise is not None else grad,
            grad_video if grad_video is not None else grad,
            k, channels, height, width,
            *video.stride(), *frame_idx.stride(), *_strides(grad_video, 5),
            HAS_FLOW=flow is not None, HAS_NOISE=noise is not None, NEED_VIDEO=need_video, BLOCK=BLOCK,
            num_warps=NUM_WARPS,
        )
    return grad_flow, grad_noise, grad_video


# --------------------------------------------------------------------------- autograd: one backward, two doors
# Eager calls launch the kernels from a plain autograd Function: a custom op's dispatch costs tens of
# microseconds per call, several times the kernel itself on one frame. torch.compile takes the custom ops
# below. Both doors save and differentiate through the same two functions; only the launcher differs.
def _save(ctx, video, frame_idx, flow, noise) -> None:
    ctx.save_for_backward(video, frame_idx, flow, noise)
    ctx.has_flow, ctx.has_noise = flow is not None, noise is not None


def _backward(ctx, grad, launch_backward):
    """Input gradients from ``launch_backward`` (the launcher itself, or its custom op under compile)."""
    video, frame_idx, flow, noise = ctx.saved_tensors
    flow, noise = (flow if ctx.has_flow else None), (noise if ctx.has_noise else None)
    need_video, _, need_flow, need_noise = ctx.needs_input_grad
    grad_flow, grad_noise, grad_video = launch_backward(grad, video, frame_idx, flow, noise, need_video)
    return (grad_video.to(video.dtype) if need_video else None, None,
            grad_flow.to(flow.dtype) if flow is not None and need_flow else None,
            grad_noise.to(noise.dtype) if noise is not None and need_noise else None)


class _PerturbSelected(torch.autograd.Function):
    @staticmethod
    def forward(ctx, video, frame_idx, flow, noise):
        _save(ctx, video, frame_idx, flow, noise)
        return _launch_forward(video, frame_idx, flow, noise)

    @staticmethod
    def backward(ctx, grad):
        return _backward(ctx, grad, _launch_backward)


@torch.library.custom_op("sava::perturb_selected", mutates_args=())
def _perturb_selected_op(video: torch.Tensor, frame_idx: torch.Tensor, flow: torch.Tensor | None,
                         noise: torch.Tensor | None) -> torch.Tensor:
    return _launch_forward(video, frame_idx, flow, noise)


@_perturb_selected_op.register_fake
def _(video, frame_idx, flow, noise):
    batch, _, channels, height, width = video.shape
    return video.new_empty(batch, frame_idx.shape[1], channels, height, width, dtype=torch.float32)


@torch.library.custom_op("sava::perturb_selected_backward", mutates_args=())
def _perturb_backward_op(grad: torch.Tensor, video: torch.Tensor, frame_idx: torch.Tensor,
                         flow: torch.Tensor | None, noise: torch.Tensor | None,
                         need_video: bool) -> list[torch.Tensor]:
    # A custom op cannot return None: absent gradients come back as empty tensors.
    grads = _launch_backward(grad, video, frame_idx, flow, noise, need_video)
    return [g if g is not None else video.new_empty(0) for g in grads]


@_perturb_backward_op.register_fake
def _(grad, video, frame_idx, flow, noise, need_video):
    return [
        torch.empty_like(flow, dtype=torch.float32) if flow is not None else video.new_empty(0),
        torch.empty_like(noise, dtype=torch.float32) if noise is not None else video.new_empty(0),
        video.new_empty(video.shape, dtype=torch.float32) if need_video else video.new_empty(0),
    ]


_perturb_selected_op.register_autograd(lambda ctx, grad: _backward(ctx, grad, _perturb_backward_op),
                                       setup_context=lambda ctx, inputs, output: _save(ctx, *inputs))


# --------------------------------------------------------------------------- public
def _check(video, frame_idx, flow, noise, check_indices: bool = True) -> None:
    if video.dim() != 5:
        raise ValueError(f"perturb: video must be B x T x C x H x W, got shape {tuple(video.shape)}")
    batch, frames, channels, height, width = video.shape
    if frame_idx.dim() != 2 or frame_idx.shape[0] != batch or frame_idx.dtype != torch.int64:
        raise ValueError(f"perturb: frame_idx must be B x k int64, got {tuple(frame_idx.shape)} {frame_idx.dtype}")
    k = frame_idx.shape[1]
    if height < 2 or width < 2:
        raise ValueError(f"perturb: frames must be at least 2 x 2 pixels, got {height} x {width}")
    for name, tensor, ch in (("flow", flow, 2), ("noise", noise, channels)):
        if tensor is not None and tuple(tensor.shape) != (batch, k, ch, height, width):
            raise ValueError(f"perturb: {name} must be {(batch, k, ch, height, width)}, got {tuple(tensor.shape)}")
    for name, tensor in (("frame_idx", frame_idx), ("flow", flow), ("noise", noise)):
        if tensor is not None and tensor.device != video.device:
            raise ValueError(f"perturb: {name} is on {tensor.device}, the video on {video.device}")
    # Reading index values syncs the device and cannot be traced. Eager calls check them once per index
    # tensor: the same tensor object, unchanged since (its version counter), was checked by an earlier call.
    # (The object, not its address: a new tensor may reuse a freed one's memory.)
    if not check_indices or torch.compiler.is_compiling() or not frame_idx.numel():
        return
    global _checked
    tensor, version, checked_frames = _checked
    if tensor() is frame_idx and (version, checked_frames) == (frame_idx._version, frames):
        return
    low, high = torch.stack(torch.aminmax(frame_idx)).tolist()  # one transfer
    if low < 0 or high >= frames:
        raise ValueError(f"perturb: frame indices must lie in [0, {frames}), got {low}..{high}")
    _checked = (weakref.ref(frame_idx), frame_idx._version, frames)


# The last index tensor found inside its video's frames: (weak reference, version counter, frames). The
# reference starts dead.
_checked = (weakref.ref(torch.empty(0)), -1, -1)


def perturb_selected(video: torch.Tensor, frame_idx: torch.Tensor, flow: torch.Tensor | None = None,
                     noise: torch.Tensor | None = None, check_indices: bool = True) -> torch.Tensor:
    """``B x k x C x H x W`` perturbed copies of the frames ``frame_idx`` selects
    from ``video`` (``B x T x C x H x W``, any strides). ``check_indices=False`` skips reading the indices'
    values (a host synchronisation) where the caller built them."""
    _check(video, frame_idx, flow, noise, check_indices)
    if torch.compiler.is_compiling():
        return _perturb_selected_op(video, frame_idx, flow, noise)
    return _PerturbSelected.apply(video, frame_idx, flow, noise)


# Indices 0..k-1 per k and device, never freed: a captured CUDA graph reads them by address for as long as it
# can replay (a few bytes each, one per frame count). The B x k views of them are cached per shape (an attack
# asks at every step) and may be evicted freely: a view holds no memory of its own.
_ARANGE: dict[tuple[int, torch.device], torch.Tensor] = {}
_IDENTITY: dict[tuple[int, int, torch.device], torch.Tensor] = {}


def _identity(batch: int, k: int, device) -> torch.Tensor:
    """``B x k`` indices 0..k-1 of every row."""
    device = torch.device(device)
    key = (batch, k, device)
    if key not in _IDENTITY:
        if len(_IDENTITY) > 64:
            _IDENTITY.clear()
        if (k, device) not in _ARANGE:
            _ARANGE[k, device] = torch.arange(k, device=device)
        _IDENTITY[key] = _ARANGE[k, device].expand(batch, k)
    return _IDENTITY[key]


def perturb_frames(frames: torch.Tensor, flow: torch.Tensor | None = None,
                   noise: torch.Tensor | None = None, rows: torch.Tensor | None = None) -> torch.Tensor:
    """``reference.perturb_frames`` for ``(..., C, H, W)`` frames. ``rows`` (bool, one per entry of the first
    dimension; evaluation only) limits the work to those rows: the others' output is left unspecified."""
    lead = frames.shape[:-3]
    if frames.dim() == 5:
        batch, k = lead
        grid = frames
    else:
        grid = frames.reshape(-1, 1, *frames.shape[-3:])
        batch, k = grid.shape[:2]
        flow = flow.reshape(batch, 1, *flow.shape[-3:]) if flow is not None else None
        noise = noise.reshape(batch, 1, *noise.shape[-3:]) if noise is not None else None
        if rows is not None:  # one flag per frame of the flattened grid
            rows = rows.view(-1, *[1] * (len(lead) - 1)).expand(lead).reshape(-1)
    if rows is not None:
        _check(grid, _identity(batch, k, frames.device), flow, noise, check_indices=False)
        return _launch_forward(grid, _identity(batch, k, frames.device), flow, noise, rows).reshape(
            *lead, *frames.shape[-3:])
    out = perturb_selected(grid, _identity(batch, k, frames.device), flow, noise, check_indices=False)
    return out.reshape(*lead, *frames.shape[-3:])
