"""The fused Triton perturbation against the reference: values and gradients.

On a machine without a GPU this runs through Triton's CPU interpreter
(tests/conftest.py sets TRITON_INTERPRET=1); shapes stay tiny for it.
"""

from __future__ import annotations

import os

import pytest
import torch

from sava.kernels import dispatch
from sava.kernels import reference as ref
from tests.device import DEVICE, ON_CUDA

from .tolerances import assert_close

pytest.importorskip("triton")
if DEVICE == "cpu" and os.environ.get("TRITON_INTERPRET") != "1":
    pytest.skip("no GPU and the Triton interpreter is off", allow_module_level=True)

from sava.kernels.fused import perturb  # noqa: E402  (after TRITON_INTERPRET is set)

# (B, T, C, H, W, k)
CASES = [
    (1, 1, 3, 11, 11, 1),  # one frame of the smallest SSIM-able size, k = T
    (2, 5, 3, 13, 17, 2),  # primes
    (3, 4, 1, 12, 11, 4),  # single channel, k = T
    (2, 7, 2, 29, 23, 1),
]


def make_case(b, t, c, h, w, k, flow_scale=2.5, seed=0, contiguous=False):
    gen = torch.Generator().manual_seed(seed)
    if contiguous:
        video = torch.rand(b, t, c, h, w, generator=gen)
    else:  # a B x T x C x H x W view of a B x C x T x H x W tensor: not contiguous
        video = torch.rand(b, c, t, h, w, generator=gen).transpose(1, 2)
    idx = torch.stack([torch.randperm(t, generator=gen)[:k] for _ in range(b)])
    # Non-integer offset keeps sample points off the exact far border (see reference.warp).
    flow = (torch.rand(b, k, 2, h, w, generator=gen) * 2 - 1) * flow_scale + 0.1234
    noise = torch.randn(b, k, c, h, w, generator=gen) * 0.2
    return [x.to(DEVICE) for x in (video, idx, flow, noise)]


def run_both(video, idx, flow, noise, grad_video=False):
    """Forward and backward through Triton and through the reference."""
    outputs, grads = [], []
    for impl in ("triton", "reference"):
        leaves = [video.clone().requires_grad_(grad_video),
                  None if flow is None else flow.clone().requires_grad_(),
                  None if noise is None else noise.clone().requires_grad_()]
        out = dispatch.perturb_selected(leaves[0], idx, leaves[1], leaves[2], backend=impl)
        upstream = torch.randn(out.shape, generator=torch.Generator().manual_seed(7)).to(DEVICE)
        wanted = [x for x in leaves if x is not None and x.requires_grad]
        outputs.append(out)
        grads.append(torch.autograd.grad(out, wanted, upstream))
    return outputs, grads


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("parts", ["combined", "noise", "flow"])
def test_matches_reference(case, parts):
    video, idx, flow, noise = make_case(*case)
    flow = flow if parts != "noise" else None
    noise = noise if parts != "flow" else None
    (ours, theirs), (g_ours, g_theirs) = run_both(video, idx, flow, noise)
    assert_close(ours, theirs, f"{parts} forward")
    for name, a, b in zip(["flow", "noise"] if parts == "combined" else [parts], g_ours, g_theirs):
        assert_close(a, b, f"{parts} d/d{name}")


@pytest.mark.parametrize("flow_scale", [0.4, 40.0])
def test_flows_far_outside_and_contiguous_video(flow_scale):
    video, idx, flow, noise = make_case(2, 3, 3, 12, 14, 2, flow_scale=flow_scale, contiguous=True)
    (ours, theirs), (g_ours, g_theirs) = run_both(video, idx, flow, noise)
    assert_close(ours, theirs, "forward")
    assert_close(g_ours[0], g_theirs[0], "d/dflow")
    assert_close(g_ours[1], g_theirs[1], "d/dnoise")


@pytest.mark.parametrize("parts", ["combined", "noise"])
def test_gradient_for_the_clean_video_when_asked(parts):
    video, idx, flow, noise = make_case(2, 4, 2, 13, 12, 2, seed=3)
    flow = flow if parts == "combined" else None
    (ours, theirs), (g_ours, g_theirs) = run_both(video, idx, flow, noise, grad_video=True)
    assert_close(g_ours[0], g_theirs[0], f"{parts} d/dvideo")


def test_perturb_frames_any_leading_dims():
    frames = torch.rand(2, 3, 3, 12, 13, device=DEVICE)[:, 1:]  # B x k view with a batch stride
    flow = torch.randn(2, 2, 2, 12, 13, device=DEVICE) + 0.123
    noise = torch.randn(2, 2, 3, 12, 13, device=DEVICE) * 0.1
    assert_close(perturb.perturb_frames(frames, flow, noise), ref.perturb_frames(frames, flow, noise), "B x k")
    flat = frames.reshape(4, 3, 12, 13)
    assert_close(perturb.perturb_frames(flat, flow.reshape(4, 2, 12, 13), noise.reshape(4, 3, 12, 13)),
                 ref.perturb_frames(flat, flow.reshape(4, 2, 12, 13), noise.reshape(4, 3, 12, 13)), "N frames")


