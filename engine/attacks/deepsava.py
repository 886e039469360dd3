"""DeepSAVA (Mu et al., Neural Networks 2024): a spatial flow plus additive noise
on k selected frames, kept imperceptible with SSIM, optimised with Adam.

Objective per video (minimised): ``lam * sum_t (1 - SSIM(x_hat_t, x_t)) - adv``,
with ``adv`` from :mod:`sava.attacks.losses`. Flow (pixels) and noise ([0, 1]
units) get their own Adam learning rates.

``lam_end`` turns the fixed weight into a per-video schedule: ``lam`` at a
video's first iteration, falling geometrically to ``lam_end`` at the cap. A
video that flips easily does so while the weight is high (imperceptibly);
only the videos that resist are allowed to spend more distortion.
"""

from __future__ import annotations

import torch

from ..errors import ConfigError
from ..selection import Selector
from .base import SparseAttack
from .losses import adversarial_term
from .perturbations import FlowNoise
from .step import Step

# Defaults measured on the bundled models (README, "Defaults and decisions"). The
# paper's setting is lam=1, lam_end=1, adv_loss="ce", selector="first".
DEFAULT_FLOW_LR = 0.1  # pixels per Adam step
DEFAULT_NOISE_LR = 0.016  # [0, 1] units per Adam step
DEFAULT_LAM, DEFAULT_LAM_END = 100.0, 5.0
DEFAULT_ADV_LOSS = "log1mp"
DEFAULT_SELECTOR = "saliency"


class DeepSAVA(SparseAttack):
    """DeepSAVA: a flow field and additive noise on ``frames`` key frames per video, kept imperceptible by an
    SSIM term whose weight grows from ``lam`` to ``lam_end`` over the iterations.

    Args:
        model: the white-box target (a ``VideoModel``, an ``AttackedModel`` or a bare ``nn.Module``).
        frames: key frames perturbed per video (k).
        selector: how they are chosen: ``saliency`` (default), ``bo``, ``brute``, ``random``, ``first``,
            ``keyframes``, ``ifd``, frame indices such as ``"0,7"``, or a ``Selector``.
        perturbation: ``combined`` (flow and noise), ``noise`` or ``flow``.
        lam, lam_end: the SSIM weight at the first iteration and at ``max_iters`` (geometric in between).
        max_iters: the iteration cap per video; a video stops at its first success (plus ``margin``).
        flow_lr, noise_lr: Adam's learning rates (flow in pixels).
        min_ssim, max_l21: budgets every perturbed frame / video is projected back into.
        targeted, adv_loss, batch_size, seed, margin: as the other sparse attacks.

    Shape:
        ``run(videos, labels)``: videos ``B x T x C x H x W`` in [0, 1], labels ``B`` int64.

    Example:
        >>> torch.manual_seed(0) and None
        >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4 * 3 * 16 * 16, 3))
        >>> videos = torch.rand(2, 4, 3, 16, 16)
        >>> run = DeepSAVA(net, frames=1, max_iters=20).run(videos, net(videos).argmax(1))
        >>> [len(r.frames) for r in run.results], all(min(r.ssim) > 0.5 for r in run.results)
        ([1, 1], True)
    """

    method = "deepsava"

    def __init__(self, model, *, frames: int = 1, selector: str | Selector = DEFAULT_SELECTOR,
                 perturbation: str = "combined", lam: float = DEFAULT_LAM, lam_end: float | None = DEFAULT_LAM_END,
                 max_iters: int = 100, flow_lr: float = DEFAULT_FLOW_LR, noise_lr: float = DEFAULT_NOISE_LR,
                 min_ssim: float | None = None, max_l21: float | None = None, targeted: bool = False,
                 adv_loss: str = DEFAULT_ADV_LOSS, batch_size: int = 32, seed: int = 0, margin: float = 0.0):
        if not lam >= 0:
            raise ConfigError(f"lam (the SSIM weight) must be >= 0, got {lam}")
        if lam_end is not None and not (lam_end > 0 and lam > 0):
            raise ConfigError(f"a lam schedule needs lam > 0 and lam_end > 0, got {lam} -> {lam_end}")
        self._weight_table: dict[torch.device, torch.Tensor] = {}
        self.lam = float(lam)
        self.lam_end = float(lam_end) if lam_end is not None else self.lam
        super().__init__(
            model, FlowNoise(perturbation, flow_lr, noise_lr), frames=frames, selector=selector,
            max_iters=max_iters, min_ssim=min_ssim, max_l21=max_l21, targeted=targeted, adv_loss=adv_loss,
            batch_size=batch_size, seed=seed, margin=margin,
            settings={"perturbation": perturbation, "lam": self.lam, "lam_end": self.lam_end, "flow_lr": flow_lr,
                      "noise_lr": noise_lr},
        )

    def weight(self, iters: torch.Tensor) -> torch.Tensor:
        """The SSIM weight of each video at its current iteration."""
        progress = iters.to(torch.float32) / max(self.max_iters, 1)
        return self.lam * (self.lam_end / self.lam) ** progress if self.lam > 0 else torch.zeros_like(progress)

    def _weights(self, iters: torch.Tensor) -> torch.Tensor:
        """``weight(iters)`` looked up in a table of every iteration up to the cap, made once per device (one
        operation per step instead of five); iterations past the cap (frame scoring) are computed."""
        table = self._weight_table.get(iters.device)
        if table is None:
            table = self._weight_table[iters.device] = self.weight(torch.arange(self.max_iters + 1,
                                                                                device=iters.device))
        return table[iters]

    def objective(self, step: Step) -> torch.Tensor:
        # The loop's iterations stay within its cap; a table up to this attack's cap covers them when it is lower.
        weights = self._weights(step.iters) if step.max_iters <= self.max_iters else self.weight(step.iters)
        similarity = weights * (1 - step.ssim).sum(dim=1)
        return similarity - adversarial_term(step.logits, step.goal, self.targeted, self.adv_loss)
