"""Pure-torch reference of every operation sava's kernels implement.

This file is the single source of truth for the math. The Triton kernels must
match it, the CPU path runs it, and the tests compare it with independent
implementations (``torch.nn.functional.grid_sample``, ``pytorch_msssim``,
``torch.optim.Adam``, float64 autograd).

Conventions
-----------
* Frames are ``(..., C, H, W)`` float tensors with pixel values in [0, 1].
* A flow is ``(..., 2, H, W)`` in pixels: channel 0 moves rows (dh), channel 1
  moves columns (dw). Frame pixel (h, w) of the warped frame is sampled from
  the clean frame at (h + dh, w + dw), clamped to the frame (border padding).
* A sparse perturbation of a ``B x T x C x H x W`` video lives on k selected
  frames per video: ``frame_idx`` is ``B x k`` (int64), ``flow`` is
  ``B x k x 2 x H x W`` and ``noise`` is ``B x k x C x H x W``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03


# --------------------------------------------------------------------------- warp
def warp(frames: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Bilinear backward warp of ``frames`` by a per-pixel ``flow`` in pixels.

    Equal to ``grid_sample(mode="bilinear", padding_mode="border",
    align_corners=True)`` with the grid ``2 * (p + flow) / (size - 1) - 1``.

    The bilinear cell of a sample point is chosen so that the point lies
    inside it (``floor`` clamped to ``size - 2``). At the last row or column
    the flow gradient is therefore the inward one-sided difference; this only
    differs from ``grid_sample`` on points exactly on the far border, a set of
    measure zero that the tests avoid.
    """
    if frames.shape[:-3] != flow.shape[:-3] or flow.shape[-3] != 2 or flow.shape[-2:] != frames.shape[-2:]:
        raise ValueError(
            f"warp: flow must be (..., 2, H, W) matching frames (..., C, H, W); "
            f"got frames {tuple(frames.shape)} and flow {tuple(flow.shape)}"
        )
    channels, height, width = frames.shape[-3:]
    if height < 2 or width < 2:
        raise ValueError(f"warp: frames must be at least 2 x 2 pixels, got {height} x {width}")
    lead = frames.shape[:-3]
    src = frames.reshape(-1, channels, height * width)
    flow = flow.reshape(-1, 2, height, width)

    rows = torch.arange(height, device=frames.device, dtype=flow.dtype).view(height, 1)
    cols = torch.arange(width, device=frames.device, dtype=flow.dtype).view(1, width)
    y = (rows + flow[:, 0]).clamp(0, height - 1)
    x = (cols + flow[:, 1]).clamp(0, width - 1)
    y0 = y.detach().floor().clamp(max=height - 2)
    x0 = x.detach().floor().clamp(max=width - 2)
    wy = (y - y0).unsqueeze(1)
    wx = (x - x0).unsqueeze(1)

    top_left = (y0 * width + x0).long().view(-1, 1, height * width).expand(-1, channels, -1)

    def corner(offset: int) -> torch.Tensor:
        return src.gather(2, top_left + offset).view(-1, channels, height, width)

    out = (
        (1 - wy) * ((1 - wx) * corner(0) + wx * corner(1))
        + wy * ((1 - wx) * corner(width) + wx * corner(width + 1))
    )
    return out.reshape(*lead, channels, height, width)


def perturb_frames(
    frames: torch.Tensor, flow: torch.Tensor | None = None, noise: torch.Tensor | None = None
) -> torch.Tensor:
    """The DeepSAVA perturbation of frames: ``clamp(clamp(warp(x, flow)) + noise)``.

    Either part may be ``None`` (noise-only or flow-only perturbation).
    """
    out = frames
    if flow is not None:
        out = warp(out, flow).clamp(0.0, 1.0)
    if noise is not None:
        out = (out + noise).clamp(0.0, 1.0)
    return out


def gather_frames(video: torch.Tensor, frame_idx: torch.Tensor) -> torch.Tensor:
    """``B x T x ...`` video, ``B x k`` indices -> ``B x k x ...`` selected frames."""
    batch = torch.arange(video.shape[0], device=video.device).unsqueeze(1)
    return video[batch, frame_idx]


