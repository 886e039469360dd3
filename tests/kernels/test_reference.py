"""The reference operations against independent implementations."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from pytorch_msssim import ssim as msssim_ssim

from sava.kernels import reference as ref

from .tolerances import assert_close

SHAPES = [(1, 3, 11, 11), (2, 1, 13, 17), (3, 3, 23, 19), (2, 2, 31, 12)]


def grid_sample_warp(frames: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """The warp written through grid_sample (pixels -> normalised coordinates)."""
    _, _, height, width = frames.shape
    rows = torch.arange(height, dtype=flow.dtype).view(height, 1)
    cols = torch.arange(width, dtype=flow.dtype).view(1, width)
    gy = 2 * (rows + flow[:, 0]) / (height - 1) - 1
    gx = 2 * (cols + flow[:, 1]) / (width - 1) - 1
    grid = torch.stack([gx, gy], dim=-1)
    return F.grid_sample(frames, grid, mode="bilinear", padding_mode="border", align_corners=True)


def random_flow(n: int, height: int, width: int, scale: float, dtype=torch.float32) -> torch.Tensor:
    # Non-integer offsets keep sample points off the exact far border, where the
    # one-sided gradient conventions of the two implementations differ.
    return (torch.rand(n, 2, height, width, dtype=dtype) * 2 - 1) * scale + 0.1234


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("scale", [0.7, 3.0, 40.0])
def test_warp_matches_grid_sample_values_and_gradients(shape, scale):
    torch.manual_seed(hash((shape, scale)) % 2**31)
    n, c, h, w = shape
    frames = torch.rand(shape, dtype=torch.float64, requires_grad=True)
    flow = random_flow(n, h, w, scale, torch.float64).requires_grad_()
    ours = ref.warp(frames, flow)
    theirs = grid_sample_warp(frames, flow)
    assert_close(ours, theirs, "warp values")

    upstream = torch.randn_like(ours)
    ours_grads = torch.autograd.grad(ours, (frames, flow), upstream)
    their_grads = torch.autograd.grad(theirs, (frames, flow), upstream)
    assert_close(ours_grads[0], their_grads[0], "warp d/dframes")
    assert_close(ours_grads[1], their_grads[1], "warp d/dflow")


def test_warp_float32_and_zero_flow_identity():
    frames = torch.rand(2, 3, 14, 9)
    assert_close(ref.warp(frames, torch.zeros(2, 2, 14, 9)), frames, "identity warp")
    flow = random_flow(2, 14, 9, 2.5)
    assert_close(ref.warp(frames, flow), grid_sample_warp(frames, flow), "warp float32")


def test_warp_far_outside_clamps_to_border():
    frames = torch.rand(1, 3, 12, 15)
    flow = torch.zeros(1, 2, 12, 15)
    flow[:, 0] = 1000.0  # every sample far below the last row
    out = ref.warp(frames, flow)
    assert_close(out, frames[:, :, -1:, :].expand_as(out), "clamped rows")


def test_warp_gradcheck_float64():
    frames = torch.rand(1, 2, 5, 6, dtype=torch.float64, requires_grad=True)
    flow = random_flow(1, 5, 6, 1.3, torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(ref.warp, (frames, flow))


def test_warp_rejects_mismatched_flow():
    with pytest.raises(ValueError, match="flow must be"):
        ref.warp(torch.rand(1, 3, 12, 12), torch.zeros(1, 3, 12, 12))


# --------------------------------------------------------------------------- perturbation
def test_perturb_frames_clamps_both_stages():
    torch.manual_seed(0)
    frames = torch.rand(2, 3, 13, 13, dtype=torch.float64)
    flow = random_flow(2, 13, 13, 2.0, torch.float64)
    noise = torch.randn(2, 3, 13, 13, dtype=torch.float64) * 0.5
    expected = (grid_sample_warp(frames, flow).clamp(0, 1) + noise).clamp(0, 1)
    assert_close(ref.perturb_frames(frames, flow, noise), expected, "combined")
    assert_close(ref.perturb_frames(frames, None, noise), (frames + noise).clamp(0, 1), "noise only")
    assert_close(ref.perturb_frames(frames, flow, None), grid_sample_warp(frames, flow), "flow only")


@pytest.mark.parametrize("k", [1, 3, 5])
def test_apply_touches_only_selected_frames(k):
    torch.manual_seed(k)
    b, t, c, h, w = 3, 5, 3, 13, 11
    video = torch.rand(b, t, c, h, w, dtype=torch.float64)
    frame_idx = torch.stack([torch.randperm(t)[:k] for _ in range(b)])
    flow = random_flow(b * k, h, w, 1.5, torch.float64).view(b, k, 2, h, w).requires_grad_()
    noise = (torch.randn(b, k, c, h, w, dtype=torch.float64) * 0.1).requires_grad_()
    out = ref.apply_perturbation(video, frame_idx, flow, noise)

    for i in range(b):
        for j in range(t):
            if j in frame_idx[i].tolist():
                slot = frame_idx[i].tolist().index(j)
                expected = (grid_sample_warp(video[i, j : j + 1], flow[i, slot : slot + 1]).clamp(0, 1)
                            + noise[i, slot : slot + 1]).clamp(0, 1)
                assert_close(out[i, j : j + 1], expected, f"video {i} frame {j}")
            else:
                assert torch.equal(out[i, j], video[i, j]), f"video {i} frame {j} changed"

    # Gradients reach the perturbation parameters of selected frames only through those frames.
    grad_flow, grad_noise = torch.autograd.grad(out.sum(), (flow, noise))
    assert torch.isfinite(grad_flow).all() and torch.isfinite(grad_noise).all()


def test_apply_accepts_non_contiguous_video():
    base = torch.rand(2, 3, 6, 13, 12)  # B x C x T x H x W
    video = base.transpose(1, 2)  # B x T x C x H x W view, not contiguous
    assert not video.is_contiguous()
    frame_idx = torch.tensor([[0], [5]])
    noise = torch.full((2, 1, 3, 13, 12), 0.05)
    out = ref.apply_perturbation(video, frame_idx, None, noise)
    expected = video.clone()
    expected[0, 0] = (expected[0, 0] + 0.05).clamp(0, 1)
    expected[1, 5] = (expected[1, 5] + 0.05).clamp(0, 1)
    assert_close(out, expected, "non-contiguous apply")


# --------------------------------------------------------------------------- ssim
SSIM_SHAPES = [(1, 1, 11, 11), (2, 3, 12, 11), (3, 3, 29, 37), (2, 2, 64, 48)]


@pytest.mark.parametrize("shape", SSIM_SHAPES)
def test_ssim_matches_pytorch_msssim(shape):
    torch.manual_seed(sum(shape))
    x = torch.rand(shape, dtype=torch.float64)
    y = (x + 0.2 * torch.randn(shape, dtype=torch.float64)).clamp(0, 1).requires_grad_()
    ours = ref.ssim(y, x)
    theirs = msssim_ssim(y, x, data_range=1.0, size_average=False, win_size=11, win_sigma=1.5)
    # pytorch_msssim builds its Gaussian taps in float32, so float32 tolerances apply.
    assert_close(ours, theirs, "ssim values", dtype=torch.float32)
    g_ours = torch.autograd.grad(ours.sum(), y)[0]
    g_theirs = torch.autograd.grad(theirs.sum(), y)[0]
    assert_close(g_ours, g_theirs, "ssim d/dy", dtype=torch.float32)


def test_ssim_leading_dims_and_identity():
    x = torch.rand(2, 4, 3, 15, 16)
    assert ref.ssim(x, x).shape == (2, 4)
    assert_close(ref.ssim(x, x), torch.ones(2, 4), "ssim(x, x)")


def test_ssim_gradcheck_float64():
    x = torch.rand(1, 2, 12, 13, dtype=torch.float64)
    y = torch.rand(1, 2, 12, 13, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v: ref.ssim(v, x), (y,))


def test_ssim_rejects_frames_smaller_than_window():
    with pytest.raises(ValueError, match="smaller than the 11 x 11 window"):
        ref.ssim(torch.rand(1, 3, 10, 40), torch.rand(1, 3, 10, 40))


# --------------------------------------------------------------------------- l2,1
def test_l21_norm_against_explicit_loop():
    torch.manual_seed(3)
    delta = torch.randn(2, 4, 3, 7, 5, dtype=torch.float64)
    raw = torch.tensor([sum(float(torch.sqrt((delta[b, f] ** 2).sum())) for f in range(4)) for b in range(2)],
                       dtype=torch.float64)
    assert_close(ref.l21_norm(delta, per_pixel=False), raw, "raw l2,1")
    assert_close(ref.l21_norm(delta), raw / (3 * 7 * 5) ** 0.5, "per-pixel l2,1")


# --------------------------------------------------------------------------- masked Adam
def test_masked_adam_matches_torch_adam_on_active_rows():
    torch.manual_seed(5)
    rows, lr = 4, 0.03
    param = torch.randn(rows, 3, 5, dtype=torch.float64)
    exp_avg, exp_avg_sq = torch.zeros_like(param), torch.zeros_like(param)
    step = torch.zeros(rows, dtype=torch.int64)
    # One torch.optim.Adam per row: rows join and leave at different times.
    reference = [param[i].clone().requires_grad_() for i in range(rows)]
    optimisers = [torch.optim.Adam([p], lr=lr) for p in reference]
    schedule = [[1, 1, 0, 1], [1, 0, 0, 1], [1, 1, 1, 1], [0, 1, 1, 1], [1, 1, 1, 0]]
    for flags in schedule:
        grad = torch.randn_like(param)
        active = torch.tensor(flags, dtype=torch.bool)
        ref.masked_adam_step_(param, grad, exp_avg, exp_avg_sq, step, active, lr)
        for i in range(rows):
            if flags[i]:
                reference[i].grad = grad[i].clone()
                optimisers[i].step()
    for i in range(rows):
        assert_close(param[i], reference[i], f"row {i}")
    assert step.tolist() == [sum(f[i] for f in schedule) for i in range(rows)]
