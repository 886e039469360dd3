"""CUDA graphs of the attack step: one per shape, all in one memory pool, captured with discipline.

A step is replayed from a graph once it has run eagerly ``WARM_STEPS`` times
at its shape (real steps: they settle lazy state such as kernel compilation,
cuBLAS handles and cached index tables). Why each rule below:

* **One pool for every graph of a loop** (``graph_pool_handle``): each graph
  would otherwise keep a private pool of its own, never given back while the
  graph lives, and a run that shrinks its batch captures several. A step's
  intermediates are dead once it returns (its persistent state lives in the
  slots, allocated outside the pool), so graphs sharing the pool never read
  each other's memory.
* **Graphs die with the tensors they read.** Every graph is tied to the
  slots' ``generation``; when the slots replace their tensors (a wider video,
  a new record size) or the loop gets new slots, every graph is dropped.
* **Warm-up and capture on a side stream**, as CUDA requires of capture and
  as torch recommends of the steps before it, ordered against the current
  stream by stream waits.
* **A failed capture** ends the capture, restores the stream, synchronises,
  and reports the first error the step raised (not the "capture invalidated"
  that ``capture_end`` raises after it); the caller then runs eagerly. Only
  ``RuntimeError`` (CUDA's and torch's errors) counts as a failed capture:
  anything else is a real error of the step and propagates.
* No ``empty_cache`` before a capture (``torch.cuda.graph`` does one): with
  one shared pool it frees nothing the graph needs, and every eager step
  after it would pay to allocate again.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable

import torch

WARM_STEPS = 2


class CaptureFailed(RuntimeError):
    """Capturing a step failed; ``cause`` is the first error raised while capturing."""

    def __init__(self, cause: BaseException):
        super().__init__(f"{type(cause).__name__}: {cause}")
        self.cause = cause


class StepGraphs:
    """The captured steps of one loop, by shape key."""

    def __init__(self, device: torch.device):
        self.device = device
        self.pool = torch.cuda.graph_pool_handle()
        self.stream = torch.cuda.Stream(device=device)
        self.graphs: dict[Hashable, torch.cuda.CUDAGraph] = {}
        self.warm: dict[Hashable, int] = {}
        self.generation: Hashable = None

    def step(self, key: Hashable, generation: Hashable, step: Callable[[], None]) -> None:
        """Run ``step`` once: replayed from its graph, eagerly as a warm-up, or captured and then replayed.
        Raises :class:`CaptureFailed` when the capture fails (nothing has run then: run the step eagerly)."""
        if generation != self.generation:
            self.drop()
            self.generation = generation
        graph = self.graphs.get(key)
        if graph is None:
            if self.warm.get(key, 0) < WARM_STEPS:
                self.warm[key] = self.warm.get(key, 0) + 1
                self._on_side_stream(step)
                return
            graph = self._capture(step)
            self.graphs[key] = graph
        graph.replay()

    def drop(self) -> None:
        """Forget every graph (their memory goes back to the pool) and every warm-up count."""
        self.graphs.clear()
        self.warm.clear()

    def _on_side_stream(self, step: Callable[[], None]) -> None:
        current = torch.cuda.current_stream(self.device)
        self.stream.wait_stream(current)
        with torch.cuda.stream(self.stream):
            step()
        current.wait_stream(self.stream)

    def _capture(self, step: Callable[[], None]) -> torch.cuda.CUDAGraph:
        graph = torch.cuda.CUDAGraph()
        current = torch.cuda.current_stream(self.device)
        self.stream.wait_stream(current)
        first: BaseException | None = None
        with torch.cuda.stream(self.stream):  # restores the current stream however the capture ends
            graph.capture_begin(pool=self.pool, capture_error_mode="thread_local")
            try:
                step()
            except BaseException as error:  # noqa: BLE001  (the capture must end before anything propagates)
                first = error
            try:
                graph.capture_end()
            except RuntimeError as error:
                first = first or error
        current.wait_stream(self.stream)
        if first is None:
            return graph
        torch.cuda.synchronize(self.device)
        if isinstance(first, RuntimeError):
            raise CaptureFailed(first) from first
        raise first
