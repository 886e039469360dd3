"""The figures of a finished video, written into its :class:`~sava.metrics.VideoResult` in one place for
every attack (the sparse loop and the L-infinity family)."""

from __future__ import annotations

import torch

from .. import kernels
from ..metrics import VideoResult


def fill_result(result: VideoResult, *, success: bool, iterations: int, frames: list[int], num_frames: int,
                ssim: torch.Tensor, delta: torch.Tensor, clip_numel: int, pred: int, prob: float, label_prob: float,
                seconds: float, loss: float | None = None, flow: torch.Tensor | None = None,
                noise: torch.Tensor | None = None) -> VideoResult:
    """``delta`` is the perturbation of the perturbed frames (``F x C x H x W``, adversarial minus clean),
    ``ssim`` their per-frame SSIM; the l2,1, l-infinity and mean absolute figures are taken from it."""
    delta = delta.detach().float()
    result.success = bool(success)
    result.iterations = int(iterations)
    result.frames = list(frames)
    result.num_frames = int(num_frames)
    result.ssim = [float(s) for s in ssim.detach().cpu()]
    result.l21 = float(kernels.l21_norm(delta)) if delta.numel() else 0.0
    result.linf = float(delta.abs().max()) if delta.numel() else 0.0
    result.mean_abs = float(delta.abs().sum()) / clip_numel
    result.final_pred, result.final_prob, result.label_prob = int(pred), float(prob), float(label_prob)
    result.seconds = seconds
    result.loss = None if loss is None else float(loss)
    result.flow, result.noise = flow, noise
    return result
