"""The clips a training run learns from and is scored on, labelled as the model numbers its outputs: a bundled
set's two splits, or video files (a folder of class sub-folders, or a CSV of ``path,label``) decoded once into
memory as uint8. Without a test set of their own, video files give a seeded share of their clips to one."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace

import torch

from ..classes import ClassNames, label_map
from ..data import BUNDLED, load_dataset
from ..data.clips import ClipSet, to_uint8
from ..errors import ConfigError, DataError
from ..models.adapter import clip_for_files, outputs_on_clip
from ..runner.decode import decoded

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


def training_data(model, config, workers: int = 2, progress: bool = True) -> TrainingData:
    """The training and test clips of ``config`` (a ``TrainConfig``) for ``model``, labelled with its outputs."""
    spec = config.data or model.info.extra.get("dataset")
    check_data_settings(spec is not None, spec, config.test_data, config.holdout)
    clip = _clip(model, config)
    test_spec = config.test_data or spec
    train_files = _dataset(spec, "train", clip)
    test_files = _dataset(test_spec, "test", clip) if config.test_data is not None or spec in BUNDLED else None

    # Class names and label maps need only the file lists: a mismatch stops before any file is decoded.
    names = ClassNames(model.classes, model.info.extra.get("class_order", "the model's metadata"))
    outputs = outputs_on_clip(model, train_files.clip_shape)
    notes = []
    if names.names is None:  # the data names the outputs: its sorted class names, or its class indices
        from_indices = getattr(train_files, "labels_are_indices", False)
        names = ClassNames([str(i) for i in range(outputs)] if from_indices else list(train_files.classes),
                           f"the class numbers of {spec}" if from_indices else f"the class names of {spec}")
        notes.append(f"note: no class names for model {model.name!r}: its outputs are taken to be {names.source} "
                     f"in sorted order ({', '.join(names.names[:6])}{', ...' if len(names.names) > 6 else ''}); "
                     "the trained model keeps them (classes.txt)")
    if outputs != len(names.names):
        raise ConfigError(f"model {model.name!r} has {outputs} outputs, but {names.source} names {len(names.names)} "
                          "classes; give --classes in the order of the model's outputs, one name per output")
    maps = []
    for files, where in ((train_files, spec), (test_files or train_files, test_spec)):
        mapping, notice = label_map(files, names, model.name, where)
        notes += [notice] if notice else []
        maps.append(torch.tensor(mapping, dtype=torch.long))

    skipped: list[tuple[str, str]] = []
    train = _in_memory(train_files, spec, workers, progress, skipped)
    if test_files is not None:
        test = _in_memory(test_files, test_spec, workers, progress, skipped)
    else:
        train, test = _held_out(train, config.holdout or HOLDOUT, config.seed, spec)
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


def _dataset(spec: str, split: str, clip: tuple[int, int, int]):
    return load_dataset(spec, split, clip[0], tuple(clip[1:]))


def _in_memory(dataset, spec: str, workers: int, progress: bool, skipped: list) -> ClipSet:
    """``dataset`` as a ``ClipSet`` (a bundled set already is one); files that cannot be used are left out and
    listed in ``skipped``."""
    if isinstance(dataset, ClipSet):
        return dataset
    from tqdm import tqdm

    videos = torch.empty((len(dataset), *dataset.clip_shape), dtype=torch.uint8)  # no second copy while stacking
    kept, labels = [], []
    for item in tqdm(decoded(dataset, range(len(dataset)), workers), total=len(dataset), unit="video",
                     desc=f"decoding {spec}", disable=not progress):
        if item.clip is None:
            skipped.append((item.video_id, item.error))
            continue
        videos[len(kept)] = to_uint8(item.clip)
        kept.append(item.index)
        labels.append(item.label)
    if not kept:
        raise DataError(f"{spec}: none of its {len(dataset)} video files could be used "
                        f"(first: {skipped[0][0]}: {skipped[0][1]})")
    return ClipSet(dataset.name, "files", videos[: len(kept)], torch.tensor(labels, dtype=torch.long),
                   list(dataset.classes), [dataset.video_id(index) for index in kept])


def _held_out(clips: ClipSet, share: float, seed: int, spec: str) -> tuple[ClipSet, ClipSet]:
    """A seeded ``share`` of ``clips`` (at least one) as the test set, the rest to train on, both in file order."""
    count = len(clips)
    tested = max(1, round(share * count))
    if count - tested < 1:
        raise DataError(f"{spec}: {count} usable video file(s) cannot be split into training and test clips; "
                        "add files or give --test-data")
    order = torch.randperm(count, generator=torch.Generator().manual_seed(seed))
    test_index, train_index = order[:tested].sort().values, order[tested:].sort().values
    part = lambda index, split: ClipSet(clips.name, split, clips.videos[index], clips.labels[index],  # noqa: E731
                                        clips.classes, [clips.video_id(i) for i in index.tolist()])
    return part(train_index, "train"), part(test_index, "test")
