"""Decoding video files with PyAV (FFmpeg): whole files, or clips of T frames."""

from __future__ import annotations

import bisect
import math
import os
import stat
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from .orientation import apply_steps, display_steps, turns_sideways
from .sampling import (
    DEFAULT_SAMPLING,
    Sampling,
    centre_offsets,
    clip_indices,
    frames_at_rate,
    frames_needed,
    rate_indices,
    rate_step,
)


@contextmanager
def _open_video(path: str | Path):
    """The file's container and its main video stream; any failure to open or
    decode becomes a ``DataError`` that names the file."""
    import av

    try:
        if not os.path.exists(path):
            if os.path.islink(path):
                raise DataError(f"{path}: a symbolic link to {os.readlink(path)}, which does not exist")
            raise DataError(f"{path}: no such file")
        status = os.stat(path)
        if not stat.S_ISREG(status.st_mode):  # a pipe or device would block the decoder
            raise DataError(f"{path}: not a regular file")
        if status.st_size == 0:  # FFmpeg's word for it is "Invalid data found when processing input"
            raise DataError(f"{path}: empty file (0 bytes)")
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise DataError(f"{path}: no video stream")
            # FFmpeg's choice among several (a cover picture or a thumbnail track can come first)
            yield container, container.streams.best("video")
    except DataError:
        raise
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot decode video ({exc})") from exc


def upright_rgb(frame, size: tuple[int, int] | None = None, sampling: Sampling = DEFAULT_SAMPLING) -> np.ndarray:
    """The frame as it is shown (turned and mirrored by its display matrix), RGB ``H x W x 3`` uint8, scaled by
    FFmpeg as ``sampling`` fits it to ``size = (H, W)`` of the upright picture (``Sampling.scaled_size``), then
    the centre ``size`` kept."""
    steps = display_steps(frame)
    sideways = turns_sideways(steps)
    shown = (frame.width, frame.height) if sideways else (frame.height, frame.width)
    scaled = None if size is None else sampling.scaled_size(shown, size)
    height, width = scaled if scaled is not None else (None, None)
    if sideways:  # the stored frame lies on its side: scale it to the turned size, then turn it
        height, width = width, height
    # One scaling thread: PyAV 18.1.1's default pool, once started in a process, deadlocks in the decode workers
    # forked from it; the workers are the parallelism.
    image = apply_steps(frame.to_ndarray(format="rgb24", width=width, height=height, threads=1), steps)
    if scaled is not None and tuple(scaled) != tuple(size):
        top, left = centre_offsets(scaled, size)
        image = image[top:top + size[0], left:left + size[1]]
    return np.ascontiguousarray(image)


UNREAD = object()  # ``decode_frames``' packet index when its caller has not read it


def decode_frames(path: str | Path, size: tuple[int, int] | None = None, keep=None,
                  sampling: Sampling = DEFAULT_SAMPLING, index=UNREAD) -> list[np.ndarray]:
    """RGB frames (``H x W x 3`` uint8) of a file, upright, fitted by FFmpeg to ``size = (H, W)`` as
    ``sampling`` says (``upright_rgb``).

    ``keep``, when given, is a set of frame numbers: other frames are decoded
    (the codec needs them) but not converted or kept. ``index``: the file's ``packet_index``, where the caller
    has read it already (one demux of a long file, not one per use).
    """
    if keep:
        index = packet_index(path) if index is UNREAD else index
        sought = _decode_by_seeking(path, sorted(keep), size, sampling, index)
        if sought is not None:
            return sought
    return decode_from_start(path, size, keep, sampling)


def decode_from_start(path: str | Path, size: tuple[int, int] | None = None, keep=None,
                      sampling: Sampling = DEFAULT_SAMPLING) -> list[np.ndarray]:
    """``decode_frames`` without seeking: every frame decoded from the file's start up to the last one kept."""
    frames = []
    with _open_video(path) as (container, stream):
        for number, frame in enumerate(container.decode(stream)):
            if keep is None or number in keep:
                frames.append(upright_rgb(frame, size, sampling))
            if keep is not None and number >= max(keep):
                break
    return frames


