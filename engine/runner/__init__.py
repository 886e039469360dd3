"""Batch attack generation over datasets: background decoding, resume, shards."""

from .pipeline import DatasetRun, merge, run_dataset
from .shard import Shard, current_shard

__all__ = ["DatasetRun", "Shard", "current_shard", "merge", "run_dataset"]
