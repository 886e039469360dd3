"""The attention-guided attack: its attention maps on gradients of known
shape, and the masked PGD perturbation within its budget."""

from __future__ import annotations

import pytest
import torch

from sava import AttentionGuided, ConfigError
from sava.attacks.attention import spatial_attention, temporal_attention
from sava.data import bundled
from sava.models import load_bundled
from tests.device import DEVICE

torch.set_num_threads(2)


def test_temporal_attention_peaks_on_the_frame_and_segment_with_the_gradient():
    grad = torch.full((1, 8, 3, 16, 16), 0.01)
    grad[0, 5] = 1.0
    weights = temporal_attention(grad, segments=4)[0]
    assert int(weights.argmax()) == 5 and float(weights.max()) == pytest.approx(1.0)
    # Frame 4 shares frame 5's coarse segment (frames 4-5), so it ranks above frames of other segments.
    assert float(weights[4]) > float(weights[0]) and float(weights[4]) > float(weights[7])
    assert float(weights.min()) >= 0


def test_spatial_attention_peaks_on_the_region_with_the_gradient():
    grad = torch.zeros(1, 2, 3, 32, 32)
    grad[0, :, :, 20:22, 4:6] = 1.0
    weights = spatial_attention(grad)[0, 0, 0]
    assert weights.shape == (32, 32)
    assert float(weights[20, 4]) == pytest.approx(1.0)
    assert float(weights[0, 31]) == 0.0
    # Elsewhere in the hot spot's coarse 8 x 8 cell the coarse map is 1 and the fine map 0: half weight.
    assert float(weights[17, 1]) == pytest.approx(0.5)
    assert float(weights[8, 1]) == 0.0


def test_masked_perturbation_stays_in_budget_and_fools_the_white_box_model():
    model, clips = load_bundled("c3d-digits", device=DEVICE), bundled("digits", "test")
    videos, labels = clips.float_videos(slice(0, 4)), clips.labels[:4]
    eps = 8 / 255
    run = AttentionGuided(model, epsilon=eps, rounds=3, pgd_steps=3).run(videos, labels)
    assert run.summary.fooling_rate >= 0.75
    for video, result in zip(videos, run.results):
        adversarial = video + result.noise
        assert float(result.noise.abs().max()) <= eps + 1e-6
        assert float(adversarial.min()) >= 0 and float(adversarial.max()) <= 1
        assert int(model.predict(adversarial.unsqueeze(0))[0]) == result.final_pred
        assert result.queries == 3 * 3 + 3 + 1  # PGD steps, one attention pass per round, the final check
    # The mask spreads the budget unevenly: far less change on average than plain PGD's +-eps everywhere.
    assert run.summary.map < 0.75 * eps


def test_bad_settings_are_refused():
    with pytest.raises(ConfigError, match="rounds"):
        AttentionGuided(load_bundled("tsn-digits", device=DEVICE), rounds=0)
