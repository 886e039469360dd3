"""Inter-frame difference (IFD), the baseline frame selector of Xu et al. 2022:
the frames that differ most from their neighbours, where the motion is."""

from __future__ import annotations

import torch

from . import Selector, check_k


class InterFrameDifference(Selector):
    name = "ifd"

    def select(self, model, videos, labels, k, score=None):
        check_k(k, videos.shape[1])
        step = (videos[:, 1:] - videos[:, :-1]).abs().mean(dim=(2, 3, 4))  # B x (T - 1)
        # A frame's weight: its mean absolute difference to the previous and the next frame.
        padded = torch.nn.functional.pad(step, (1, 1))
        weight = padded[:, :-1] + padded[:, 1:]
        return weight.topk(k, dim=1).indices.sort(dim=1).values.cpu()
