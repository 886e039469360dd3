"""An attention-guided attack after the MSANet abstract (Wu et al., IEEE IoT
Journal 2023). Only the abstract is public, so this follows its description,
not the authors' code:

* temporal attention (one weight per frame) and spatial attention (one weight
  per region of a frame), each at a coarse and a fine granularity, computed
  from the target model's gradient of the loss at the current adversarial
  clip;
* used as a soft mask ``M`` on a PGD perturbation: ``x_adv = x + M * delta``,
  ``|delta| <= epsilon``;
* the attention and the perturbation are updated alternately: the mask is
  refreshed, then ``pgd_steps`` PGD steps run with it fixed, ``rounds`` times.

Granularities (decisions of ours): temporal coarse = ``segments`` equal runs
of frames, fine = single frames; spatial coarse = a 4 x 4 grid of cells,
fine = 16 x 16. Each map is the mean absolute gradient over its cells,
divided by its maximum (so in [0, 1]); coarse and fine are averaged, and
``M = temporal[t] * spatial[t, h, w]``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import ConfigError
from .linf import DEFAULT_EPSILON, LinfAttack

COARSE_GRID, FINE_GRID = 4, 16


def _normalised(values: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
    return values / values.amax(dim=dims, keepdim=True).clamp_min(1e-12)


def temporal_attention(grad: torch.Tensor, segments: int) -> torch.Tensor:
    """``B x T`` frame weights in [0, 1] from a ``B x T x C x H x W`` gradient."""
    frames = grad.abs().mean(dim=(2, 3, 4))
    t = frames.shape[1]
    segment = torch.div(torch.arange(t, device=grad.device) * segments, t, rounding_mode="floor")
    sums = torch.zeros(frames.shape[0], segments, device=grad.device).index_add_(1, segment, frames)
    counts = torch.zeros(segments, device=grad.device).index_add_(0, segment, torch.ones(t, device=grad.device))
    coarse = (sums / counts.clamp_min(1))[:, segment]
    return (_normalised(coarse, (1,)) + _normalised(frames, (1,))) / 2


def spatial_attention(grad: torch.Tensor) -> torch.Tensor:
    """``B x T x 1 x H x W`` region weights in [0, 1] per frame."""
    b, t, _, h, w = grad.shape
    energy = grad.abs().sum(dim=2).reshape(b * t, 1, h, w)
    maps = []
    for cells in (COARSE_GRID, FINE_GRID):
        pooled = F.adaptive_avg_pool2d(energy, (min(cells, h), min(cells, w)))
        maps.append(_normalised(F.interpolate(pooled, size=(h, w), mode="nearest"), (1, 2, 3)))
    return ((maps[0] + maps[1]) / 2).view(b, t, 1, h, w)


class AttentionGuided(LinfAttack):
    """Attention-guided PGD after the MSANet abstract: temporal and spatial attention from the model's
    gradients, at a coarse and a fine granularity, as a soft mask on an L-infinity perturbation; attention and
    perturbation updated alternately for ``rounds`` rounds of ``pgd_steps`` steps.

    Args:
        model: the white-box target; epsilon: the L-infinity budget; rounds, pgd_steps: as above.

    Example:
        >>> torch.manual_seed(0) and None
        >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4 * 3 * 16 * 16, 3))
        >>> videos = torch.rand(2, 4, 3, 16, 16)
        >>> run = AttentionGuided(net, rounds=1, pgd_steps=2).run(videos, net(videos).argmax(1))
        >>> all(r.linf <= 16 / 255 + 1e-6 for r in run.results)
        True
    """

    method = "msanet"

    def __init__(self, model, *, epsilon: float = DEFAULT_EPSILON, rounds: int = 5, pgd_steps: int = 4,
                 alpha: float | None = None, segments: int = 4, targeted: bool = False, batch_size: int = 8,
                 seed: int = 0):
        for name, value in (("rounds", rounds), ("pgd_steps", pgd_steps), ("segments", segments)):
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        self.rounds, self.pgd_steps, self.segments = rounds, pgd_steps, segments
        steps = rounds * pgd_steps
        super().__init__(model, method="bim", epsilon=epsilon, steps=steps,
                         alpha=2.5 * epsilon / steps if alpha is None else alpha, targeted=targeted,
                         batch_size=batch_size, seed=seed)
        self.name = "msanet"
        self.settings |= {"method": "msanet", "rounds": rounds, "pgd_steps": pgd_steps, "segments": segments}

    def _perturbed(self, clean, delta, state):
        mask = state.get("mask")
        return clean + (delta if mask is None else mask * delta)

    def _before_step(self, step, clean, delta, goals, state):
        if step % self.pgd_steps:
            return
        # Attention step: the gradient of the loss at the current adversarial clip, mask held fixed.
        adversarial = self._perturbed(clean, delta, state).detach().requires_grad_()
        loss = self._loss_of(goals, None, diverse=False)(adversarial)
        (grad,) = torch.autograd.grad(loss.sum(), adversarial)
        state["queries"] += 1
        state["mask"] = temporal_attention(grad, self.segments).view(*grad.shape[:2], 1, 1, 1) * \
            spatial_attention(grad)