def test_a_row_mask_evaluates_the_rows_it_names():
    """The budget projection's masked evaluation: the rows named come out as the reference's, through the
    dispatcher, for B x k frames and for frames with other leading dimensions."""
    video, idx, flow, noise = make_case(3, 4, 3, 12, 13, 2)
    frames = ref.gather_frames(video, idx)
    rows = torch.tensor([True, False, True], device=DEVICE)
    out = dispatch.perturb_frames(frames, flow, noise, backend="triton", rows=rows)
    assert_close(out[rows], ref.perturb_frames(frames, flow, noise)[rows], "named rows, B x k")
    flat = [t.flatten(0, 1).unflatten(0, (3, 2)).flatten(1, 2).unflatten(1, (2, -1)) for t in (frames, flow, noise)]
    out = dispatch.perturb_frames(*flat, backend="triton", rows=rows)
    assert_close(out[rows], ref.perturb_frames(*flat)[rows], "named rows, B x k as (B, k, ...)")


@pytest.mark.parametrize(
    "rows, message",
    [
        (torch.ones(2, dtype=torch.bool), "shape \\(3,\\)"),
        (torch.ones(3, dtype=torch.int64), "bool mask"),
    ],
)
def test_a_bad_row_mask_is_named(rows, message):
    video, idx, flow, noise = make_case(3, 4, 3, 12, 13, 2)
    with pytest.raises(ValueError, match=message):
        dispatch.perturb_frames(ref.gather_frames(video, idx), flow, noise, rows=rows.to(DEVICE))
    with pytest.raises(ValueError, match="evaluation only"):
        dispatch.perturb_frames(ref.gather_frames(video, idx), flow.requires_grad_(), noise,
                                rows=torch.ones(3, dtype=torch.bool, device=DEVICE))


def test_custom_op_registration_and_compile():
    video, idx, flow, noise = make_case(1, 2, 3, 11, 12, 1)
    torch.library.opcheck(perturb._perturb_selected_op, (video, idx, flow, noise))
    compiled = torch.compile(perturb.perturb_selected, backend="eager", fullgraph=True)
    assert_close(compiled(video, idx, flow, noise), ref.perturb_frames(ref.gather_frames(video, idx), flow, noise),
                 "compiled")


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda v, i, f, n: (v, i.to(torch.int32), f, n), "int64"),
        (lambda v, i, f, n: (v, i, f[..., :-1], n), "flow must be"),
        (lambda v, i, f, n: (v, i + 10, f, n), "frame indices must lie"),
        (lambda v, i, f, n: (v[0], i, f, n), "B x T x C x H x W"),
    ],
)
def test_bad_inputs_are_named(change, message):
    with pytest.raises(ValueError, match=message):
        perturb.perturb_selected(*change(*make_case(1, 2, 3, 11, 11, 1)))


def test_dispatch_choice(monkeypatch):
    x = torch.rand(1, 1, 3, 11, 11, device=DEVICE)
    monkeypatch.delenv(dispatch.ENVIRONMENT_VARIABLE, raising=False)
    assert dispatch.resolve(None, x) == ("triton" if ON_CUDA else "reference")  # auto: Triton for CUDA float32
    assert dispatch.resolve(None, x.double()) == "reference"
    monkeypatch.setenv(dispatch.ENVIRONMENT_VARIABLE, "triton")
    assert dispatch.resolve(None, x) == "triton"
    assert dispatch.resolve("reference", x) == "reference"  # the argument beats the variable
    monkeypatch.setenv(dispatch.ENVIRONMENT_VARIABLE, "fast")
    with pytest.raises(ValueError, match="unknown backend 'fast'"):
        dispatch.resolve(None, x)
    with pytest.raises(ValueError, match="float32"):
        dispatch.resolve("triton", x.double())


def test_triton_on_cpu_tensors_needs_the_interpreter(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    with pytest.raises(RuntimeError, match="TRITON_INTERPRET=1"):
        dispatch.resolve("triton", torch.rand(1, 1, 3, 11, 11))


def test_blocks_smaller_than_a_frame(monkeypatch):
    """Several programs per frame (BLOCK below H * W, the last block ragged): each finds its pixels' rows
    and columns, and the flow gradient's per-pixel sums over channels stay in their own block."""
    monkeypatch.setattr(perturb, "BLOCK", 64)
    video, idx, flow, noise = make_case(2, 5, 3, 13, 17, 2, seed=4)  # 221 pixels: 4 blocks, the last of 29
    (out, expected), (grads, expected_grads) = run_both(video, idx, flow, noise, grad_video=True)
    assert_close(out, expected, "perturbed frames, small blocks")
    for ours, theirs, name in zip(grads, expected_grads, ("video", "flow", "noise"), strict=True):
        assert_close(ours, theirs, f"d {name}, small blocks")


def test_indices_are_checked_once_per_tensor_and_again_after_a_change():
    video, idx, flow, noise = make_case(1, 4, 1, 11, 11, 2)
    perturb.perturb_selected(video, idx, flow, noise)
    idx[0, 0] = 9  # in place: the version counter moves, so the next call looks again
    with pytest.raises(ValueError, match=r"must lie in \[0, 4\)"):
        perturb.perturb_selected(video, idx, flow, noise)
    fresh = torch.full_like(idx, -1)  # a new tensor (perhaps in the memory of a freed one) is checked
    with pytest.raises(ValueError, match=r"must lie in \[0, 4\)"):
        perturb.perturb_selected(video, fresh, flow, noise)
