"""Gradient saliency: the frames whose pixels move the true class's score most.

Frame weight ``w_t = sum |d z_y / d x_t|`` over the frame's pixels, with ``z_y``
the logit of the true label, normalised to sum 1 over the clip (Xu et al.
2022). The logit, unlike the cross-entropy, keeps a useful gradient when the
model is very confident. One forward and backward for the whole batch.

* ``Saliency`` takes the k heaviest frames.
* ``Keyframes`` is Xu et al.'s self-adaptive selection: frames in descending
  weight until their cumulative weight reaches the boundary ``b`` (0.3
  untargeted, 0.4 targeted in the paper), so each video gets its own number
  of keyframes.
"""

from __future__ import annotations

import torch

from ..errors import ConfigError
from . import Selector, check_k


def frame_weights(model, videos: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``B x T`` gradient weights of the frames, each row summing to 1."""
    with model.attack_mode():
        x = videos.detach().to(model.device).requires_grad_()  # never flag the caller's tensor
        score = model.logits(x).gather(1, labels.to(model.device).view(-1, 1)).sum()
        (grad,) = torch.autograd.grad(score, x)
    weight = grad.abs().sum(dim=(2, 3, 4)).cpu()
    return weight / weight.sum(dim=1, keepdim=True).clamp_min(torch.finfo(weight.dtype).tiny)


class Saliency(Selector):
    name = "saliency"
    queries = 1

    def select(self, model, videos, labels, k, score=None):
        check_k(k, videos.shape[1])
        return frame_weights(model, videos, labels).topk(k, dim=1).indices.sort(dim=1).values


class Keyframes(Selector):
    """Adaptive: as many of the heaviest frames as reach the boundary (at most ``k`` when given)."""

    name = "keyframes"
    adaptive = True
    queries = 1

    def __init__(self, boundary: float = 0.3):
        if not 0 < boundary <= 1:
            raise ConfigError(f"the keyframe boundary is a share of the total frame weight, in (0, 1]; got {boundary}")
        self.boundary = boundary

    def select(self, model, videos, labels, k=None, score=None):
        if k is not None:
            check_k(k, videos.shape[1])
        weight = frame_weights(model, videos, labels)
        order = weight.argsort(dim=1, descending=True)
        cumulative = weight.gather(1, order).cumsum(dim=1)
        # Frames up to and including the one whose weight carries the sum to the boundary.
        count = (cumulative < self.boundary - 1e-6).sum(dim=1) + 1
        if k is not None:
            count = count.clamp(max=k)
        width = int(count.max())
        taken = torch.arange(width).view(1, -1) < count.view(-1, 1)
        chosen = torch.where(taken, order[:, :width], torch.full_like(order[:, :width], videos.shape[1]))
        chosen = chosen.sort(dim=1).values  # ascending, the padding (T) last
        return chosen.masked_fill(chosen == videos.shape[1], -1)

    def __repr__(self) -> str:
        return f"keyframes:{self.boundary:g}"
