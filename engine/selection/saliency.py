"""Gradient saliency: the frames whose pixels move the true class's score most.

Frame weight ``w_t = sum |d z_y / d x_t|`` over the frame's pixels, with ``z_y``
the logit of the true label (the weight of Xu et al. 2022, here with a fixed
k). The logit, unlike the cross-entropy, keeps a useful gradient when the
model is very confident. One forward and backward for the whole batch.
"""

from __future__ import annotations

import torch

from . import Selector, check_k


class Saliency(Selector):
    name = "saliency"

    def select(self, model, videos, labels, k, score=None):
        check_k(k, videos.shape[1])
        with model.attack_mode():
            x = videos.detach().to(model.device).requires_grad_()  # never flag the caller's tensor
            score = model.logits(x).gather(1, labels.to(model.device).view(-1, 1)).sum()
            (grad,) = torch.autograd.grad(score, x)
        weight = grad.abs().sum(dim=(2, 3, 4))
        return weight.topk(k, dim=1).indices.sort(dim=1).values.cpu()
