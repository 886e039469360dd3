"""The clips a training run learns from and is scored on, labelled as the model numbers its outputs: a bundled
set's two splits, or video files (a folder of class sub-folders, or a CSV of ``path,label``) decoded once as
uint8, into memory or the run folder (:mod:`.clip_cache`). Without a test set of their own, video files give
a seeded share of the files to one."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from ..classes import ClassNames, label_map
from ..data import BUNDLED, Sampling, load_dataset
from ..data.clips import ClipSet
from ..data.files import VideoFileDataset, passed_over_note
from ..errors import ConfigError, DataError
from ..models.adapter import check_output_count, clip_for_files, outputs_on_clip, sampling_for_files
from .clip_cache import decode_clips

HOLDOUT = 0.2  # share of a file dataset held out for clean test accuracy when no test set is given


@dataclass
class TrainingData:
    train: ClipSet
    test: ClipSet
    classes: list[str]  # the model's outputs, in order
    class_order: str  # where those names came from
    notes: list[str] = field(default_factory=list)  # said once, before training
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (video id, why) of files that could not be used


def check_data_settings(model_is_bundled: bool, data: str | None, test_data: str | None,
                        holdout: float | None) -> None:
    """What can be refused before any model or file is read."""
    if data is None and not model_is_bundled:
        raise ConfigError("--data is needed to train a model that is not bundled (a folder of class "
                          "sub-folders, a CSV of path,label, or a bundled set)")
    if holdout is None:
        return
    if not 0 < holdout < 1:
        raise ConfigError(f"--holdout is a share of the clips, between 0 and 1; got {holdout}")
    if test_data is not None:
        raise ConfigError("--holdout splits --data when no --test-data is given; with --test-data, drop it")
    if data is None or data in BUNDLED:
        raise ConfigError("--holdout splits video files; a bundled set has its own test split (drop --holdout)")


def training_data(model, config, workers: int = 2, progress: bool = True, cache: Path | None = None) -> TrainingData:
    """The training and test clips of ``config`` (a ``TrainConfig``) for ``model``, labelled with its outputs.
    Video files are decoded into memory or, given ``cache`` (a folder), into files there that a later call
    reuses while the video files are unchanged (:mod:`.clip_cache`)."""
    spec = config.data or model.info.extra.get("dataset")
    check_data_settings(spec is not None, spec, config.test_data, config.holdout)
    clip, sampling = _clip(model, config), sampling_of(model, config)
    test_spec = config.test_data or spec
    train_files = _dataset(spec, "train", clip, sampling)
    test_files = _dataset(test_spec, "test", clip, sampling) \
        if config.test_data is not None or spec in BUNDLED else None

    # Class names and label maps need only the file lists: a mismatch stops before any file is decoded.
    names = ClassNames(model.classes, model.info.extra.get("class_order", "the model's metadata"))
    outputs = outputs_on_clip(model, train_files.clip_shape, batch=1 if config.batch_size == 1 else 2)
    notes = [note for note in map(passed_over_note, (train_files, test_files)) if note]
    if names.names is None:  # the data names the outputs: its sorted class names, or its class indices
        from_indices = getattr(train_files, "labels_are_indices", False)
        names = ClassNames([str(i) for i in range(outputs)] if from_indices else list(train_files.classes),
                           f"the class numbers of {spec}" if from_indices else f"the class names of {spec}")
        notes.append(f"note: no class names for model {model.name!r}: its outputs are taken to be {names.source} "
                     f"in sorted order ({', '.join(names.names[:6])}{', ...' if len(names.names) > 6 else ''}); "
                     "the trained model keeps them (classes.txt)")
    check_output_count(model, outputs, names.names, names.source)
    maps = []
    for files, where in ((train_files, spec), (test_files or train_files, test_spec)):
        mapping, notice = label_map(files, names, model.name, where)
        notes += [notice] if notice else []
        maps.append(torch.tensor(mapping, dtype=torch.long))

    if test_files is None:  # a seeded share of the files, chosen before decoding: no copy of the decoded set
        train_files, test_files = _held_out(train_files, config.holdout or HOLDOUT, config.seed, spec)
    skipped: list[tuple[str, str]] = []
    train, test = (_decoded(files, where, workers, progress, skipped,
                              None if cache is None else cache / role)
                   for files, where, role in ((train_files, spec, "train"), (test_files, test_spec, "test")))
    # New sets: a bundled one is cached and shared, and keeps its own labels.
    labelled = [replace(clips, labels=mapping[clips.labels]) for clips, mapping in zip((train, test), maps)]
    return TrainingData(*labelled, names.names, names.source, list(dict.fromkeys(notes)), skipped)


def describe(data: TrainingData, limit: int | None = None) -> dict:
    """What a resumed run must find again: how many clips it trains and tests on, their shape, and one digest
    of every clip's id, label and pixels (a file added, removed, relabelled or re-encoded changes it)."""
    digest = hashlib.sha256()
    for clips, count in ((data.train, limit), (data.test, None)):
        for index in range(len(clips))[:count]:
            digest.update(f"{clips.video_id(index)}\t{int(clips.labels[index])}\n".encode())
            digest.update(clips.videos[index].contiguous().numpy())  # one clip at a time: no copy of the set
    return {"train_clips": len(range(len(data.train))[:limit]), "test_clips": len(data.test),
            "clip_shape": list(data.train.clip_shape), "classes": data.classes, "digest": digest.hexdigest()}


def _clip(model, config) -> tuple[int, int, int]:
    """Frames and frame size video files are decoded to (``clip_for_files``)."""
    frames, (height, width) = clip_for_files(model.info, config.clip_frames, config.size)
    return frames, int(height), int(width)


def sampling_of(model, config) -> Sampling:
    """How video files are sampled for the run (``sampling_for_files``): the trained file records it."""
    return sampling_for_files(model.info, config.fit, config.frame_stride, resize=config.resize,
                              size=_clip(model, config)[1:], rate=config.frame_rate)


def _dataset(spec: str, split: str, clip: tuple[int, int, int], sampling: Sampling):
    return load_dataset(spec, split, clip[0], tuple(clip[1:]), sampling)


def _decoded(dataset, spec: str, workers: int, progress: bool, skipped: list, cache: Path | None) -> ClipSet:
    """``dataset`` as a ``ClipSet``: a bundled set already is one; video files are decoded."""
    if isinstance(dataset, ClipSet):
        return dataset
    return decode_clips(dataset, spec, workers, progress, skipped, cache)


def _held_out(files: VideoFileDataset, share: float, seed: int, spec: str):
    """A seeded ``share`` of ``files`` (at least one) as the test set, the rest to train on, both in file
    order. Files that then fail to decode drop out of their side."""
    count = len(files)
    tested = max(1, round(share * count))
    if count - tested < 1:
        raise DataError(f"{spec}: {count} video file(s) cannot be split into training and test clips; "
                        "add files or give --test-data")
    order = torch.randperm(count, generator=torch.Generator().manual_seed(seed))
    test_index, train_index = order[:tested].sort().values.tolist(), order[tested:].sort().values.tolist()
    return files.subset(train_index), files.subset(test_index)
