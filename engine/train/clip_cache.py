"""Video files decoded once into a uint8 file of the run folder and read back through a memory map: a training
set larger than memory stays on disk (the page cache holds what fits), and a resumed run decodes nothing
while its files are unchanged (the same ids, labels, sizes and modification times, at the same clip)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch

from ..data.clips import ClipSet, to_uint8
from ..errors import DataError
from ..files import readable_size, write_atomic
from ..runner.decode import decoded


def _listing_key(dataset) -> str:
    """What the cache must match: every file's id, label, size and modification time, and the clip."""
    digest = hashlib.sha256(json.dumps(list(dataset.clip_shape)).encode())
    for index, (path, label) in enumerate(dataset.items):
        try:
            stat = os.stat(path)
            seen = f"{stat.st_size}:{stat.st_mtime_ns}"
        except OSError:
            seen = "missing"
        digest.update(f"{dataset.video_id(index)}\t{label}\t{seen}\n".encode())
    return digest.hexdigest()


def decode_clips(dataset, spec: str, workers: int, progress: bool, skipped: list,
                     cache: Path | None = None) -> ClipSet:
    """``dataset``'s clips as a ``ClipSet`` whose videos live in memory or, with ``cache`` (a path without
    suffix), in ``cache.u8`` beside ``cache.json``; files that cannot be used are left out and added to
    ``skipped`` as ``(video id, why)``."""
    key = _listing_key(dataset)
    if cache is not None and (found := _cached(dataset, cache, key, skipped)) is not None:
        return found
    from tqdm import tqdm

    shape = (len(dataset), *dataset.clip_shape)
    try:
        if cache is None:
            videos = torch.empty(shape, dtype=torch.uint8)
        else:
            cache.parent.mkdir(parents=True, exist_ok=True)
            pixels = cache.with_name(cache.name + ".u8.tmp")
            mapped = np.lib.format.open_memmap(pixels, mode="w+", dtype=np.uint8, shape=shape)
            videos = torch.from_numpy(mapped)
    except (OSError, RuntimeError, MemoryError, ValueError) as exc:  # no room in memory or on disk
        where = "memory" if cache is None else str(cache.parent)
        amount = readable_size(float(np.prod(shape)))
        raise DataError(f"{spec}: {shape[0]} clips of {' x '.join(map(str, shape[1:]))} need {amount}, which "
                        f"{where} cannot hold ({exc}); use fewer files, fewer --clip-frames or a smaller --size") \
            from exc
    kept, labels, failed = [], [], []
    for item in tqdm(decoded(dataset, range(len(dataset)), workers), total=len(dataset), unit="video",
                     desc=f"decoding {spec}", disable=not progress):
        if item.clip is None:
            failed.append((item.video_id, item.error))
            continue
        videos[len(kept)] = to_uint8(item.clip)
        kept.append(item.index)
        labels.append(item.label)
    skipped += failed
    if not kept:
        if cache is not None:
            del videos, mapped
            pixels.unlink()
        raise DataError(f"{spec}: none of its {len(dataset)} video files could be used "
                        f"(first: {failed[0][0]}: {failed[0][1]})")
    ids = [dataset.video_id(index) for index in kept]
    if cache is not None:
        mapped.flush()
        del videos, mapped  # written out and closed before the rename
        os.replace(pixels, cache.with_name(cache.name + ".u8"))
        write_atomic(cache.with_name(cache.name + ".json"),
                     json.dumps({"key": key, "ids": ids, "labels": labels, "skipped": failed}))
        return _cached(dataset, cache, key, [])
    return ClipSet(dataset.name, "files", videos[: len(kept)], torch.tensor(labels, dtype=torch.long),
                   list(dataset.classes), ids)


def _cached(dataset, cache: Path, key: str, skipped: list) -> ClipSet | None:
    """The clips ``cache`` holds for this listing, or None (absent, or made from other files)."""
    index, pixels = cache.with_name(cache.name + ".json"), cache.with_name(cache.name + ".u8")
    try:
        held = json.loads(index.read_text())
        if held.get("key") != key:
            return None
        ids, labels, failed = list(held["ids"]), torch.tensor(held["labels"], dtype=torch.long), held["skipped"]
        # Copy-on-write: the tensor is writable for torch, and nothing written reaches the file.
        videos = torch.from_numpy(np.load(pixels, mmap_mode="c"))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):  # damaged or foreign: decode again
        return None
    if tuple(videos.shape[1:]) != tuple(dataset.clip_shape) or len(ids) != len(labels) or len(ids) > len(videos):
        return None
    skipped += [tuple(item) for item in failed]
    return ClipSet(dataset.name, "files", videos[: len(ids)], labels, list(dataset.classes), ids)
