"""The structure of the authors' DeepSAVA code, re-implemented as the
throughput baseline of ``bench_pipeline.py``: one video at a time, eager
operations, a Python loop per video, ``torch.optim.Adam`` on a full-length
flow and noise masked to the chosen frame, the whole video rebuilt every
iteration. Same objective, weights, learning rates, frame choice and stopping
rule as ``sava.DeepSAVA``'s defaults, so both reach the same fooling rate;
only the engineering differs. It deliberately uses none of sava's engine.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from pytorch_msssim import ssim as reference_ssim


def warp(frames: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    t, _, h, w = frames.shape
    rows = torch.arange(h, dtype=frames.dtype, device=frames.device).view(h, 1)
    cols = torch.arange(w, dtype=frames.dtype, device=frames.device).view(1, w)
    grid = torch.stack([2 * (cols + flow[:, 1]) / (w - 1) - 1, 2 * (rows + flow[:, 0]) / (h - 1) - 1], dim=-1)
    return F.grid_sample(frames, grid, mode="bilinear", padding_mode="border", align_corners=True)


def attack_one(model, video: torch.Tensor, label: int, max_iters: int = 100, lam: float = 100.0,
               lam_end: float = 5.0, flow_lr: float = 0.1, noise_lr: float = 0.016,
               stop_on_success: bool = True) -> tuple[bool, int]:
    """One video, one frame (the largest class-score gradient). Returns (fooled, iterations).
    ``stop_on_success=False`` runs all ``max_iters`` steps (throughput at a fixed number of steps)."""
    t, c, h, w = video.shape
    device = video.device  # every tensor below lives beside the video: the baseline runs on any device
    x = video.clone().unsqueeze(0).requires_grad_()
    (grad,) = torch.autograd.grad(model.logits(x)[0, label], x)
    frame = int(grad.abs().sum(dim=(0, 2, 3, 4)).argmax())
    mask = torch.zeros(t, 1, 1, 1, device=device)
    mask[frame] = 1
    flow = torch.zeros(t, 2, h, w, device=device, requires_grad=True)
    noise = torch.zeros(t, c, h, w, device=device, requires_grad=True)
    optimiser = torch.optim.Adam([{"params": [flow], "lr": flow_lr}, {"params": [noise], "lr": noise_lr}])
    target = torch.tensor([label], device=device)
    for iteration in range(max_iters + 1):
        warped = warp(video, flow * mask).clamp(0, 1)
        adversarial = (warped + noise * mask).clamp(0, 1)
        logits = model.logits(adversarial.unsqueeze(0))
        fooled = int(logits.argmax()) != label
        if fooled and stop_on_success:
            return True, iteration
        if iteration == max_iters:  # without early stops, the outcome at the cap (as sava reports it then)
            return fooled, iteration
        weight = lam * (lam_end / lam) ** (iteration / max_iters)
        similarity = reference_ssim(adversarial[frame:frame + 1], video[frame:frame + 1], data_range=1.0,
                                    win_size=11, size_average=True)
        others = logits.scatter(1, target.view(1, 1), -math.inf)
        adv_term = others.logsumexp(1) - logits.logsumexp(1)  # log(1 - p_y)
        loss = weight * (1 - similarity) - adv_term.sum()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return False, max_iters
