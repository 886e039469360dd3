"""Sparse Flickering: the flickering attack of Pony et al. (CVPR 2021), made
sparse. Each selected frame gets one offset per channel, uniform over the
frame (``clamp(x + offset)``); the frames that are not selected keep a zero
offset.

Objective per video (minimised): ``lam * (beta_thickness * thickness +
beta_roughness * roughness) - adv``, on the clip's whole offset sequence
``o_t`` (``T x C``, zero off the selected frames):

* thickness: mean of ``o_t^2``, how strong the flicker is;
* roughness: mean of the squared first and second temporal differences,
  taken cyclically as in the paper (the flicker is meant to loop), how
  abruptly it changes.

On a sparse sequence both terms see every selected frame against its
unperturbed neighbours, so isolated frames pay for their jumps.
"""

from __future__ import annotations

import torch

from ..errors import ConfigError
from ..selection import Selector
from .base import SparseAttack
from .losses import adversarial_term
from .perturbations import FrameOffset
from .step import Step

DEFAULT_LAM = 100.0
DEFAULT_BETAS = (0.5, 0.5)  # thickness, roughness: the paper's equal weighting
DEFAULT_LR = 0.005  # [0, 1] units per Adam step


def offset_sequence(step: Step) -> torch.Tensor:
    """``rows x T x C``: each video's offsets at its frames, zero elsewhere."""
    offsets = step.params["noise"].flatten(2)  # rows x k x C
    sequence = offsets.new_zeros(offsets.shape[0], step.num_frames, offsets.shape[2])
    return sequence.scatter(1, step.frame_idx.unsqueeze(-1).expand_as(offsets), offsets)


def thickness(sequence: torch.Tensor) -> torch.Tensor:
    return sequence.pow(2).mean(dim=(1, 2))


def roughness(sequence: torch.Tensor) -> torch.Tensor:
    first = sequence - sequence.roll(1, dims=1)
    second = sequence.roll(-1, dims=1) - 2 * sequence + sequence.roll(1, dims=1)
    return first.pow(2).mean(dim=(1, 2)) + second.pow(2).mean(dim=(1, 2))


class SparseFlickering(SparseAttack):
    """Flickering: one uniform offset per channel and frame, smooth in time. By default every frame of the
    clip flickers, as in Pony et al.; ``frames=k`` makes it sparse (the first k frames, or ``selector``'s).

    Args:
        model: the white-box target; lam, beta_thickness, beta_roughness: the regulariser's weights; lr: the
            offsets' Adam step; the others as ``DeepSAVA``.

    Example:
        >>> torch.manual_seed(0) and None
        >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4 * 3 * 16 * 16, 3))
        >>> videos = torch.rand(2, 4, 3, 16, 16)
        >>> run = SparseFlickering(net, max_iters=5).run(videos, net(videos).argmax(1))
        >>> [len(r.frames) for r in run.results]
        [4, 4]
    """

    method = "flicker"

    def __init__(self, model, *, frames: int | None = None, selector: str | Selector | None = None,
                 lam: float = DEFAULT_LAM,
                 beta_thickness: float = DEFAULT_BETAS[0], beta_roughness: float = DEFAULT_BETAS[1],
                 lr: float = DEFAULT_LR, max_iters: int = 100, min_ssim: float | None = None,
                 max_l21: float | None = None, targeted: bool = False, adv_loss: str = "log1mp",
                 batch_size: int = 32, seed: int = 0, margin: float = 0.0):
        for name, value in (("lam", lam), ("beta_thickness", beta_thickness), ("beta_roughness", beta_roughness)):
            if not value >= 0:
                raise ConfigError(f"{name} must be >= 0, got {value}")
        self.lam, self.betas = float(lam), (float(beta_thickness), float(beta_roughness))
        if selector is None:  # the paper's flicker spans the whole clip; a given k takes the first k frames
            selector = "all" if frames is None else "first"
        super().__init__(
            model, FrameOffset(lr), frames=frames, selector=selector, max_iters=max_iters, min_ssim=min_ssim,
            max_l21=max_l21, targeted=targeted, adv_loss=adv_loss, batch_size=batch_size, seed=seed, margin=margin,
            settings={"perturbation": "flicker", "lam": self.lam, "beta_thickness": self.betas[0],
                      "beta_roughness": self.betas[1], "lr": lr},
        )

    def objective(self, step: Step) -> torch.Tensor:
        sequence = offset_sequence(step)
        regulariser = self.betas[0] * thickness(sequence) + self.betas[1] * roughness(sequence)
        return self.lam * regulariser - adversarial_term(step.logits, step.goal, self.targeted, self.adv_loss)