def scatter_frames(video: torch.Tensor, frame_idx: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
    """A copy of ``video`` whose selected frames are replaced by ``frames``."""
    batch = torch.arange(video.shape[0], device=video.device).unsqueeze(1)
    out = video.clone()
    out[batch, frame_idx] = frames.to(out.dtype)
    return out


def apply_perturbation(
    video: torch.Tensor,
    frame_idx: torch.Tensor,
    flow: torch.Tensor | None = None,
    noise: torch.Tensor | None = None,
) -> torch.Tensor:
    """Adversarial video: the selected frames perturbed, every other frame untouched."""
    clean = gather_frames(video, frame_idx)
    return scatter_frames(video, frame_idx, perturb_frames(clean, flow, noise))


# --------------------------------------------------------------------------- ssim
def gaussian_window(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA, *, dtype=torch.float32, device=None):
    """Normalised 1-D Gaussian taps; the 2-D window is their outer product."""
    coords = torch.arange(size, dtype=torch.float64, device=device) - (size - 1) / 2
    taps = torch.exp(-(coords**2) / (2 * sigma**2))
    return (taps / taps.sum()).to(dtype)


def ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Single-scale SSIM (Wang et al. 2004) of each frame: ``(..., C, H, W)`` -> ``(...)``.

    11 x 11 Gaussian window (sigma 1.5), K1 = 0.01, K2 = 0.03, "valid" windows
    only (no padding), averaged over channels and window positions.
    """
    if x.shape != y.shape:
        raise ValueError(f"ssim: shapes differ: {tuple(x.shape)} vs {tuple(y.shape)}")
    channels, height, width = x.shape[-3:]
    if height < SSIM_WINDOW or width < SSIM_WINDOW:
        raise ValueError(
            f"ssim: frames of {height} x {width} are smaller than the {SSIM_WINDOW} x {SSIM_WINDOW} window"
        )
    lead = x.shape[:-3]
    x = x.reshape(-1, channels, height, width)
    y = y.reshape(-1, channels, height, width)

    # Blur the five statistics in one grouped, separable convolution.
    stats = torch.cat([x, y, x * x, y * y, x * y], dim=1)
    groups = stats.shape[1]
    taps = gaussian_window(dtype=x.dtype, device=x.device)
    stats = F.conv2d(stats, taps.view(1, 1, 1, -1).expand(groups, 1, 1, -1), groups=groups)
    stats = F.conv2d(stats, taps.view(1, 1, -1, 1).expand(groups, 1, -1, 1), groups=groups)
    mu_x, mu_y, xx, yy, xy = stats.split(channels, dim=1)

    c1 = (SSIM_K1 * data_range) ** 2
    c2 = (SSIM_K2 * data_range) ** 2
    var_x = xx - mu_x * mu_x
    var_y = yy - mu_y * mu_y
    cov = xy - mu_x * mu_y
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2))
    return ssim_map.mean(dim=(-3, -2, -1)).reshape(lead)


# --------------------------------------------------------------------------- l2,1
def l21_norm(delta: torch.Tensor, per_pixel: bool = True) -> torch.Tensor:
    """l2,1 norm of a perturbation ``(..., F, C, H, W)`` -> ``(...)``: the sum over
    frames of each frame's l2 norm.

    With ``per_pixel`` (the value sava reports) each frame's l2 norm is divided
    by ``sqrt(C * H * W)``, i.e. the sum over frames of the per-frame RMS, so the
    figure does not grow with resolution. Untouched frames contribute zero.
    """
    frame_norms = delta.flatten(-3).norm(dim=-1)
    if per_pixel:
        channels, height, width = delta.shape[-3:]
        frame_norms = frame_norms / math.sqrt(channels * height * width)
    return frame_norms.sum(dim=-1)


# --------------------------------------------------------------------------- updates
@torch.no_grad()
def masked_adam_step_(
    param: torch.Tensor,
    grad: torch.Tensor,
    exp_avg: torch.Tensor,
    exp_avg_sq: torch.Tensor,
    step: torch.Tensor,
    active: torch.Tensor,
    lr: float,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
) -> None:
    """One Adam step (Kingma and Ba, as ``torch.optim.Adam``) on the rows of
    ``param`` whose ``active`` flag is set; other rows are left untouched.

    ``param``, ``grad`` and the moments are ``B x ...``; ``step`` (int64, ``B``)
    counts each row's own steps, so a row that joins a batch late gets its own
    bias correction. Everything is updated in place.
    """
    beta1, beta2 = betas
    row = (-1,) + (1,) * (param.dim() - 1)
    live = active.view(row)
    step += active.to(step.dtype)
    exp_avg.copy_(torch.where(live, beta1 * exp_avg + (1 - beta1) * grad, exp_avg))
    exp_avg_sq.copy_(torch.where(live, beta2 * exp_avg_sq + (1 - beta2) * grad * grad, exp_avg_sq))
    t = step.clamp(min=1).to(param.dtype).view(row)
    bias1 = 1 - beta1**t
    bias2 = 1 - beta2**t
    update = (exp_avg / bias1) / ((exp_avg_sq / bias2).sqrt() + eps)
    param.copy_(torch.where(live, param - lr * update, param))


@torch.no_grad()
def masked_adam_multi_(params, grads, exp_avgs, exp_avg_sqs, step, active, lrs, betas=(0.9, 0.999),
                       eps=1e-8) -> None:
    """``masked_adam_step_`` on several tensors (one per entry of ``params``, each with its learning rate in
    ``lrs``) that share the step count ``step``, advanced once."""
    for param, grad, exp_avg, exp_avg_sq, lr in zip(params, grads, exp_avgs, exp_avg_sqs, lrs):
        masked_adam_step_(param, grad, exp_avg, exp_avg_sq, step.clone(), active, lr, betas, eps)
    step += active.to(step.dtype)


@torch.no_grad()
def masked_sign_step_(
    delta: torch.Tensor,
    grad: torch.Tensor,
    active: torch.Tensor,
    alpha: float,
    epsilon: float | None = None,
    clean: torch.Tensor | None = None,
) -> None:
    """One signed-gradient ascent step (FGSM / BIM / PGD) on the rows of an additive
    perturbation ``delta`` whose ``active`` flag is set, then the projection:
    onto the L-infinity ball of radius ``epsilon`` (when given), and so that
    ``clean + delta`` stays in [0, 1] (when ``clean`` is given). In place."""
    live = active.view((-1,) + (1,) * (delta.dim() - 1))
    stepped = delta + alpha * grad.sign()
    if epsilon is not None:
        stepped = stepped.clamp(-epsilon, epsilon)
    if clean is not None:
        stepped = torch.maximum(torch.minimum(stepped, 1 - clean), -clean)
    delta.copy_(torch.where(live, stepped, delta))
