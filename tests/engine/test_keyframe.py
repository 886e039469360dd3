"""Xu et al.'s adaptive keyframes and two-stage attack: the selection against
hand-computed answers, the attack replayed through independent code."""

from __future__ import annotations

import pytest
import torch

from sava import ConfigError, GradientKeyframe
from sava.models import load_bundled
from sava.selection import make_selector
from sava.selection.saliency import Keyframes
from tests.device import DEVICE

from .test_deepsava import replay
from .toy_models import frame_weighted

torch.set_num_threads(2)


def test_keyframes_take_the_heaviest_frames_until_the_boundary():
    # Frame weights |a| / sum |a| = [.4, .1, .05, .3, .15]: descending .4, .3, .15, ...
    model = frame_weighted([8.0, -2.0, 1.0, 6.0, -3.0])
    videos = torch.rand(1, 5, 3, 12, 12)
    for boundary, expected in [(0.3, [0]), (0.4, [0]), (0.5, [0, 3]), (0.7, [0, 3]), (0.8, [0, 3, 4]),
                               (1.0, [0, 1, 2, 3, 4])]:
        pick = Keyframes(boundary).select(model, videos, torch.tensor([0]))
        assert pick[0][pick[0] >= 0].tolist() == expected, boundary


def test_keyframe_rows_are_padded_per_video_and_capped_by_k():
    model = frame_weighted([8.0, -2.0, 1.0, 6.0, -3.0])
    videos = torch.rand(2, 5, 3, 12, 12)
    videos[1] = 0  # constant frames still get weights from the linear score
    pick = Keyframes(0.8).select(model, videos, torch.tensor([0, 0]), k=2)
    assert pick.shape == (2, 2) and pick[0].tolist() == [0, 3]


@pytest.mark.parametrize("boundary", [0.0, -0.1, 1.5])
def test_boundary_outside_the_unit_interval_is_refused(boundary):
    with pytest.raises(ConfigError, match="boundary"):
        Keyframes(boundary)
    with pytest.raises(ConfigError, match="boundary"):
        GradientKeyframe(load_bundled("tsn-digits", device=DEVICE), boundary=boundary)
    with pytest.raises(ConfigError, match="keyframes"):
        make_selector(f"keyframes:{boundary}" if boundary else "keyframes:x")


def test_two_stage_attack_shrinks_its_perturbation_after_the_first_success(model, clips):
    """Capped at its first success the attack keeps that iterate; with room to
    refine it keeps a smaller one that still fools the model. One video per
    run keeps the trajectories identical."""
    checked = 0
    for index in range(6):
        video, label = clips.float_videos(slice(index, index + 1)), clips.labels[index : index + 1]
        long = GradientKeyframe(model, max_iters=40).run(video, label).results[0]
        if not long.success:
            continue
        first = GradientKeyframe(model, max_iters=long.iterations).run(video, label).results[0]
        assert first.success and first.iterations == long.iterations and first.frames == long.frames
        assert long.l21 <= first.l21 + 1e-7
        adversarial = replay(video[0], long)
        assert int(model.predict(adversarial.unsqueeze(0))[0]) != long.label
        delta = adversarial - video[0]
        assert long.l21 == pytest.approx(sum(float(delta[t].pow(2).mean().sqrt()) for t in long.frames), rel=1e-4)
        assert long.mean_abs == pytest.approx(float(delta.abs().mean()), rel=1e-4)
        checked += 1
    assert checked >= 3


def test_videos_with_different_keyframe_counts_share_a_batch(model, clips):
    """Rows of 1 to several keyframes in one batch of two slots: each perturbs its own frames only."""
    videos, labels = clips.float_videos(slice(0, 8)), clips.labels[:8]
    run = GradientKeyframe(model, boundary=0.5, max_iters=15, batch_size=2).run(videos, labels)
    counts = {len(r.frames) for r in run.results if r.attacked}
    assert len(counts) >= 2, "the clips should need different numbers of keyframes"
    for video, result in zip(videos, run.results):
        if not result.attacked:
            continue
        assert result.noise.shape[0] == len(result.frames) == len(result.ssim)
        adversarial = replay(video, result)
        changed = [t for t in range(video.shape[0]) if not torch.equal(adversarial[t], video[t])]
        assert set(changed) <= set(result.frames)
        assert result.queries == result.iterations + 2  # one selection pass, the iterations, the final check


def test_targeted_keyframe_attack_reaches_its_target(model, clips):
    videos, labels = clips.float_videos(slice(0, 6)), clips.labels[:6]
    targets = (labels + 3) % 8
    run = GradientKeyframe(model, targeted=True, max_iters=60).run(videos, labels, targets)
    assert run.settings["boundary"] == 0.4
    assert any(r.success for r in run.results)
    for video, result in zip(videos, run.results):
        if result.success:
            assert int(model.predict(replay(video, result).unsqueeze(0))[0]) == result.target


def test_baseline_selectors_stand_in_for_the_keyframes(model, clips):
    videos, labels = clips.float_videos(slice(0, 3)), clips.labels[:3]
    run = GradientKeyframe(model, selector="first", frames=4, max_iters=3).run(videos, labels)
    assert all(r.frames == [0, 1, 2, 3] for r in run.results if r.attacked)
    with pytest.raises(ConfigError, match="adaptive"):
        GradientKeyframe(model, selector="first")
