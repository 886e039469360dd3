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

# Seconds without a clip before a decode worker is taken to be stuck: far above one clip's decode (a long 4K file
# read from its start takes minutes), far below a batch job's patience.
STUCK_AFTER_S = 1200


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
                                         prefetch_factor=prefetch, collate_fn=lambda item: item,
                                         timeout=STUCK_AFTER_S)
    waiting_for = 0
    try:
        for item in loader:
            yield item
            waiting_for += 1
    except RuntimeError as exc:
        if "timed out" not in str(exc):
            raise
        # A worker that never answers (a library deadlocked in the forked process, say) ends the run with the
        # file it was on, instead of the run waiting for ever; what finished is already written.
        raise DataError(f"{dataset.video_id(guarded.indices[waiting_for])}: no clip decoded in {STUCK_AFTER_S} s, "
                        "a decode worker is stuck; --workers 0 decodes in this process, and the same command "
                        "resumes") from exc
