"""The shared sparse loop with videos of different frame counts: slots widen
as wider videos arrive, and padding frames are never perturbed."""

from __future__ import annotations

import pytest
import torch

from sava.attacks.loop import Budget, Job, SparseAttackLoop, pad_frames
from sava.attacks.losses import adversarial_term
from sava.attacks.perturbations import FlowNoise
from sava.data import bundled
from sava.errors import ConfigError
from sava.metrics import VideoResult
from sava.models import load_bundled
from tests.device import DEVICE

torch.set_num_threads(2)


def test_pad_frames_uses_distinct_unselected_frames():
    idx, valid = pad_frames(torch.tensor([5, 2]), 4, 6)
    assert idx.tolist() == [5, 2, 0, 1] and valid.tolist() == [True, True, False, False]


def test_ragged_jobs_widen_the_slots_and_touch_only_their_frames():
    model, clips = load_bundled("tsn-digits", device=DEVICE), bundled("digits", "test")
    videos, labels = clips.float_videos(slice(0, 5)), clips.labels[:5]
    frame_sets = [[3], [0, 5, 9], [7, 8], [1, 2, 4, 6], [15]]
    loop = SparseAttackLoop(model, FlowNoise("noise", noise_lr=0.01),
                            lambda step: -adversarial_term(step.logits, step.goal, False, "ce"), targeted=False,
                            max_iters=4, budget=Budget(), capacity=2, stop_on_success=False)
    jobs = [Job(videos[i], torch.tensor(frames), int(labels[i]), VideoResult(str(i), int(labels[i]), -1, True))
            for i, frames in enumerate(frame_sets)]
    results = {int(r.video_id): r for r in loop.run(jobs)}
    assert loop.width == 4
    for i, frames in enumerate(frame_sets):
        result = results[i]
        assert result.frames == frames and result.noise.shape == (len(frames), 3, 32, 32)
        assert result.iterations == 4 and all(float(n.abs().max()) > 0 for n in result.noise)
        adversarial = videos[i].clone()
        adversarial[frames] = (videos[i][frames] + result.noise).clamp(0, 1)
        with torch.no_grad():
            logits = model.logits(adversarial.unsqueeze(0))
        assert int(logits.argmax()) == result.final_pred
        assert abs(float(logits.softmax(-1).max()) - result.final_prob) < 1e-5


def test_reached_goal_with_a_margin():
    from sava.attacks.losses import reached_goal

    logits = torch.tensor([[3.0, 1.0, 0.5], [1.0, 1.4, 0.0], [0.0, 0.1, 2.5]])
    goal = torch.tensor([1, 0, 2])
    # Untargeted: the best other class beats the goal (true) class by 2.0, 0.4 and -2.4 logits.
    assert reached_goal(logits, goal, False).tolist() == [True, True, False]
    assert reached_goal(logits, goal, False, 1.0).tolist() == [True, False, False]
    # Targeted: the goal class leads by -2.0, -0.4 and 2.4.
    assert reached_goal(logits, goal, True, 2.0).tolist() == [False, False, True]
    assert reached_goal(logits, goal, True, 3.0).tolist() == [False, False, False]


def test_a_margin_keeps_each_video_going_until_its_success_holds_by_that_much():
    from sava import DeepSAVA
    from sava.transfer import replay

    model, clips = load_bundled("tsn-digits", device=DEVICE), bundled("digits", "test")
    videos, labels = clips.float_videos(slice(0, 6)), clips.labels[:6]
    plain = DeepSAVA(model, frames=2, max_iters=60).run(videos, labels).results
    margin = 3.0
    kept = DeepSAVA(model, frames=2, max_iters=60, margin=margin).run(videos, labels).results
    stopped_early = 0
    for video, before, after in zip(videos, plain, kept):
        if not after.attacked:
            continue
        with torch.no_grad(), model.attack_mode():
            logits = model.logits(replay(video, after).unsqueeze(0))[0]
        others = torch.arange(len(logits), device=logits.device) != after.label
        best_other = logits[others].max()
        gap = float(best_other - logits[after.label])
        if after.iterations < 60:  # stopped before the cap: only by holding the margin
            stopped_early += 1
            assert after.success and gap >= margin - 1e-4, (after.video_id, gap)
        assert after.success == (gap > 0)  # fooled or not, as the float32 model sees the replayed clip
        if before.success and after.success:
            assert after.iterations >= before.iterations
    assert stopped_early >= 3
    with pytest.raises(ConfigError, match="margin"):
        DeepSAVA(model, margin=-1.0)


def test_a_static_batch_gives_the_same_attack_and_a_compiled_model_runs_it():
    """Compiled models get fixed-shape batches (idle slots ride along); the videos' outcomes must not move."""
    from sava import DeepSAVA

    clips = bundled("digits", "test")
    videos, labels = clips.float_videos(slice(0, 5)), clips.labels[:5]
    settings = dict(frames=2, selector="first", max_iters=8, batch_size=3)  # 5 videos in 3 slots: idle slots
    eager = DeepSAVA(load_bundled("tsn-digits", device=DEVICE), **settings).run(videos, labels).results
    model = load_bundled("tsn-digits", device=DEVICE)
    model.static_batch = True
    static = DeepSAVA(model, **settings).run(videos, labels).results
    compiled = DeepSAVA(load_bundled("tsn-digits", device=DEVICE).compile(), **settings).run(videos, labels).results
    for a, b, c in zip(eager, static, compiled):
        assert (a.success, a.iterations) == (b.success, b.iterations) == (c.success, c.iterations)
        torch.testing.assert_close(b.noise, a.noise, atol=1e-5, rtol=0)
        torch.testing.assert_close(c.noise, a.noise, atol=1e-3, rtol=0)  # compiled kernels round differently
