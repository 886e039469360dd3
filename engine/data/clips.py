"""In-memory clip sets: what the bundled generators produce."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class ClipSet:
    """Videos held as uint8 ``N x T x C x H x W`` with integer labels.

    Indexing returns ``(video_id, video, label)`` with the video as float32 in
    [0, 1], ``T x C x H x W`` -- the same contract as the file-backed datasets.
    """

    name: str
    split: str
    videos: torch.Tensor  # uint8, N x T x C x H x W
    labels: torch.Tensor  # int64, N
    classes: list[str]
    ids: list[str] | None = None  # the videos' own ids (files decoded into memory keep their paths)

    def __len__(self) -> int:
        return self.videos.shape[0]

    def __getitem__(self, index: int) -> tuple[str, torch.Tensor, int]:
        return self.video_id(index), self.videos[index].float() / 255.0, int(self.labels[index])

    def video_id(self, index: int) -> str:
        return self.ids[index] if self.ids is not None else f"{self.name}-{self.split}-{index:05d}"

    def float_videos(self, indices=None) -> torch.Tensor:
        chosen = self.videos if indices is None else self.videos[indices]
        return chosen.float() / 255.0

    @property
    def clip_shape(self) -> tuple[int, int, int, int]:
        return tuple(self.videos.shape[1:])


def to_uint8(videos: torch.Tensor) -> torch.Tensor:
    return (videos.clamp(0, 1) * 255).round().to(torch.uint8)
