"""The gradient-keyframe attack of Xu et al. (ICASSP 2022).

Frames: self-adaptive keyframes (:class:`sava.selection.saliency.Keyframes`),
as many of the frames with the largest class-score gradient as reach the
boundary ``b`` of the total weight (0.3 untargeted, 0.4 targeted), so each
video perturbs its own number of frames.

Perturbation: additive noise on the keyframes. Two-stage loss, switched per
video at every iteration by whether the goal is reached:

* not yet fooled, ``(alpha, beta) = (0, 1)``: only the adversarial
  cross-entropy term;
* fooled, ``(1, 0)``: only the l2,1 norm of the perturbation, which shrinks it.

Another selector (first-k, IFD: the paper's baselines) can stand in for the
keyframes, with ``frames=k``. The attack runs every video to the iteration cap and keeps the
smallest perturbation that fooled the model; its iterations (and MQ) count
to the first success.
"""

from __future__ import annotations

import torch

from ..errors import ConfigError
from ..selection import Selector
from ..selection.saliency import Keyframes
from .base import SparseAttack
from .losses import adversarial_term, reached_goal
from .perturbations import FlowNoise
from .step import Step

DEFAULT_BOUNDARY = {False: 0.3, True: 0.4}  # untargeted, targeted (the paper's grid search)
DEFAULT_LR = 0.016  # the noise step of DeepSAVA and Sparse


class GradientKeyframe(SparseAttack):
    """Gradient keyframes (Xu et al. 2022): each video's heaviest class-score-gradient frames until their
    share of the total reaches ``boundary``, then noise under a two-stage loss (adversarial until fooled, then
    l2,1 only), run to ``max_iters`` keeping the smallest perturbation that fools.

    Args:
        model: the white-box target; frames: a cap on the keyframes (None: as many as ``boundary`` takes);
            boundary, lr, max_iters, min_ssim, max_l21, targeted, batch_size, seed: as their names say.

    Example:
        >>> torch.manual_seed(0) and None
        >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4 * 3 * 16 * 16, 3))
        >>> videos = torch.rand(2, 4, 3, 16, 16)
        >>> run = GradientKeyframe(net, max_iters=5).run(videos, net(videos).argmax(1))
        >>> all(1 <= len(r.frames) <= 4 for r in run.results)
        True
    """

    method = "keyframe"
    refine = True

    def __init__(self, model, *, boundary: float | None = None, frames: int | None = None,
                 selector: str | Selector | None = None, lr: float = DEFAULT_LR, max_iters: int = 100,
                 min_ssim: float | None = None, max_l21: float | None = None, targeted: bool = False,
                 batch_size: int = 32, seed: int = 0):
        boundary = DEFAULT_BOUNDARY[bool(targeted)] if boundary is None else boundary
        if not 0 < boundary <= 1:
            raise ConfigError(f"boundary must lie in (0, 1], got {boundary}")
        super().__init__(
            model, FlowNoise("noise", noise_lr=lr), frames=frames, selector=selector or Keyframes(boundary),
            max_iters=max_iters, min_ssim=min_ssim, max_l21=max_l21, targeted=targeted, adv_loss="ce",
            batch_size=batch_size, seed=seed, settings={"perturbation": "noise", "boundary": boundary, "lr": lr},
        )

    def objective(self, step: Step) -> torch.Tensor:
        fooled = reached_goal(step.logits.detach(), step.goal, self.targeted)
        attack = -adversarial_term(step.logits, step.goal, self.targeted, "ce")
        return torch.where(fooled, step.l21, attack)