def packet_index(path: str | Path) -> tuple[list[int], list[int]] | None:
    """The presentation times of the stream's frames in order, and those of its keyframes, read by demuxing
    (no decoding); None where times are missing or repeat (nothing to seek by)."""
    with _open_video(path) as (container, stream):
        times, keys = [], []
        for packet in container.demux(stream):
            if not packet.size:
                continue
            if packet.pts is None:
                return None
            times.append(packet.pts)
            if packet.is_keyframe:
                keys.append(packet.pts)
    times.sort()
    keys.sort()
    if not keys or len(set(times)) != len(times):
        return None
    return times, keys


def _decode_by_seeking(path: str | Path, wanted: list[int], size, sampling: Sampling, index) -> list[np.ndarray] | None:
    """Frames ``wanted`` (sorted frame numbers), decoded from the keyframe before each instead of from the
    start of the file: a long file's clip then decodes a few groups of pictures, not the whole file. None
    (decode from the start instead) where the file gives nothing to seek by, where its first decoded frame is
    not its first packet (a decoder that drops leading frames numbers them otherwise), where every wanted
    frame lies in the first group of pictures anyway, or where a wanted frame does not come out. ``index``:
    the file's ``packet_index``."""
    if index is None or wanted[-1] >= len(index[0]):
        return None
    times, keys = index
    targets = [times[number] for number in wanted]
    if bisect.bisect_right(keys, targets[-1]) <= 1:  # no keyframe past the first before the last frame wanted
        return None
    found: dict[int, np.ndarray] = {}
    with _open_video(path) as (container, stream):
        frames = container.decode(stream)
        first = next(frames, None)
        if first is None or first.pts != times[0]:
            return None
        position = first.pts
        if position in targets:
            found[position] = upright_rgb(first, size, sampling)
        for target in targets:
            if target in found:
                continue
            key = keys[bisect.bisect_right(keys, target) - 1]
            if key > position:  # a keyframe lies between: jump to it, skipping what is before it
                container.seek(key, stream=stream, backward=True, any_frame=False)
                frames = container.decode(stream)
            for frame in frames:
                if frame.pts is None:
                    return None
                position = frame.pts
                if position in targets and position not in found:
                    found[position] = upright_rgb(frame, size, sampling)
                if position >= target:
                    break
            if target not in found:
                return None
    return [found[target] for target in targets]


def frame_count(path: str | Path, index=None) -> int:
    """Frames in the file's main video stream: the container's count when it states one, otherwise the
    packets of ``index`` (its ``packet_index``, where read) or of a demux (no decoding)."""
    with _open_video(path) as (container, stream):
        if stream.frames:
            return int(stream.frames)
        if index is not None:
            return len(index[0])
        return sum(1 for packet in container.demux(stream) if packet.size)


def frame_rate(path: str | Path):
    """Frames per second of the file's main video stream, as a fraction (NTSC's 30000/1001): its average over the
    stream where the container knows it, else FFmpeg's guess from its timing; None where neither is known."""
    with _open_video(path) as (_, stream):
        rate = stream.average_rate or stream.guessed_rate
        return rate if rate and rate > 0 else None


def frame_size(path: str | Path) -> tuple[int, int]:
    """``(height, width)`` of the file's main video stream as it is shown (its first frame's display
    matrix applied; the stream's coded size when no frame decodes)."""
    with _open_video(path) as (container, stream):
        first = next(container.decode(stream), None)
        if first is None:
            return int(stream.codec_context.height), int(stream.codec_context.width)
        sideways = turns_sideways(display_steps(first))
        return (first.width, first.height) if sideways else (first.height, first.width)


def decodable_frames(path: str | Path) -> int:
    """Frames that really decode (each decoded, none converted): the count when a header cannot be trusted."""
    with _open_video(path) as (container, stream):
        return sum(1 for _ in container.decode(stream))


