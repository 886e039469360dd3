"""The fused Triton SSIM against pytorch_msssim and the reference: values and
the gradient for the perturbed frame. Tiny shapes: on CPU this runs through
Triton's interpreter, which pays per window tap."""

from __future__ import annotations

import os

import pytest
import torch
from pytorch_msssim import ssim as msssim_ssim

from sava.kernels import dispatch
from sava.kernels import reference as ref
from tests.device import DEVICE

from .tolerances import assert_close

pytest.importorskip("triton")
if DEVICE == "cpu" and os.environ.get("TRITON_INTERPRET") != "1":
    pytest.skip("no GPU and the Triton interpreter is off", allow_module_level=True)

from sava.kernels.fused import ssim as fused  # noqa: E402  (after TRITON_INTERPRET is set)
from sava.kernels.fused import ssim_one_pass  # noqa: E402

SHAPES = [(1, 1, 11, 11), (2, 3, 12, 13), (1, 2, 19, 11)]


def pair(shape, seed=0):
    gen = torch.Generator().manual_seed(seed)
    clean = torch.rand(shape, generator=gen)
    perturbed = (clean + 0.15 * torch.randn(shape, generator=gen)).clamp(0, 1)
    return perturbed.to(DEVICE), clean.to(DEVICE)


@pytest.mark.parametrize("design", fused.DESIGNS)
@pytest.mark.parametrize("shape", SHAPES)
def test_values_and_gradient_match(shape, design, monkeypatch):
    monkeypatch.setattr(fused, "DESIGN", design)
    x, y = pair(shape)
    ours_in = x.clone().requires_grad_()
    theirs_in = x.clone().requires_grad_()
    ours = fused.ssim(ours_in, y)
    theirs = msssim_ssim(theirs_in, y, data_range=1.0, size_average=False, win_size=11, win_sigma=1.5)
    assert_close(ours, theirs, "ssim vs pytorch_msssim")
    upstream = torch.linspace(-1, 2, ours.numel(), device=DEVICE).view_as(ours)
    g_ours = torch.autograd.grad(ours, ours_in, upstream)[0]
    g_theirs = torch.autograd.grad(theirs, theirs_in, upstream)[0]
    assert_close(g_ours, g_theirs, "d ssim / d x")


def test_frames_spanning_several_tiles(monkeypatch):
    """Tiles smaller than the frame, ragged at the bottom and right edges: the
    per-tile partial sums and the halo rows and columns between tiles."""
    monkeypatch.setattr(fused, "SEG", 2)
    monkeypatch.setattr(fused, "COLS", 8)
    x, y = pair((1, 2, 13, 20), seed=3)  # forward 2 x 2 tiles, backward 7 x 3
    ours_in = x.clone().requires_grad_()
    ours = fused.ssim(ours_in, y)
    theirs = msssim_ssim(x, y, data_range=1.0, size_average=False, win_size=11, win_sigma=1.5)
    assert_close(ours, theirs, "tiled ssim vs pytorch_msssim")
    reference_in = x.clone().requires_grad_()
    upstream = torch.tensor([-2.0], device=DEVICE)
    g_ours = torch.autograd.grad(ours, ours_in, upstream)[0]
    g_ref = torch.autograd.grad(ref.ssim(reference_in, y), reference_in, upstream)[0]
    assert_close(g_ours, g_ref, "tiled d ssim / d x")


def test_the_one_pass_design_across_strips_and_segments(monkeypatch):
    """The one-pass kernel's strips overlap by the window's 10 columns and its segments read 10 rows above and
    below: tiles smaller than the frame, ragged at the right and bottom edges, against float64 autograd of
    the reference, for a non-contiguous input."""
    monkeypatch.setattr(fused, "DESIGN", "one_pass")
    monkeypatch.setattr(ssim_one_pass, "SEG", 4)
    monkeypatch.setattr(ssim_one_pass, "COLS", 16)  # 6 pixel columns per strip: 4 strips, the last ragged
    x, y = pair((1, 1, 15, 20), seed=5)  # 4 segments, the last of 3 rows
    x = x.transpose(-1, -2).contiguous().transpose(-1, -2)
    assert not x.is_contiguous()
    ours_in = x.clone().requires_grad_()
    ours = fused.ssim(ours_in, y)
    reference_in = x.double().requires_grad_()
    expected = ref.ssim(reference_in, y.double())
    assert_close(ours, expected.float(), "one-pass ssim vs float64 reference")
    upstream = torch.tensor([1.7], device=DEVICE)
    (g_ours,) = torch.autograd.grad(ours, ours_in, upstream)
    (g_ref,) = torch.autograd.grad(expected, reference_in, upstream.double())
    assert float(g_ref.abs().min()) > 0  # every pixel has a gradient: an unwritten one cannot pass
    assert_close(g_ours, g_ref.float(), "one-pass d ssim / d x")


