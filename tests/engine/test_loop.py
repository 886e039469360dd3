"""The shared sparse loop with videos of different frame counts: slots widen
as wider videos arrive, and padding frames are never perturbed."""

from __future__ import annotations

import torch

from sava.attacks.loop import Budget, Job, SparseAttackLoop, pad_frames
from sava.attacks.losses import adversarial_term
from sava.attacks.perturbations import FlowNoise
from sava.data import bundled
from sava.metrics import VideoResult
from sava.models import load_bundled

torch.set_num_threads(2)


def test_pad_frames_uses_distinct_unselected_frames():
    idx, valid = pad_frames(torch.tensor([5, 2]), 4, 6)
    assert idx.tolist() == [5, 2, 0, 1] and valid.tolist() == [True, True, False, False]


def test_ragged_jobs_widen_the_slots_and_touch_only_their_frames():
    model, clips = load_bundled("tsn-digits"), bundled("digits", "test")
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
