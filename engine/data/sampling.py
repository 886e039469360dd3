"""How a clip is taken from a video file: which of its frames, and how a frame is fitted to the clip's size."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from ..errors import DataError

FITS = ("stretch", "crop")
NO_ZOOM = (1.0, 1.0)
# What a run folder that records no sampling was sampled with (sava's behaviour before Sampling).
NOT_RECORDED = {"fit": "stretch", "frame_stride": None, "zoom": list(NO_ZOOM), "frame_rate": None}
RECORDED_KEYS = ("fit", "frame_stride", "zoom", "frame_rate")  # Sampling's fields, in order, as records name them
MAX_FRAME_RATE = 1000.0  # frames per second; beyond it a --frame-rate is a typo (a 240 fps slow-motion file is real)


@dataclass(frozen=True)
class Sampling:
    """How a clip is taken from a video file, beside its frames and size.

    ``fit``: ``stretch`` scales the whole frame to the clip's size, whatever its aspect ratio; ``crop``
    scales it, keeping its aspect ratio, until it covers the clip's size and keeps the centre, as
    torchvision's and Hugging Face's video transforms feed their models. ``stride``: None spreads the
    clip's frames evenly over the whole file; N takes consecutive frames N apart from the middle of the
    file (a model trained on short windows of motion sees one). ``zoom`` (height, width): the frame is scaled
    to the clip's size times this (``stretch``: to exactly that; ``crop``: until it covers it) before the
    clip's size is kept from its centre, so that a model evaluated on the centre of a larger resize sees the
    same view: torchvision's R3D-18 resizes to 128 x 171 and keeps 112 x 112, zoom (128 / 112, 171 / 112).
    ``rate``: frames per second the clip is taken at, whatever each file's own rate: the file's frames are
    resampled to it as torchvision's ``frame_rate`` resamples them (frame ``floor(k * file_fps / rate)``) and
    the clip is the middle window of the resampled frames, as the zoo's weights were evaluated (R3D-18 on 16
    frames at 15 fps). A rate and a stride exclude each other."""

    fit: str = "stretch"
    stride: int | None = None
    zoom: tuple[float, float] = NO_ZOOM
    rate: float | None = None

    def __post_init__(self):
        if self.fit not in FITS:
            raise DataError(f"unknown frame fit {self.fit!r}; choose one of {', '.join(FITS)}")
        if self.stride is not None and (not isinstance(self.stride, int) or self.stride < 1):
            raise DataError(f"a frame stride is a whole number of frames, at least 1; got {self.stride!r}")
        try:
            zoom = tuple(float(value) for value in self.zoom)
        except (TypeError, ValueError):
            zoom = ()
        if len(zoom) != 2 or not all(value >= 1.0 for value in zoom):  # NaN fails the comparison too
            raise DataError(f"a frame zoom is a height and a width factor, each at least 1 (the frame is "
                            f"scaled to at least the clip's size before its centre is kept); got {self.zoom!r}")
        object.__setattr__(self, "zoom", zoom)  # frozen: set once, as given but as floats
        if self.rate is not None:
            if isinstance(self.rate, bool) or not isinstance(self.rate, numbers.Real) or not (
                    0 < self.rate <= MAX_FRAME_RATE):  # NaN fails the comparison too
                raise DataError(f"a frame rate is a number of frames per second above 0, at most "
                                f"{MAX_FRAME_RATE:g}; got {self.rate!r}")
            if self.stride is not None:
                raise DataError(f"a clip is taken either at a frame rate ({self.rate:g} fps) or with a frame "
                                f"stride ({self.stride}), not both")
            object.__setattr__(self, "rate", float(self.rate))

    def record(self) -> dict:
        """What a run folder records (``recorded`` reads it back); JSON's own types, so that a resume's
        settings compare equal to those read back from the file."""
        return {"fit": self.fit, "frame_stride": self.stride, "zoom": list(self.zoom), "frame_rate": self.rate}

    @classmethod
    def recorded(cls, meta: dict) -> Sampling:
        """The sampling a run folder's settings (or a ``sava train`` file) recorded; one begun before a setting
        existed was sampled with that setting's default."""
        return cls(*(meta.get(key, NOT_RECORDED[key]) for key in RECORDED_KEYS))

    def scaled_size(self, shown: tuple[int, int], size: tuple[int, int]) -> tuple[int, int]:
        """The (H, W) a frame shown at ``shown`` is scaled to before ``size`` is kept from its centre."""
        target = (size[0] * self.zoom[0], size[1] * self.zoom[1])
        if self.fit == "stretch":
            return max(size[0], round(target[0])), max(size[1], round(target[1]))
        # Keeping the aspect ratio, the side that binds gets its target; the other is truncated, as torchvision's
        # and transformers' shortest-edge resizes compute it (the epsilon keeps 255.99999 from becoming 255).
        scale = max(target[0] / shown[0], target[1] / shown[1])
        return max(size[0], int(shown[0] * scale + 1e-6)), max(size[1], int(shown[1] * scale + 1e-6))

    def describe(self, size: tuple[int, int]) -> str:
        """The fit as a results table's header names it: ``crop``, or ``stretch: 128 x 171, centre kept`` where
        the frame is scaled beyond the clip's ``size`` first."""
        if self.zoom == NO_ZOOM:
            return self.fit
        height, width = round(size[0] * self.zoom[0]), round(size[1] * self.zoom[1])
        scaled = f"{height} x {width}" if self.fit == "stretch" else f"cover {height} x {width}"
        return f"{self.fit}: {scaled}, centre kept"

    def spacing(self) -> str:
        """Which frames a clip takes, as a results table's header says it."""
        if self.rate is not None:
            return f"at {self.rate:g} fps, the middle of each file"
        return "spread over each file" if self.stride is None else f"{self.stride} apart"