def test_the_one_pass_design_leaves_no_pixel_unwritten():
    """Its gradient buffer starts uninitialised: NaN is freed just before the launch, so that a pixel the
    kernel skips shows as a wrong value, not as a lucky zero (CUDA's caching allocator hands that memory
    back to the launch; on CPU the allocator usually does)."""
    x, y = pair((2, 2, 14, 25), seed=6)
    torch.full((4 * x.numel(),), float("nan"), device=DEVICE)  # freed into the cache the launch draws from
    values, gradient = ssim_one_pass.launch(x, y)
    reference_in = x.double().requires_grad_()
    expected = ref.ssim(reference_in, y.double())
    (g_ref,) = torch.autograd.grad(expected.sum(), reference_in)
    assert_close(values, expected.float(), "one-pass values")
    assert_close(gradient, g_ref.float(), "one-pass gradient")


@pytest.mark.skipif(DEVICE != "cuda", reason="a race between a program's threads shows only on a GPU")
def test_the_one_pass_design_at_full_frame_size_is_right_and_repeatable():
    """The scratch row between the maps and their transposed filter is shared by a program's threads: a
    missing barrier would make the result wrong at some sizes and differ between runs. Full 224 x 224 frames
    (several strips and segments at the launch defaults), float64 reference, two runs bitwise equal."""
    x, y = pair((16, 3, 224, 224), seed=7)
    first_values, first_gradient = ssim_one_pass.launch(x, y)
    second_values, second_gradient = ssim_one_pass.launch(x, y)
    assert torch.equal(first_values, second_values) and torch.equal(first_gradient, second_gradient)
    reference_in = x.double().requires_grad_()
    expected = ref.ssim(reference_in, y.double())
    (g_ref,) = torch.autograd.grad(expected.sum(), reference_in)
    assert_close(first_values, expected.float(), "one-pass values at 224 x 224")
    relative = float((first_gradient.double() - g_ref).norm() / g_ref.norm())
    assert relative < 1e-5, relative


def test_non_contiguous_frames_and_leading_dims():
    base = torch.rand(2, 3, 4, 12, 12, device=DEVICE)  # B x C x T x H x W
    x = base.transpose(1, 2)[:, 1:3]  # B x 2 x C x H x W, not contiguous
    y = (x + 0.1).clamp(0, 1)
    assert not x.is_contiguous()
    ours = fused.ssim(x, y)
    assert ours.shape == (2, 2)
    assert_close(ours, ref.ssim(x, y), "strided frames")


def test_identical_frames_score_one_and_no_gradient_is_kept_without_grad():
    x, _ = pair((2, 3, 11, 12))
    values, maps = fused._ssim_forward_op(x, x, False)
    assert_close(values, torch.ones(2, device=DEVICE), "ssim(x, x)")
    assert maps.numel() == 0


def test_custom_op_registration():
    x, y = pair((1, 1, 11, 12))
    torch.library.opcheck(fused._ssim_forward_op, (x, y, True))
    torch.library.opcheck(ssim_one_pass._ssim_one_pass_op, (x, y))
    _, maps = fused._ssim_forward_op(x, y, True)
    torch.library.opcheck(fused._ssim_backward_op, (torch.ones(1, device=DEVICE), x, y, maps))


def test_a_row_mask_evaluates_the_rows_it_names_and_skips_the_others():
    """The rows named agree with pytorch_msssim; a row left out is not computed at all (its value is the
    kernel's untouched zero, not its SSIM)."""
    x, y = pair((3, 2, 3, 12, 13))
    rows = torch.tensor([False, True, True], device=DEVICE)
    values = dispatch.ssim(x, y, backend="triton", rows=rows)
    expected = msssim_ssim(x.flatten(0, 1), y.flatten(0, 1), data_range=1.0, size_average=False, win_size=11,
                           win_sigma=1.5).view(3, 2)
    assert_close(values[rows], expected[rows], "named rows")
    assert float(expected[0].min()) > 0.1
    assert values[0].tolist() == [0.0, 0.0]


def test_clear_errors():
    x, y = pair((1, 1, 11, 11))
    with pytest.raises(ValueError, match="first argument only"):
        fused.ssim(x, y.requires_grad_())
    with pytest.raises(ValueError, match="smaller than the 11 x 11"):
        fused.ssim(x[..., :10], y[..., :10].detach())


def test_an_unknown_design_is_named(monkeypatch):
    x, y = pair((1, 1, 11, 11))
    monkeypatch.setattr(fused, "DESIGN", "tiles")
    with pytest.raises(ValueError, match="DESIGN is 'tiles'; choose from maps, one_pass"):
        fused.ssim(x, y)
    monkeypatch.setattr(ssim_one_pass, "COLS", 8)
    with pytest.raises(ValueError, match="COLS = 8 leaves no pixel columns"):
        ssim_one_pass.launch(x, y)


def test_dispatch_routes_a_differentiable_second_argument_to_the_reference():
    """The fused kernel differentiates its first argument only; under ``auto`` a second argument that wants a
    gradient goes to the reference, whose gradient must be pytorch_msssim's."""
    x, y = pair((1, 2, 12, 13))
    ours_y, theirs_y = y.clone().requires_grad_(), y.clone().requires_grad_()
    (ours,) = torch.autograd.grad(dispatch.ssim(x, ours_y).sum(), ours_y)
    theirs = msssim_ssim(x, theirs_y, data_range=1.0, size_average=False, win_size=11, win_sigma=1.5)
    (expected,) = torch.autograd.grad(theirs.sum(), theirs_y)
    assert float(expected.abs().max()) > 0
    assert_close(ours, expected, "d ssim / d y")
