"""Perceptual budgets of a sparse attack and their projection.

After every update, a video whose perturbation leaves the budget has all its
parameters scaled towards zero (the identity) by the largest factor in
``[0, 1]`` that brings it back inside, found by bisection: every iterate, and
hence every success, satisfies the budget.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

BISECTION_STEPS = 12


@dataclass
class Budget:
    min_ssim: float | None = None  # each perturbed frame's SSIM must stay at or above
    max_l21: float | None = None  # per-pixel l2,1 of the video's perturbation at or below

    @property
    def active(self) -> bool:
        return self.min_ssim is not None or self.max_l21 is not None

    def satisfied(self, ssim: torch.Tensor, l21: torch.Tensor | None) -> torch.Tensor:
        """Per video: inside the budget. ``l21`` may be None when no l2,1 budget is set."""
        ok = torch.ones(ssim.shape[0], dtype=torch.bool, device=ssim.device)
        if self.min_ssim is not None:
            ok &= ssim.min(dim=1).values >= self.min_ssim
        if self.max_l21 is not None:
            ok &= l21 <= self.max_l21
        return ok


def per_row(scale: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """``value`` (rows x ...) with each row multiplied by its entry of ``scale``."""
    return value * scale.view(-1, *[1] * (value.dim() - 1))


# distances(params, rows) -> (per-frame SSIM rows x k, l2,1 rows) of the perturbation those parameters make;
# ``rows`` (a bool mask or None for all) names the rows whose distances are read: the others may be skipped.
Distances = Callable[[dict[str, torch.Tensor], torch.Tensor | None], tuple[torch.Tensor, torch.Tensor]]


@torch.no_grad()
def project_(budget: Budget, params: dict[str, torch.Tensor], rows: torch.Tensor, distances: Distances,
             skip_when_inside: bool) -> None:
    """Scale, in place, the parameters of each video in ``rows`` (a bool mask) that leaves the budget.

    Every row is bisected under masks, so no host read is needed, and the bisection's distances are asked for
    the rows outside only: on the fused kernels a row inside costs no memory traffic, so a step with every video
    inside pays only the launches. ``skip_when_inside`` allows a host read (a synchronisation) to skip even
    those, which pays where reads are free."""
    ssim, l21 = distances(params, None)
    bad = rows & ~budget.satisfied(ssim, l21)
    if skip_when_inside and not bool(bad.any()):
        return
    low = torch.zeros(bad.shape, device=bad.device)
    high = torch.ones(bad.shape, device=bad.device)
    for _ in range(BISECTION_STEPS):
        mid = (low + high) / 2
        ok = budget.satisfied(*distances({name: per_row(mid, value) for name, value in params.items()}, bad))
        low = torch.where(ok, mid, low)
        high = torch.where(ok, high, mid)
    scale = torch.where(bad, low, torch.ones_like(low))
    for value in params.values():
        value.copy_(per_row(scale, value))
