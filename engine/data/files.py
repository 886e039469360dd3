"""Datasets of video files: a folder with one sub-folder per class (UCF101 and
HMDB51 layout), or a CSV of ``path,label`` rows. Clips are decoded lazily."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import torch

from ..errors import DataError
from .sampling import DEFAULT_SAMPLING, Sampling
from .video_io import load_clip

# What datasets and cameras write: Kinetics and EPIC .mp4, UCF101 and HMDB51 .avi, Something-Something .webm,
# TGIF's animated .gif, camcorders' AVCHD .mts/.m2ts, phones' .3gp, older web video .flv/.wmv/.ogv, broadcast .ts.
VIDEO_SUFFIXES = {".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".mts", ".m2ts", ".ts", ".3gp",
                  ".flv", ".wmv", ".ogv", ".gif"}


class VideoFileDataset:
    """Indexing returns ``(video_id, clip, label)``, the clip float32 ``T x 3 x H x W``.

    A file that cannot be decoded or is too short raises ``DataError`` naming
    the file; callers skip it and report it.
    """

    def __init__(self, items: list[tuple[Path, int]], classes: list[str], num_frames: int, size: tuple[int, int],
                 name: str, root: Path | None = None, labels_are_indices: bool = False,
                 sampling: Sampling = DEFAULT_SAMPLING):
        if not items:
            raise DataError(f"{name}: no video files found (looked for {', '.join(sorted(VIDEO_SUFFIXES))})")
        self.items, self.classes, self.num_frames, self.size, self.name = items, classes, num_frames, size, name
        self.root, self.sampling = root, sampling
        self.passed_over: dict[str, int] = {}  # files of a class folder not read as video, by suffix
        # A CSV of class indices names no class: its labels are the model's own numbers.
        self.labels_are_indices = labels_are_indices
        self.split = "files"
        # Ids are paths relative to the dataset's root, extension included: two files never share one.
        self._ids = [_relative_id(path, root) for path, _ in items]
        seen: dict[str, int] = {}
        for index, video_id in enumerate(self._ids):
            if video_id in seen:
                raise DataError(f"{name}: {video_id} is listed twice (entries {seen[video_id] + 1} and {index + 1}); "
                                "each video may appear once")
            seen[video_id] = index

    def __len__(self) -> int:
        return len(self.items)

    def video_id(self, index: int) -> str:
        return self._ids[index]

    def __getitem__(self, index: int) -> tuple[str, torch.Tensor, int]:
        path, label = self.items[index]
        return self.video_id(index), load_clip(path, self.num_frames, self.size, self.sampling), label

    def subset(self, indices: list[int]) -> VideoFileDataset:
        """The files at ``indices``, in that order, decoded as these are."""
        return VideoFileDataset([self.items[i] for i in indices], self.classes, self.num_frames, self.size,
                                self.name, self.root, self.labels_are_indices, self.sampling)

    @property
    def clip_shape(self) -> tuple[int, int, int, int]:
        return (self.num_frames, 3, *self.size)


def passed_over_note(dataset) -> str | None:
    """A line saying which files of a dataset's class folders were not read as video, or None (none were, or
    the dataset is not one of files)."""
    passed_over = getattr(dataset, "passed_over", None)
    if not passed_over:
        return None
    counts = ", ".join(f"{count} {suffix}" for suffix, count in sorted(passed_over.items()))
    return (f"note: {sum(passed_over.values())} file(s) in {dataset.name}'s class folders are not read as "
            f"video ({counts}); sava reads {', '.join(sorted(VIDEO_SUFFIXES))}")


def _relative_id(path: Path, root: Path | None) -> str:
    if root is not None:
        try:
            return printable(path.relative_to(root).as_posix())
        except ValueError:
            pass
    return printable(path.as_posix())


def printable(name: str) -> str:
    """A file name as text that any file, JSON line or safetensors header can hold: Linux names may be any
    bytes, and Python keeps the bytes that are not UTF-8 as surrogates, which no UTF-8 writer takes; they
    become ``\\xNN`` (the dataset's listed-twice check would catch the one name this could collide with)."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def from_folder(root: str | Path, num_frames: int, size: tuple[int, int],
                sampling: Sampling = DEFAULT_SAMPLING) -> VideoFileDataset:
    root = Path(root)
    folders = sorted((p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")),
                     key=lambda p: printable(p.name))
    if not folders:
        raise DataError(f"{root}: expected one sub-folder per class (UCF101 layout), found none")
    classes = [printable(folder.name) for folder in folders]  # a class name is written to JSON and text files
    # Hidden files and folders are left out: a set copied from a Mac carries a "._NAME.avi" beside every video.
    # Anything else named like a video is listed, even a pipe, a device or a link to nowhere: the decoder
    # refuses those before opening them (a pipe would block it forever), so each becomes a skipped video
    # with its reason instead of vanishing from the count.
    items, passed_over = [], Counter()
    for label, folder in enumerate(folders):
        for path in sorted(folder.rglob("*")):
            if any(part.startswith(".") for part in path.relative_to(folder).parts) or path.is_dir():
                continue
            if path.suffix.lower() in VIDEO_SUFFIXES:
                items.append((path, label))
            else:  # said, not silently dropped: a set of .png frames or .y4m clips would otherwise just shrink
                passed_over[path.suffix.lower() or "(none)"] += 1
    dataset = VideoFileDataset(items, classes, num_frames, size, name=root.name, root=root, sampling=sampling)
    dataset.passed_over = dict(passed_over)
    return dataset


def from_csv(csv_path: str | Path, num_frames: int, size: tuple[int, int],
             sampling: Sampling = DEFAULT_SAMPLING) -> VideoFileDataset:
    """Rows of ``path,label``; paths relative to the CSV's folder; labels are class
    indices or class names (names are numbered in sorted order). A header row
    ``path,label`` is allowed."""
    csv_path = Path(csv_path)
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as handle:  # as spreadsheets save it, BOM or not
            rows = [row for row in csv.reader(handle) if row and not row[0].startswith("#")]
    except UnicodeDecodeError as exc:
        raise DataError(f"{csv_path} is not UTF-8 text ({exc}); save it as UTF-8") from exc
    if rows and [c.strip().lower() for c in rows[0][:2]] == ["path", "label"]:
        rows = rows[1:]
    for number, row in enumerate(rows, 1):
        if len(row) < 2:
            raise DataError(f"{csv_path}: row {number} needs two columns, path and label; got {row}")
    labels = [row[1].strip() for row in rows]
    if all(label.lstrip("-").isdigit() for label in labels):
        ids = [int(label) for label in labels]
        for number, label in enumerate(ids, 1):
            if label < 0:
                raise DataError(f"{csv_path}: row {number} has label {label}; class indices start at 0")
        classes = [str(i) for i in range(max(ids, default=-1) + 1)]
        indices = True
    else:
        indices = False
        classes = sorted(set(labels))
        ids = [classes.index(label) for label in labels]
    items = [((csv_path.parent / row[0].strip()), label) for row, label in zip(rows, ids)]
    return VideoFileDataset(items, classes, num_frames, size, name=csv_path.stem, root=csv_path.parent,
                            labels_are_indices=indices, sampling=sampling)
