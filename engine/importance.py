"""Frame importance and how much two models agree on it (TT paper, Fig. 2).

Three measures of how much frame ``t`` matters to a model's decision on a
clip, each ``B x T``:

* ``gradcam``: Grad-CAM (Selvaraju et al. 2017) on a convolutional layer,
  by default the model's last one: channel weights are the mean gradient of
  the true class's logit over the layer's positions, the map is
  ``relu(sum_c weight_c * activation_c)``, and a frame's importance is the
  mean of the map over its positions. A 3D CNN's temporal axis (``T'`` steps)
  and a per-frame 2D CNN's steps are both mapped onto the ``T`` frames by
  linear interpolation.
* ``zero``: the rise of the true label's cross-entropy when frame ``t`` is
  replaced by zeros.
* ``mean``: the same with frame ``t`` replaced by the mean of its previous and
  next frames (the one neighbour at either end).

``spearman`` is the rank correlation of two importance lists per clip;
``correlation_matrix`` averages it over clips for every pair of models.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .errors import ConfigError, ModelError

MEASURES = ("gradcam", "zero", "mean")


def last_conv_layer(module: nn.Module) -> nn.Module:
    convs = [m for m in module.modules() if isinstance(m, (nn.Conv2d, nn.Conv3d))]
    if not convs:
        raise ModelError("Grad-CAM needs a convolutional layer; pass layer= the module to read")
    return convs[-1]


def _to_frames(steps: torch.Tensor, num_frames: int) -> torch.Tensor:
    """``B x S`` per-step values onto ``B x T`` frames by linear interpolation."""
    if steps.shape[1] == num_frames:
        return steps
    return F.interpolate(steps.unsqueeze(1), size=num_frames, mode="linear", align_corners=True).squeeze(1)


def gradcam(model, videos: torch.Tensor, labels: torch.Tensor, layer: nn.Module | None = None) -> torch.Tensor:
    layer = layer or last_conv_layer(model.module)
    captured = {}
    handle = layer.register_forward_hook(lambda _, __, output: captured.__setitem__("act", output))
    try:
        with model.attack_mode():
            # The weights are frozen here, so the input carries the graph (a copy: never flag the caller's tensor).
            logits = model.logits(videos.detach().to(model.device).requires_grad_())
            act = captured["act"]
            (grad,) = torch.autograd.grad(logits.gather(1, labels.to(model.device).view(-1, 1)).sum(), act)
    finally:
        handle.remove()
    batch = videos.shape[0]
    if act.dim() == 5:  # B x C x T' x H' x W'
        weights = grad.mean(dim=(2, 3, 4), keepdim=True)
        cam = F.relu((weights * act).sum(dim=1))  # B x T' x H' x W'
        steps = cam.mean(dim=(2, 3))
    elif act.dim() == 4 and act.shape[0] % batch == 0:  # (B * S) x C x H' x W', a per-frame 2D CNN
        weights = grad.mean(dim=(2, 3), keepdim=True)
        cam = F.relu((weights * act).sum(dim=1))
        steps = cam.mean(dim=(1, 2)).view(batch, -1)
    else:
        raise ModelError(f"Grad-CAM reads 3D (B x C x T x H x W) or per-frame 2D activations; the layer gave "
                         f"{tuple(act.shape)} for {batch} videos")
    return _to_frames(steps.detach().cpu(), videos.shape[1])


@torch.no_grad()
def _replacement_importance(model, videos: torch.Tensor, labels: torch.Tensor, replace) -> torch.Tensor:
    with model.attack_mode():
        base = F.cross_entropy(model.logits(videos), labels.to(model.device), reduction="none")
        rises = []
        for t in range(videos.shape[1]):
            changed = videos.clone()
            changed[:, t] = replace(videos, t)
            rises.append(F.cross_entropy(model.logits(changed), labels.to(model.device), reduction="none") - base)
    return torch.stack(rises, dim=1).cpu()


def _neighbour_mean(videos: torch.Tensor, t: int) -> torch.Tensor:
    neighbours = [i for i in (t - 1, t + 1) if 0 <= i < videos.shape[1]]
    return videos[:, neighbours].mean(dim=1)


def frame_importance(model, videos: torch.Tensor, labels: torch.Tensor, measure: str = "gradcam",
                     layer: nn.Module | None = None) -> torch.Tensor:
    """``B x T`` importance of each frame to ``model``'s decision for ``labels``."""
    if measure == "gradcam":
        return gradcam(model, videos, labels, layer)
    if measure == "zero":
        return _replacement_importance(model, videos, labels, lambda v, t: torch.zeros_like(v[:, t]))
    if measure == "mean":
        return _replacement_importance(model, videos, labels, _neighbour_mean)
    raise ConfigError(f"unknown importance measure {measure!r}; choose from {', '.join(MEASURES)}")


def _ranks(values: torch.Tensor) -> torch.Tensor:
    """Ranks along the last axis, ties given their average rank."""
    values = values.double()
    order = values.argsort(dim=-1)
    ranks = torch.empty_like(values).scatter_(-1, order, torch.arange(values.shape[-1], dtype=values.dtype)
                                              .expand_as(values).contiguous())
    # Average the ranks of equal values (exact ties: e.g. Grad-CAM's relu zeros).
    same = values.unsqueeze(-1) == values.unsqueeze(-2)
    return (same.double() @ ranks.unsqueeze(-1)).squeeze(-1) / same.sum(dim=-1)


def spearman(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Spearman's rank correlation of ``a`` and ``b`` along the last axis (NaN where one is constant)."""
    ra, rb = _ranks(a), _ranks(b)
    ra = ra - ra.mean(dim=-1, keepdim=True)
    rb = rb - rb.mean(dim=-1, keepdim=True)
    return (ra * rb).sum(-1) / (ra.norm(dim=-1) * rb.norm(dim=-1))


def correlation_matrix(models: list, videos: torch.Tensor, labels: torch.Tensor, measure: str = "gradcam"):
    """``M x M`` mean Spearman correlation of frame importance between models,
    over the clips (clips where a model's importance is constant are left out
    of that pair's mean)."""
    importance = [frame_importance(m, videos, labels, measure) for m in models]
    matrix = torch.empty(len(models), len(models), dtype=torch.float64)
    for i, a in enumerate(importance):
        for j, b in enumerate(importance):
            rho = spearman(a, b)
            matrix[i, j] = rho[~rho.isnan()].mean()
    return matrix
