"""Moving handwritten digits, built from scikit-learn's real ``load_digits`` scans.

A coloured digit rests on a static textured background that wraps around (a
torus), then makes one short move -- a burst of ``EVENT`` frames starting at a
random frame -- and rests again. The class is the move: one of four
directions at one of two speeds. The start position is uniform on the torus
and the digit, colour, background and onset are drawn independently of the
class, so any single frame has the same distribution for every class:
telling the classes apart needs the frames of the move.

The move is an event, as actions in real videos are: the evidence sits in a
few key frames, which is what sparse attacks and frame selection exploit.

Train and test clips use disjoint sets of handwritten samples.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .clips import ClipSet, to_uint8

DIRECTIONS = {"right": (0, 1), "left": (0, -1), "down": (1, 0), "up": (-1, 0)}
SPEEDS = {"slow": 1, "fast": 2}
CLASSES = [f"{d}-{s}" for d in DIRECTIONS for s in SPEEDS]

FRAMES, SIZE, DIGIT_SIZE = 16, 32, 16
EVENT = 5  # frames from the start to the end of the move (4 steps)
CLIPS = {"train": 1600, "test": 400}
TRAIN_SHARE = 0.7


def _digit_images(split: str) -> torch.Tensor:
    from sklearn.datasets import load_digits

    images = torch.from_numpy(load_digits().images).float() / 16.0  # 1797 x 8 x 8, real scans
    cut = int(len(images) * TRAIN_SHARE)
    images = images[:cut] if split == "train" else images[cut:]
    return F.interpolate(images.unsqueeze(1), size=(DIGIT_SIZE, DIGIT_SIZE), mode="bilinear", align_corners=False)


def generate(split: str, seed: int = 0) -> ClipSet:
    if split not in CLIPS:
        raise ValueError(f"split must be one of {sorted(CLIPS)}, got {split!r}")
    gen = torch.Generator().manual_seed(seed * 2 + (split == "test"))
    digits = _digit_images(split)
    count = CLIPS[split]
    labels = torch.arange(count) % len(CLASSES)
    labels = labels[torch.randperm(count, generator=gen)]

    digit_pick = torch.randint(len(digits), (count,), generator=gen)
    colour = 0.45 + 0.55 * torch.rand(count, 3, 1, 1, generator=gen)
    # Smooth static background: low-resolution noise, upsampled.
    background = 0.25 * torch.rand(count, 3, 4, 4, generator=gen)
    background = F.interpolate(background, size=(SIZE, SIZE), mode="bicubic", align_corners=False).clamp(0, 1)
    start = torch.randint(SIZE, (count, 2), generator=gen)
    onset = torch.randint(FRAMES - EVENT + 1, (count,), generator=gen)

    canvas = torch.zeros(count, 1, SIZE, SIZE)
    canvas[:, :, :DIGIT_SIZE, :DIGIT_SIZE] = digits[digit_pick]
    videos = torch.empty(count, FRAMES, 3, SIZE, SIZE)
    for i in range(count):
        direction, speed = CLASSES[int(labels[i])].split("-")
        dy, dx = (v * SPEEDS[speed] for v in DIRECTIONS[direction])
        for t in range(FRAMES):
            steps = min(max(t - int(onset[i]), 0), EVENT - 1)
            shift = (int(start[i, 0]) + dy * steps, int(start[i, 1]) + dx * steps)
            alpha = torch.roll(canvas[i], shifts=shift, dims=(-2, -1))
            videos[i, t] = alpha * colour[i] + (1 - alpha) * background[i]
    return ClipSet("digits", split, to_uint8(videos), labels, list(CLASSES))
