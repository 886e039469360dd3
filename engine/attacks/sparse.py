"""Sparse (Wei et al., AAAI 2019): additive noise only, on a fixed set of frames,
regularised by the l2,1 norm of the perturbation.

Objective per video (minimised): ``lam * l21(x_hat - x) - adv``, with the
per-pixel l2,1 of ``sava.kernels.l21_norm`` (the sum over frames of each frame's
RMS, as the authors' code computed it). The paper fixes the frames: the
default selector is the first k.
"""

from __future__ import annotations

import torch

from ..errors import ConfigError
from ..selection import Selector
from .base import SparseAttack
from .losses import adversarial_term
from .perturbations import FlowNoise
from .step import Step

DEFAULT_LAM = 1.0
DEFAULT_LR = 0.016  # the noise step of DeepSAVA, so the two differ in their objective only
# Unbounded, Sparse's l2,1 objective spends one frame until it is destroyed (mean SSIM 0.18 on c3d-camera at
# its paper settings): by default every perturbed frame is held to the SSIM a person does not notice, which on
# one frame costs most of its fooling rate. min_ssim=None is the paper's unbounded attack.
DEFAULT_MIN_SSIM = 0.9


class Sparse(SparseAttack):
    """Sparse (Wei et al. 2019): additive noise on ``frames`` fixed frames, an l2,1 penalty weighted by
    ``lam``, Adam with step ``lr``; each perturbed frame held to ``min_ssim`` (default 0.9; None: unbounded).

    Args:
        model: the white-box target; frames, selector (default ``first``), max_iters, max_l21, targeted,
            adv_loss, batch_size, seed, margin: as ``DeepSAVA``.

    Example:
        >>> torch.manual_seed(0) and None
        >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4 * 3 * 16 * 16, 3))
        >>> videos = torch.rand(2, 4, 3, 16, 16)
        >>> run = Sparse(net, frames=2, max_iters=10).run(videos, net(videos).argmax(1))
        >>> all(min(r.ssim) >= 0.9 - 1e-4 for r in run.results)
        True
    """

    method = "sparse"

    def __init__(self, model, *, frames: int = 1, selector: str | Selector = "first", lam: float = DEFAULT_LAM,
                 lr: float = DEFAULT_LR, max_iters: int = 100, min_ssim: float | None = DEFAULT_MIN_SSIM,
                 max_l21: float | None = None, targeted: bool = False, adv_loss: str = "log1mp",
                 batch_size: int = 32, seed: int = 0, margin: float = 0.0):
        if not lam >= 0:
            raise ConfigError(f"lam (the l2,1 weight) must be >= 0, got {lam}")
        self.lam = float(lam)
        super().__init__(
            model, FlowNoise("noise", noise_lr=lr), frames=frames, selector=selector, max_iters=max_iters,
            min_ssim=min_ssim, max_l21=max_l21, targeted=targeted, adv_loss=adv_loss, batch_size=batch_size,
            seed=seed, margin=margin, settings={"perturbation": "noise", "lam": self.lam, "lr": lr},
        )

    def objective(self, step: Step) -> torch.Tensor:
        return self.lam * step.l21 - adversarial_term(step.logits, step.goal, self.targeted, self.adv_loss)
