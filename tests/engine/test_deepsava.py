"""DeepSAVA on the bundled models, checked by replaying its perturbations
through independent code (grid_sample, pytorch_msssim)."""

from __future__ import annotations

import os

import pytest
import torch
import torch.nn.functional as F
from pytorch_msssim import ssim as msssim_ssim

from sava import ConfigError, DeepSAVA, InputError
from tests.device import DEVICE

torch.set_num_threads(2)


def replay(video: torch.Tensor, result) -> torch.Tensor:
    """Rebuild the adversarial clip from a result with grid_sample, independently of sava.kernels."""
    out = video.clone()
    t, c, h, w = video.shape
    for slot, frame in enumerate(result.frames):
        x = video[frame : frame + 1]
        if result.flow is not None:
            flow = result.flow[slot : slot + 1]
            rows = torch.arange(h, dtype=torch.float32).view(h, 1)
            cols = torch.arange(w, dtype=torch.float32).view(1, w)
            grid = torch.stack([2 * (cols + flow[:, 1]) / (w - 1) - 1, 2 * (rows + flow[:, 0]) / (h - 1) - 1], dim=-1)
            x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=True).clamp(0, 1)
        if result.noise is not None:
            x = (x + result.noise[slot : slot + 1]).clamp(0, 1)
        out[frame] = x[0]
    return out


def frame_ssim(adv: torch.Tensor, clean: torch.Tensor, frames: list[int]) -> list[float]:
    return msssim_ssim(adv[frames], clean[frames], data_range=1.0, size_average=False, win_size=11).tolist()


@pytest.fixture(scope="module")
def default_run(model, clips):
    videos, labels = clips.float_videos(slice(0, 12)), clips.labels[:12]
    return videos, labels, DeepSAVA(model, frames=1, selector="saliency", batch_size=12).run(videos, labels)


def test_fools_most_of_a_small_batch_and_successes_replay(model, default_run):
    videos, labels, run = default_run
    assert run.summary.attacked >= 10
    assert run.summary.fooling_rate >= 0.75, run.summary
    for video, result in zip(videos, run.results):
        if not result.success:
            continue
        adversarial = replay(video, result)
        pred, _ = model.predict(adversarial.unsqueeze(0))
        assert int(pred) != result.label and int(pred) == result.final_pred
        changed = [t for t in range(video.shape[0]) if not torch.equal(adversarial[t], video[t])]
        assert set(changed) <= set(result.frames) and len(result.frames) == 1
        assert result.flow.shape == (1, 2, 32, 32) and result.noise.shape == (1, 3, 32, 32)
        assert result.ssim == pytest.approx(frame_ssim(adversarial, video, result.frames), abs=1e-4)
        assert 0 < result.iterations <= 100


def test_early_stop_records_the_iteration_of_success(model, clips):
    """Capped one iteration short, the same video is not fooled; at the
    recorded count it is. A batch of one and a fixed SSIM weight (the default
    schedule spans the cap) keep the trajectory identical."""
    fixed = dict(selector="saliency", lam=20.0, lam_end=20.0)
    for index in range(8):
        video, label = clips.float_videos(slice(index, index + 1)), clips.labels[index : index + 1]
        first = DeepSAVA(model, **fixed).run(video, label).results[0]
        if first.success and first.iterations >= 2:
            break
    else:
        pytest.fail("no video needed two or more iterations")
    n = first.iterations
    short = DeepSAVA(model, max_iters=n - 1, **fixed).run(video, label).results[0]
    exact = DeepSAVA(model, max_iters=n, **fixed).run(video, label).results[0]
    assert not short.success and short.iterations == n - 1
    assert exact.success and exact.iterations == n


def test_ssim_budget_holds_on_every_perturbed_frame(model, clips):
    videos, labels = clips.float_videos(slice(0, 6)), clips.labels[:6]
    run = DeepSAVA(model, selector="saliency", min_ssim=0.97, max_iters=30).run(videos, labels)
    for video, result in zip(videos, run.results):
        if result.attacked:
            measured = frame_ssim(replay(video, result), video, result.frames)
            assert min(measured) >= 0.97 - 1e-4, (result.video_id, measured)


