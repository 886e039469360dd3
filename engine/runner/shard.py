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
        """The device this process attacks on: ``auto`` is CUDA when torch sees a GPU, else the CPU; under
        torchrun each process takes GPU ``LOCAL_RANK`` (processes share GPUs when there are fewer GPUs)."""
        requested = resolve_device(requested)
        if requested == "cuda" and self.distributed:
            return f"cuda:{self.local_rank % torch.cuda.device_count()}"
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


def resolve_device(requested: str) -> str:
    """``auto`` -> ``cuda`` when torch sees a GPU, else ``cpu``; a CUDA device without CUDA is an error."""
    from ..errors import ConfigError

    name = str(requested).strip().lower()
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError) as exc:
        raise ConfigError(f"--device {requested!r} is not a device (auto, cpu, cuda, cuda:N)") from exc
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"--device {requested}: torch sees no CUDA device here (use --device cpu or auto)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"--device {requested}: only {torch.cuda.device_count()} CUDA device(s) here")
    elif device.type != "cpu":
        raise ConfigError(f"--device {requested}: sava runs on cpu or cuda")
    return name


def current_shard() -> Shard:
    """This process's shard; joins the process group when launched by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Shard()
    import torch.distributed as dist

    if not dist.is_initialized():
        # The processes only wait for each other (a barrier before the merge): gloo does that on any machine,
        # whereas NCCL refuses two processes on one GPU and CPU runs on a machine that has GPUs.
        dist.init_process_group(backend="gloo")
    return Shard(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))
