"""Frame importance (Grad-CAM, zero- and mean-padding) against hand-computed
answers, and Spearman's correlation against scipy."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from scipy.stats import spearmanr
from torch import nn

from sava import ConfigError, ModelError
from sava.data import bundled
from sava.importance import correlation_matrix, frame_importance, spearman
from sava.models import ModelInfo, VideoModel, load_bundled
from tests.device import DEVICE

torch.set_num_threads(2)


def _copy_channel_zero(conv: nn.Module) -> nn.Module:
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[0, 0] = 1.0
    return conv


class Identity3D(nn.Module):
    """A 1 x 1 x 1 convolution that copies channel 0, then a score rising with brightness."""

    def __init__(self):
        super().__init__()
        self.conv = _copy_channel_zero(nn.Conv3d(3, 1, 1, bias=False))

    def forward(self, x):  # B x C x T x H x W
        score = self.conv(x).mean(dim=(1, 2, 3, 4))
        return torch.stack([score, -score], dim=1)


class Identity2D(nn.Module):
    """The same per frame, as a 2D CNN run on (B * T) frames."""

    def __init__(self):
        super().__init__()
        self.conv = _copy_channel_zero(nn.Conv2d(3, 1, 1, bias=False))

    def forward(self, x):  # B x T x C x H x W
        b, t = x.shape[:2]
        score = self.conv(x.flatten(0, 1)).view(b, t, -1).mean(dim=(1, 2))
        return torch.stack([score, -score], dim=1)


@pytest.mark.parametrize("module, layout", [(Identity3D(), "BCTHW"), (Identity2D(), "BTCHW")])
def test_gradcam_of_a_brightness_score_is_each_frames_brightness(module, layout):
    """Channel weight = mean gradient > 0, map = relu(weight * frame): importance is proportional to brightness."""
    model = VideoModel(module, ModelInfo(layout=layout, classes=["bright", "dark"]))
    videos = torch.rand(2, 6, 3, 8, 8)
    importance = frame_importance(model, videos, torch.tensor([0, 0]), "gradcam")
    brightness = videos[:, :, 0].mean(dim=(2, 3))
    ratio = importance / brightness
    assert torch.allclose(ratio, ratio[:, :1].expand_as(ratio), rtol=1e-4)


def test_padding_importance_is_the_rise_of_the_loss():
    model, clips = load_bundled("tsn-digits", device=DEVICE), bundled("digits", "test")
    videos, labels = clips.float_videos(slice(0, 3)), clips.labels[:3]
    mean = torch.tensor(model.info.mean).view(1, 1, -1, 1, 1)
    std = torch.tensor(model.info.std).view(1, 1, -1, 1, 1)

    def loss(x):
        with torch.no_grad():
            return F.cross_entropy(model.module((x - mean) / std), labels, reduction="none")

    zero, mean_pad = (frame_importance(model, videos, labels, m) for m in ("zero", "mean"))
    for t in (0, 7, 15):
        zeroed, averaged = videos.clone(), videos.clone()
        zeroed[:, t] = 0
        neighbours = [i for i in (t - 1, t + 1) if 0 <= i < 16]
        averaged[:, t] = videos[:, neighbours].mean(dim=1)
        assert torch.allclose(zero[:, t], loss(zeroed) - loss(videos), atol=1e-5)
        assert torch.allclose(mean_pad[:, t], loss(averaged) - loss(videos), atol=1e-5)


def test_spearman_matches_scipy_with_ties():
    generator = torch.Generator().manual_seed(0)
    a = torch.randint(0, 5, (20, 12), generator=generator).double()
    b = a + torch.randn(20, 12, generator=generator)
    ours = spearman(a, b)
    for row in range(20):
        assert float(ours[row]) == pytest.approx(spearmanr(a[row], b[row]).statistic, abs=1e-9)


def test_correlation_matrix_is_symmetric_with_a_unit_diagonal():
    clips = bundled("digits", "test")
    models = [load_bundled(n, device=DEVICE) for n in ("c3d-digits", "tsn-digits")]
    matrix = correlation_matrix(models, clips.float_videos(slice(0, 4)), clips.labels[:4], "mean")
    assert torch.allclose(matrix, matrix.T) and torch.allclose(matrix.diag(), torch.ones(2, dtype=matrix.dtype))


def test_bad_requests_are_named():
    model = load_bundled("tsn-digits", device=DEVICE)
    with pytest.raises(ConfigError, match="unknown importance measure"):
        frame_importance(model, torch.rand(1, 16, 3, 32, 32), torch.tensor([0]), "occlusion")
    linear = VideoModel(nn.Sequential(nn.Flatten(), nn.Linear(16 * 3 * 4 * 4, 2)), ModelInfo())
    with pytest.raises(ModelError, match="convolutional layer"):
        frame_importance(linear, torch.rand(1, 16, 3, 4, 4), torch.tensor([0]))