def test_l21_budget_holds(model, clips):
    videos, labels = clips.float_videos(slice(0, 6)), clips.labels[:6]
    run = DeepSAVA(model, selector="saliency", perturbation="noise", max_l21=0.02, max_iters=30).run(videos, labels)
    for video, result in zip(videos, run.results):
        if result.attacked:
            delta = replay(video, result) - video
            rms = sum(float(delta[t].pow(2).mean().sqrt()) for t in result.frames)
            assert rms <= 0.02 + 1e-5


@pytest.mark.parametrize("kind", ["noise", "flow"])
def test_single_part_perturbations(model, clips, kind):
    videos, labels = clips.float_videos(slice(0, 3)), clips.labels[:3]
    run = DeepSAVA(model, perturbation=kind, selector="saliency", max_iters=5).run(videos, labels)
    for result in run.results:
        if result.attacked:
            assert (result.flow is None) == (kind == "noise") and (result.noise is None) == (kind == "flow")


def test_targeted_success_reaches_the_target(model, clips):
    videos, labels = clips.float_videos(slice(0, 6)), clips.labels[:6]
    targets = (labels + 1) % 8
    run = DeepSAVA(model, selector="saliency", frames=2, targeted=True).run(videos, labels, targets)
    assert any(r.success for r in run.results)
    for video, result in zip(videos, run.results):
        if result.success:
            pred, _ = model.predict(replay(video, result).unsqueeze(0))
            assert int(pred) == result.target


def test_misclassified_clean_videos_are_not_attacked_nor_counted(model, clips):
    videos, labels = clips.float_videos(slice(0, 4)), clips.labels[:4].clone()
    labels[0] = (labels[0] + 1) % 8  # the model now "misclassifies" video 0
    run = DeepSAVA(model, selector="saliency", max_iters=3).run(videos, labels)
    assert not run.results[0].attacked and run.summary.attacked == 3


def test_slots_are_refilled_and_results_keep_input_order(model, clips):
    videos, labels = clips.float_videos(slice(0, 7)), clips.labels[:7]
    ids = [f"v{i}" for i in range(7)]
    small = DeepSAVA(model, selector="saliency", batch_size=2, max_iters=40).run(videos, labels, video_ids=ids)
    whole = DeepSAVA(model, selector="saliency", batch_size=7, max_iters=40).run(videos, labels, video_ids=ids)
    assert [r.video_id for r in small.results] == ids
    assert [r.success for r in small.results] == [r.success for r in whole.results]


def test_per_frame_state_covers_only_selected_frames(model, clips):
    run = DeepSAVA(model, frames=3, selector="saliency", max_iters=2).run(clips.float_videos(slice(0, 2)),
                                                                        clips.labels[:2])
    for result in run.results:
        assert result.flow.shape[0] == 3 and result.noise.shape[0] == 3 and len(result.frames) == 3


# ---------------------------------------------------------------------------- bad input
def test_bad_settings_fail_at_construction(model):
    with pytest.raises(ConfigError, match="lam"):
        DeepSAVA(model, lam=-1)
    with pytest.raises(ConfigError, match="min_ssim"):
        DeepSAVA(model, min_ssim=1.5)
    with pytest.raises(ConfigError, match="unknown perturbation"):
        DeepSAVA(model, perturbation="blur")
    with pytest.raises(ConfigError, match="unknown frame selector"):
        DeepSAVA(model, selector="best")
    with pytest.raises(ConfigError, match="frames"):
        DeepSAVA(model, frames=0)


def test_black_box_target_is_refused(model):
    class Opaque:
        white_box = False
        name = "onnx-session"

    with pytest.raises(ConfigError, match="black-box"):
        DeepSAVA(Opaque())


def test_bad_inputs_get_named_errors(model, clips):
    videos, labels = clips.float_videos(slice(0, 2)), clips.labels[:2]
    with pytest.raises(ConfigError, match="k=17 frames of a clip with only T=16"):
        DeepSAVA(model, frames=17).run(videos, labels)
    with pytest.raises(InputError, match="smaller than the 11 x 11"):
        DeepSAVA(model).run(videos[..., :10, :10], labels)
    with pytest.raises(InputError, match="outside the model's 8 classes"):
        DeepSAVA(model).run(videos, torch.tensor([0, 9]))
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        DeepSAVA(model).run(videos * 255, labels)
    with pytest.raises(ConfigError, match="target label"):
        DeepSAVA(model, targeted=True).run(videos, labels)


