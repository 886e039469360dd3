"""Every launcher's grid fits CUDA's limits for the largest clips an attack meets (a 16-frame 1080p clip, a
batch of 64 one-frame 4K clips), checked without a GPU: Triton's interpreter never checks grid limits, so a
launch that fails only on the device would otherwise pass every CPU test.

The launchers run on meta tensors (shapes without memory) and their kernels are replaced by recorders of the
grid they are given: what is under test is the grid the launcher builds, not the kernel."""

from __future__ import annotations

import os

import pytest
import torch

from tests.device import DEVICE

pytest.importorskip("triton")
if DEVICE == "cpu" and os.environ.get("TRITON_INTERPRET") != "1":
    pytest.skip("no GPU and the Triton interpreter is off", allow_module_level=True)

from sava.kernels.fused import perturb, ssim, ssim_one_pass, update  # noqa: E402  (after TRITON_INTERPRET is set)
from sava.kernels.fused.grid import GRID_LIMITS, launch_grid  # noqa: E402

META = torch.device("meta")
# (batch, frames per video, channels, height, width)
LARGE = [(1, 16, 3, 1080, 1920), (64, 1, 3, 2160, 3840), (8, 16, 3, 224, 224)]


class Recorder:
    """Stands in for a ``@triton.jit`` kernel: ``kernel[grid](...)`` records the grid and runs nothing."""

    def __init__(self, grids: list):
        self.grids = grids

    def __getitem__(self, grid):
        self.grids.append(tuple(grid))
        return lambda *args, **kwargs: None


@pytest.fixture
def grids(monkeypatch):
    seen: list[tuple] = []
    for module in (perturb, ssim, ssim_one_pass, update):
        for name in dir(module):
            if name.endswith("_kernel") and hasattr(getattr(module, name), "fn"):
                monkeypatch.setattr(module, name, Recorder(seen))
    return seen


def within_limits(grid: tuple) -> bool:
    return all(0 < size <= limit for size, limit in zip(grid, GRID_LIMITS)) and len(grid) <= 3


@pytest.mark.parametrize("shape", LARGE)
def test_update_grids_fit_for_large_clips(grids, shape):
    batch = shape[0]
    state = [torch.empty(shape, device=META) for _ in range(4)]
    step, active = torch.zeros(batch, dtype=torch.int64, device=META), torch.ones(batch, dtype=torch.bool, device=META)
    update._launch_adam(*state, step, active, 0.1, 0.9, 0.999, 1e-8)
    flow = torch.empty(batch, shape[1], 2, *shape[3:], device=META)
    pair = [[flow, state[0]], [flow, state[1]], [flow.clone(), state[2]], [flow.clone(), state[3]]]
    update._launch_adam_pair(*pair, step, active, [0.1, 0.01], 0.9, 0.999, 1e-8)
    update._launch_sign(state[0], state[1], active, 0.01, 0.03, True, state[2])
    assert len(grids) == 3 and all(within_limits(g) for g in grids), grids


@pytest.mark.parametrize("shape", LARGE)
def test_perturbation_and_ssim_grids_fit_for_large_clips(grids, shape):
    batch, k, channels, height, width = shape
    video = torch.empty(batch, k, channels, height, width, device=META)
    idx = torch.zeros(batch, k, dtype=torch.int64, device=META)
    flow, noise = torch.empty(batch, k, 2, height, width, device=META), torch.empty_like(video)
    perturb._launch_forward(video, idx, flow, noise)
    perturb._launch_backward(torch.empty_like(video), video, idx, flow, noise, need_video=False)
    frames = video.view(batch * k, channels, height, width)
    _, maps = ssim._launch_forward(frames, frames, keep_maps=True)
    ssim._launch_backward(torch.empty(batch * k, device=META), frames, frames, maps)
    ssim_one_pass.launch(frames, frames)
    assert len(grids) == 5 and all(within_limits(g) for g in grids), grids


def test_the_16_frame_1080p_row_needs_more_blocks_than_axis_y_allows():
    """Why the update kernels put a row's blocks on axis x: on axis y this clip would not launch."""
    row = 16 * 3 * 1080 * 1920
    blocks = -(-row // update.BLOCK)
    assert blocks > GRID_LIMITS[1]
    assert update.row_grid("adam", 1, blocks) == (blocks, 1)
    with pytest.raises(ValueError, match=r"adam: grid axis y would have 97,200 blocks, over CUDA's limit of 65,535"):
        launch_grid("adam", 1, blocks)


def test_a_batch_beyond_axis_y_is_refused_by_name():
    with pytest.raises(ValueError, match="masked_adam_step_: grid axis y"):
        update.row_grid("masked_adam_step_", GRID_LIMITS[1] + 1, 3)