def load_clip(path: str | Path, num_frames: int, size: tuple[int, int],
              sampling: Sampling = DEFAULT_SAMPLING) -> torch.Tensor:
    """A clip of ``num_frames`` frames of the file, resized to ``size``, as float32 ``T x 3 x H x W`` in
    [0, 1]; which frames and how they are fitted to ``size``, ``sampling`` says (default: spread evenly over
    the file, the whole frame stretched).

    The container's frame count is a header field: when fewer frames decode than it announces (a truncated
    or mis-written file), the clip is sampled again over the frames that are really there."""
    plan = _ClipPlan(path, num_frames, sampling)
    index = packet_index(path)  # one demux: the seek's times, and the count where the header states none
    announced = frame_count(path, index)
    indices = plan.indices(announced) if announced >= plan.needed else None
    frames = decode_frames(path, size, set(indices), sampling, index) if indices is not None else []
    if indices is None or len(frames) < len(set(indices)):
        present = decodable_frames(path)
        if present < plan.needed:
            raise DataError(f"{path}: {present} frames decode (the container announces {announced}), fewer than "
                            f"the {plan.needed} a clip{plan.spacing()} needs{plan.hint(present)}")
        indices = plan.indices(present)
        frames = decode_frames(path, size, set(indices), sampling, index)
    by_number = dict(zip(sorted(set(indices)), frames))
    clip = np.stack([by_number[i] for i in indices])
    return torch.from_numpy(clip).permute(0, 3, 1, 2).float() / 255.0


class _ClipPlan:
    """Which frames of a file of some length a clip takes: a stride, a spread, or (``sampling.rate``) the
    file's own frame rate resampled to the clip's."""

    def __init__(self, path, num_frames: int, sampling: Sampling):
        self.num_frames, self.sampling, self.step = num_frames, sampling, None
        if sampling.rate is not None:
            file_rate = frame_rate(path)
            if file_rate is None:
                raise DataError(f"{path}: the file states no frame rate, so it cannot be resampled to "
                                f"{sampling.rate:g} fps; --frame-stride N takes every N-th frame instead")
            self.file_rate, self.step = file_rate, rate_step(file_rate, sampling.rate)
            self.needed = frames_at_rate(num_frames, self.step)
        else:
            self.needed = frames_needed(num_frames, sampling.stride)

    def indices(self, available: int) -> list[int]:
        if self.step is not None:
            return rate_indices(available, self.num_frames, self.step)
        return clip_indices(available, self.num_frames, self.sampling.stride)

    def spacing(self) -> str:
        frames = f" of {self.num_frames} frames"
        if self.step is not None:
            return f"{frames} at {self.sampling.rate:g} fps (the file's {float(self.file_rate):.4g})"
        return "" if self.sampling.stride is None else f"{frames} {self.sampling.stride} apart"

    def hint(self, present: int) -> str:
        """An option under which the file's ``present`` frames make a clip, where a narrower spacing would."""
        if self.num_frames <= 1 or present < self.num_frames:
            return ""
        if self.step is not None:  # the lowest rate that fits, rounded up to a tenth of a frame per second
            fits = math.ceil(float(self.file_rate) * self.num_frames / present * 10) / 10
            return f" (--frame-rate {fits:g} fits it)"
        fits = (present - 1) // (self.num_frames - 1)  # the widest stride that fits
        return f" (--frame-stride {fits} fits it)" if self.sampling.stride is not None and fits >= 1 else ""


def write_video(path: str | Path, video: torch.Tensor, fps: int = 25, codec: str = "libx264", crf: int = 18,
                lossless: bool = False) -> None:
    """Encode a ``T x 3 x H x W`` [0, 1] clip to a file. ``lossless`` keeps every
    8-bit RGB value (H.264 RGB at CRF 0; use a ``.mkv`` name): the adversarial
    clips sava writes, where chroma subsampling would blur the perturbation."""
    import av

    frames = (video.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()
    height, width = frames.shape[1:3]
    if lossless:
        codec, crf = "libx264rgb", 0
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = width, height
        stream.pix_fmt = {"libx264": "yuv420p", "libx264rgb": "rgb24"}.get(codec, "yuv444p")
        if codec in ("libx264", "libx264rgb"):
            stream.options = {"crf": str(crf)}
        for image in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