def centre_offsets(scaled: tuple[int, int], size: tuple[int, int]) -> tuple[int, int]:
    """Top and left of the centred ``size`` in a ``scaled`` picture, rounded as torchvision's centre crop rounds
    them (half a pixel to even), which the video processors of both zoo families use."""
    return int(round((scaled[0] - size[0]) / 2.0)), int(round((scaled[1] - size[1]) / 2.0))


DEFAULT_SAMPLING = Sampling()  # spread over the file, the whole frame stretched


def zoom_for_resize(resize: list[int], size: tuple[int, int]) -> tuple[float, float]:
    """``--resize`` (H W, or one short side S) as the zoom it is of a clip of ``size``: a model evaluated on the
    centre ``size`` of frames resized to H x W (or to a short side of S) sees that view."""
    if len(resize) not in (1, 2) or min(resize) <= 0:
        raise DataError(f"--resize takes a height and width, or one short side, in pixels; got {resize}")
    if len(resize) == 1:  # a short side: the clip's short side scaled to it, both sides alike
        height, width = (resize[0] * side / min(size) for side in size)
    else:
        height, width = resize
    if height < size[0] or width < size[1]:
        raise DataError(f"--resize {' x '.join(map(str, resize))} is smaller than the clip's {size[0]} x {size[1]}, "
                        f"which is kept from the resized frame's centre")
    return height / size[0], width / size[1]


def uniform_indices(available: int, wanted: int) -> list[int]:
    """``wanted`` frame numbers spread evenly over ``available`` frames."""
    if available < wanted:
        raise DataError(f"video has {available} frames, fewer than the {wanted} a clip needs")
    return np.linspace(0, available - 1, wanted).round().astype(int).tolist()


def frames_needed(wanted: int, stride: int | None) -> int:
    """Frames a file must have for a clip of ``wanted`` frames taken ``stride`` apart (None: spread out)."""
    return wanted if stride is None else (wanted - 1) * stride + 1


def rate_step(file_rate, rate: float) -> Fraction:
    """The file's frames per frame of a clip taken at ``rate`` (2: every other frame of 30 fps for 15), exactly:
    file rates are fractions (NTSC's 30000/1001), and in floating point frame 1250 of 23.976 fps taken at 10 fps
    would floor to 2996 where the exact product is 2997. ``rate`` is read as the decimal it prints as."""
    return Fraction(file_rate) / Fraction(repr(float(rate)))


def frames_at_rate(wanted: int, step: Fraction) -> int:
    """Frames a file must have for ``wanted`` frames ``step`` file frames apart (``rate_step``)."""
    return max(wanted, math.ceil(wanted * step))


def rate_indices(available: int, wanted: int, step: Fraction) -> list[int]:
    """The frame numbers of a clip taken ``step`` file frames apart: the file's ``available`` frames resampled
    as torchvision's ``frame_rate`` resamples them (``floor(available / step)`` frames, the k-th being file frame
    ``floor(k * step)``; a step below 1 repeats frames), then the middle ``wanted`` of those."""
    resampled = math.floor(available / step)
    if resampled < wanted:
        raise DataError(f"video has {available} frames, fewer than the {frames_at_rate(wanted, step)} a clip of "
                        f"{wanted} frames needs, one every {float(step):.4g} of its frames")
    first = (resampled - wanted) // 2
    return [math.floor((first + k) * step) for k in range(wanted)]


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
