"""Processes of a sharded run (``torchrun --nproc-per-node N sava attack ...``).

torchrun sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``; each process takes
every ``WORLD_SIZE``-th video starting at its rank, uses GPU ``LOCAL_RANK``
when there are GPUs, writes its own manifest into the shared run folder, and
after a barrier the first process merges the manifests and the summary.
Without torchrun the run is one shard of one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch


@dataclass
class Shard:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.world > 1

    def indices(self, count: int) -> list[int]:
        return list(range(self.rank, count, self.world))

    def device(self, requested: str) -> str:
        if requested == "cuda" and self.distributed:
            return f"cuda:{self.local_rank}"
        return requested

    def barrier(self) -> None:
        if self.distributed:
            import torch.distributed as dist

            dist.barrier()

    def close(self) -> None:
        if self.distributed:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()


def current_shard() -> Shard:
    """This process's shard; joins the process group when launched by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Shard()
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
    return Shard(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))
