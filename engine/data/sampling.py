"""How a clip is taken from a video file: which of its frames, and how a frame is fitted to the clip's size."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import DataError

FITS = ("stretch", "crop")
# What a run folder that records no sampling was sampled with (sava's behaviour before Sampling).
NOT_RECORDED = {"fit": "stretch", "frame_stride": None}


@dataclass(frozen=True)
class Sampling:
    """How a clip is taken from a video file, beside its frames and size.

    ``fit``: ``stretch`` scales the whole frame to the clip's size, whatever its aspect ratio; ``crop``
    scales it, keeping its aspect ratio, until it covers the clip's size and keeps the centre, as
    torchvision's and Hugging Face's video transforms feed their models. ``stride``: None spreads the
    clip's frames evenly over the whole file; N takes consecutive frames N apart from the middle of the
    file (a model trained on short windows of motion sees one)."""

    fit: str = "stretch"
    stride: int | None = None

    def __post_init__(self):
        if self.fit not in FITS:
            raise DataError(f"unknown frame fit {self.fit!r}; choose one of {', '.join(FITS)}")
        if self.stride is not None and (not isinstance(self.stride, int) or self.stride < 1):
            raise DataError(f"a frame stride is a whole number of frames, at least 1; got {self.stride!r}")

    def record(self) -> dict:
        """What a run folder records (``recorded`` reads it back)."""
        return {"fit": self.fit, "frame_stride": self.stride}

    @classmethod
    def recorded(cls, meta: dict) -> Sampling:
        """The sampling a run folder's settings recorded; one begun before these settings existed records
        neither and was sampled as the default."""
        return cls(meta.get("fit", NOT_RECORDED["fit"]), meta.get("frame_stride", NOT_RECORDED["frame_stride"]))


DEFAULT_SAMPLING = Sampling()  # spread over the file, the whole frame stretched


def uniform_indices(available: int, wanted: int) -> list[int]:
    """``wanted`` frame numbers spread evenly over ``available`` frames."""
    if available < wanted:
        raise DataError(f"video has {available} frames, fewer than the {wanted} a clip needs")
    return np.linspace(0, available - 1, wanted).round().astype(int).tolist()


def frames_needed(wanted: int, stride: int | None) -> int:
    """Frames a file must have for a clip of ``wanted`` frames taken ``stride`` apart (None: spread out)."""
    return wanted if stride is None else (wanted - 1) * stride + 1


def clip_indices(available: int, wanted: int, stride: int | None = None) -> list[int]:
    """The frame numbers of a clip: spread evenly over the file (``stride`` None), or ``stride`` apart in a
    window centred in the file."""
    if stride is None:
        return uniform_indices(available, wanted)
    span = frames_needed(wanted, stride)
    if available < span:
        raise DataError(f"video has {available} frames, fewer than the {span} a clip of {wanted} frames "
                        f"{stride} apart needs")
    start = (available - span) // 2
    return list(range(start, start + span, stride))
