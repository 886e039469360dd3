"""Clips decoded ahead of the attack, in background worker processes.

Video files are decoded with PyAV in ``workers`` processes (a torch
``DataLoader`` with no batching) and prefetched, so the attack never waits on
FFmpeg. A file that cannot be used arrives as an item carrying its error
instead of its clip: the run skips it, lists it, and goes on. In-memory sets
(the bundled ones) need no workers.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch

from ..data.clips import ClipSet
from ..errors import DataError


@dataclass
class Decoded:
    index: int  # position in the dataset
    video_id: str
    clip: torch.Tensor | None  # T x C x H x W float32 in [0, 1]; None when the file could not be used
    label: int | None
    error: str | None = None


class _Guarded(torch.utils.data.Dataset):
    def __init__(self, dataset, indices: Sequence[int]):
        self.dataset, self.indices = dataset, list(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, position: int) -> Decoded:
        index = self.indices[position]
        try:
            video_id, clip, label = self.dataset[index]
        except DataError as exc:
            return Decoded(index, self.dataset.video_id(index), None, None, str(exc))
        return Decoded(index, video_id, clip, label)


def decoded(dataset, indices: Sequence[int], workers: int = 2, prefetch: int = 4) -> Iterator[Decoded]:
    """The clips of ``dataset`` at ``indices``, in order."""
    guarded = _Guarded(dataset, indices)
    if workers <= 0 or isinstance(dataset, ClipSet):  # in memory: decoding is a copy
        yield from (guarded[i] for i in range(len(guarded)))
        return
    loader = torch.utils.data.DataLoader(guarded, batch_size=None, shuffle=False, num_workers=workers,
                                         prefetch_factor=prefetch, collate_fn=lambda item: item)
    yield from loader