def test_the_callers_videos_are_left_alone(model, clips):
    videos, labels = clips.float_videos(slice(0, 2)), clips.labels[:2]
    before = videos.clone()
    DeepSAVA(model, max_iters=3).run(videos, labels)
    assert not videos.requires_grad and torch.equal(videos, before)


@pytest.mark.skipif(DEVICE == "cpu" and os.environ.get("TRITON_INTERPRET") != "1",
                    reason="needs a GPU or Triton's interpreter")
def test_the_attack_runs_on_the_triton_kernels(model, clips, monkeypatch):
    """The engine has no kernel code of its own: forcing the backend changes
    every operation underneath it, and the outcome stays the reference's."""
    pytest.importorskip("triton")
    from sava.kernels import dispatch

    videos, labels = clips.float_videos(slice(0, 1)), clips.labels[:1]
    settings = dict(max_iters=3, selector="0")
    monkeypatch.setenv("SAVA_BACKEND", "reference")  # on CUDA, auto would already pick Triton
    reference_run = DeepSAVA(model, **settings).run(videos, labels).results[0]
    calls = []
    original = dispatch._triton
    monkeypatch.setattr(dispatch, "_triton", lambda name: calls.append(name) or original(name))
    monkeypatch.setenv("SAVA_BACKEND", "triton")
    triton_run = DeepSAVA(model, **settings).run(videos, labels).results[0]
    assert {"perturb", "ssim", "update"} <= set(calls)
    assert triton_run.iterations == reference_run.iterations and triton_run.success == reference_run.success
    assert triton_run.ssim == pytest.approx(reference_run.ssim, abs=1e-4)
    # Adam moves each coordinate by about +-lr whatever its gradient's size, so a
    # coordinate whose gradient is ~0 may step either way under float32 rounding.
    for name in ("noise", "flow"):
        gap = (getattr(triton_run, name) - getattr(reference_run, name)).abs()
        assert (gap > 1e-4).float().mean() < 0.01, f"{name}: too many coordinates disagree"
        assert float(gap.max()) < 0.01, f"{name}: a coordinate disagrees by {float(gap.max())}"


def test_sparse_baseline_perturbs_noise_only_and_its_l21_weight_bites(model, clips):
    from sava.attacks import Sparse

    videos, labels = clips.float_videos(slice(0, 6)), clips.labels[:6]
    light = Sparse(model, lam=0.1, selector="saliency", max_iters=30, min_ssim=None).run(videos, labels)
    heavy = Sparse(model, lam=50.0, selector="saliency", max_iters=30, min_ssim=None).run(videos, labels)
    for video, result in zip(videos, light.results):
        if result.attacked:
            assert result.flow is None and result.noise is not None
            if result.success:
                pred, _ = model.predict(replay(video, result).unsqueeze(0))
                assert int(pred) != result.label
    spent = lambda run: sum(r.l21 for r in run.results if r.attacked)  # noqa: E731
    assert spent(heavy) < spent(light), "a larger l2,1 weight must buy a smaller perturbation"


def test_an_attack_is_callable_and_returns_the_adversarial_clips(model, clips):
    """``x_adv = attack(videos, labels)``: checked against the independent grid_sample replay above and by
    classifying the clips it returns."""
    videos, labels = clips.float_videos(slice(0, 4)).to(DEVICE), clips.labels[:4]
    attack = DeepSAVA(model, frames=1, max_iters=40)
    adversarial = attack(videos, labels)
    assert adversarial.shape == videos.shape and adversarial.device == videos.device
    results = attack.run(videos, labels).results  # deterministic: the same results a second time
    for video, clip, result in zip(videos, adversarial, results):
        torch.testing.assert_close(clip.cpu(), replay(video.cpu(), result), atol=1e-5, rtol=0)
        untouched = [t for t in range(video.shape[0]) if t not in result.frames]
        assert torch.equal(clip[untouched], video[untouched])
    predicted = model.predict(adversarial)[0].cpu()
    for result, pred in zip(results, predicted.tolist()):
        if result.attacked:
            assert (pred != result.label) == result.success
