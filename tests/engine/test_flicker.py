"""Sparse Flickering: uniform per-frame offsets on the selected frames only,
and its smoothness terms against a direct numpy computation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sava import ConfigError, SparseFlickering
from sava.attacks.flicker import offset_sequence, roughness, thickness
from sava.attacks.loop import Step
from sava.data import bundled
from sava.models import load_bundled
from tests.device import DEVICE

torch.set_num_threads(2)


def test_regulariser_matches_a_direct_computation_on_the_sparse_sequence():
    offsets = torch.tensor([[[0.1, -0.2, 0.05], [0.3, 0.0, -0.1]]]).view(1, 2, 3, 1, 1)  # 1 video, 2 frames
    frame_idx, num_frames = torch.tensor([[2, 3]]), 7
    step = Step(*[None] * 6, params={"noise": offsets}, frame_idx=frame_idx,
                frame_valid=torch.ones(1, 2, dtype=torch.bool), num_frames=num_frames)
    sequence = offset_sequence(step)[0].numpy()
    expected = np.zeros((num_frames, 3))
    expected[2], expected[3] = [0.1, -0.2, 0.05], [0.3, 0.0, -0.1]
    np.testing.assert_allclose(sequence, expected, atol=1e-7)
    first = np.array([expected[t] - expected[t - 1] for t in range(num_frames)])  # index -1 wraps: cyclic
    second = np.array([expected[(t + 1) % num_frames] - 2 * expected[t] + expected[t - 1] for t in range(num_frames)])
    assert float(thickness(torch.tensor(sequence).unsqueeze(0))) == pytest.approx((expected**2).mean(), rel=1e-6)
    assert float(roughness(torch.tensor(sequence).unsqueeze(0))) == pytest.approx(
        (first**2).mean() + (second**2).mean(), rel=1e-6)


def test_flicker_is_uniform_over_each_selected_frame():
    model, clips = load_bundled("c3d-digits", device=DEVICE), bundled("digits", "test")
    videos, labels = clips.float_videos(slice(0, 4)), clips.labels[:4]
    run = SparseFlickering(model, frames=2, selector="saliency", max_iters=30, lam=1.0).run(videos, labels)
    assert any(r.success for r in run.results)
    for video, result in zip(videos, run.results):
        if not result.attacked:
            continue
        assert result.noise.shape == (2, 3, 1, 1) and result.flow is None
        adversarial = video.clone()
        for slot, t in enumerate(result.frames):
            adversarial[t] = (video[t] + result.noise[slot]).clamp(0, 1)
        change = adversarial - video
        untouched = [t for t in range(video.shape[0]) if t not in result.frames]
        assert float(change[untouched].abs().max()) == 0.0
        if result.success:
            assert int(model.predict(adversarial.unsqueeze(0))[0]) != result.label


def test_bad_weights_are_refused():
    with pytest.raises(ConfigError, match="beta_roughness"):
        SparseFlickering(load_bundled("tsn-digits", device=DEVICE), beta_roughness=-1)
