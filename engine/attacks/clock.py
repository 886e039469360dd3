"""Per-video seconds: each step's time shared among the videos it carried.

On the CPU a step runs while the host waits, so its host time is its cost. On
CUDA the host only enqueues (a graph replay takes microseconds while the step
takes milliseconds): the step is timed between two CUDA events recorded on
the stream around it, and charged once those events have completed, which
the loop learns at its polls without waiting any longer than it does anyway.
"""

from __future__ import annotations

import time
from collections import deque

import torch

from .slots import Job


class StepClock:
    def __init__(self, device: torch.device):
        self.on_device = torch.device(device).type == "cuda"
        self.pending: deque[tuple[torch.cuda.Event, torch.cuda.Event, tuple[Job, ...]]] = deque()
        self._started: float | torch.cuda.Event | None = None

    def start(self) -> None:
        if self.on_device:
            self._started = torch.cuda.Event(enable_timing=True)
            self._started.record()
        else:
            self._started = time.perf_counter()

    def stop(self, jobs: tuple[Job, ...]) -> None:
        """The step that began at :meth:`start` carried ``jobs``."""
        if not self.on_device:
            _charge(time.perf_counter() - self._started, jobs)
            return
        ended = torch.cuda.Event(enable_timing=True)
        ended.record()
        self.pending.append((self._started, ended, jobs))

    def settle(self) -> None:
        """Charge every timed step that the device has finished (a query, not a wait)."""
        while self.pending and self.pending[0][1].query():
            started, ended, jobs = self.pending.popleft()
            _charge(started.elapsed_time(ended) / 1000.0, jobs)


def _charge(seconds: float, jobs: tuple[Job, ...]) -> None:
    share = seconds / max(len(jobs), 1)
    for job in jobs:
        job.seconds += share
