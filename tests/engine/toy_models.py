"""Small models whose gradients are known in closed form, for checking
selectors and analyses against hand-computed answers."""

from __future__ import annotations

import torch
from torch import nn

from sava.models import ModelInfo, VideoModel


class FrameWeighted(nn.Module):
    """Logit 0 = sum_t a_t * mean(x_t); logit 1 = 0. The gradient of logit 0
    over frame t sums (in absolute value) to |a_t|."""

    def __init__(self, weights):
        super().__init__()
        self.register_buffer("weights", torch.as_tensor(weights, dtype=torch.float32))

    def forward(self, x):
        score = (x.mean(dim=(2, 3, 4)) * self.weights).sum(dim=1)
        return torch.stack([score, torch.zeros_like(score)], dim=1)


def frame_weighted(weights) -> VideoModel:
    return VideoModel(FrameWeighted(weights), ModelInfo(name="frame-weighted", classes=["a", "b"]))
