"""The batched loop every sparse attack runs on.

The loop keeps a fixed number of *slots* (:mod:`sava.attacks.slots`), each
holding one video under attack, and runs steps (:mod:`sava.attacks.step`)
over them back to back on the device. A video that reaches its goal within
the budget finishes with the perturbation it has then (iterations = updates
applied so far); one that uses up the iteration cap finishes as a failure.
A finished video's state is frozen on the device from that step on.

The host learns what finished by reading one small status tensor every
``poll_every`` steps; on CUDA the copy is asynchronous and read one step
later, while the next step runs. Only then are results built (they are the
same whenever the host reads them: the state is frozen), free slots refilled
from the queue (continuous batching: a slow video never holds the others
back) and, once the queue is empty, the remaining videos moved to the front
so the steps shrink with them.

Videos may perturb different numbers of frames (adaptive selectors): the
slots share a width ``k`` (the most frames any loaded video has, grown when a
wider one arrives) and each slot pads its own frames with frames it does not
perturb, whose parameters are masked to zero.

With ``refine`` a success does not end the video: it runs to the cap, and
the smallest (l2,1) perturbation that reached the goal is what it keeps
(the two-stage attack of Xu et al. 2022). Its iterations are those of its
first success.

Results are yielded as each video finishes.

Where the host cannot read for free (CUDA), the status is read one step late
(``lagged_poll``, on by default there; CPU tests turn it on to check that the
results do not change).

On CUDA each step is captured once as a CUDA graph per shape (the number of
slots stepped, rounded up to a power of two so that a shrinking run needs
few graphs; ``round_widths`` rounds the eager steps the same way) after two
eager warm-up steps, then replayed: one launch from the host per step instead
of hundreds (:mod:`sava.attacks.graphs`). ``cuda_graphs=False`` (or the
environment variable ``SAVA_CUDA_GRAPHS=0``, or ``sava attack
--no-cuda-graphs``) keeps every step eager; a capture that fails says why and
falls back to eager. A loop keeps its slots and graphs from one ``run`` to
the next when the next one's videos fit them (a search selector scores its
candidates this way).

Each video's ``seconds`` is its share of the steps it was in, timed on the
device (:mod:`sava.attacks.clock`).
"""

from __future__ import annotations

import itertools
import os
import warnings
from collections.abc import Iterable, Iterator

import torch

from ..metrics import VideoResult
from ..models.adapter import non_finite_logits
from .budget import BISECTION_STEPS, Budget
from .clock import StepClock
from .graphs import CaptureFailed, StepGraphs
from .results import fill_result
from .slots import LOGITS, LOSS, SUCCESS, Job, Slots, pad_frames
from .step import IntoClip, Objective, Step, StepSettings, attack_step

# Older import paths of these names.
__all__ = ["BISECTION_STEPS", "Budget", "IntoClip", "Job", "Objective", "SparseAttackLoop", "Step", "pad_frames"]


class SparseAttackLoop:
    def __init__(self, model, perturbation, objective: Objective, *, targeted: bool, max_iters: int,
                 budget: Budget, capacity: int, stop_on_success: bool = True, refine: bool = False,
                 margin: float = 0.0, poll_every: int = 1, cuda_graphs: bool | None = None,
                 lagged_poll: bool | None = None, round_widths: bool | None = None):
        if not isinstance(poll_every, int) or poll_every < 1:
            raise ValueError(f"poll_every must be a positive integer, got {poll_every!r}")
        self.model = model
        self.perturbation = perturbation
        self.capacity = capacity
        self.poll_every = poll_every
        self.refine = refine
        self.device = torch.device(model.device)
        on_cuda = self.device.type == "cuda"
        # Off when a selector scores candidate frames: every video then runs exactly max_iters updates.
        self.settings = StepSettings(model, perturbation, objective, targeted, max_iters, budget,
                                     stop_on_success and not refine, refine, margin,
                                     host_reads_are_free=not on_cuda)
        self.lagged = on_cuda if lagged_poll is None else bool(lagged_poll)  # read the status a step late
        if cuda_graphs is None:
            cuda_graphs = os.environ.get("SAVA_CUDA_GRAPHS", "1") != "0"
        # A compiled model brings its own graphs (and keeps the full batch).
        self.static = getattr(model, "static_batch", False)
        self.graphs = StepGraphs(self.device) if cuda_graphs and on_cuda and not self.static else None
        # Replayed graphs need the rounded widths; eager steps take them when asked (tests compare the two).
        self.round_widths = self.graphs is not None if round_widths is None else bool(round_widths)
        self.capture_error: BaseException | None = None  # why graphs were given up, if they were
        self.slots: Slots | None = None

    @property
    def width(self) -> int:
        """The slots' shared number of frames."""
        return self.slots.width if self.slots is not None else 0

    # ------------------------------------------------------------------ run
    def run(self, jobs: Iterable[Job]) -> Iterator[VideoResult]:
        queue = iter(jobs)
        first = next(queue, None)
        if first is None:
            return
        shapes = self.perturbation.parameter_shapes(*first.video.shape[1:])
        if self.slots is not None and self.slots.fits(self.capacity, first, shapes, self.refine):
            self.slots.reset()  # same tensors: the graphs captured on them stay valid
        else:
            self.slots = Slots(self.capacity, first, shapes, self.model.device, self.refine)
        self.queue = itertools.chain([first], queue)
        self.occupied = 0  # slots [0, occupied) hold videos
        self.clock = StepClock(self.device)
        self._refill()
        pending, since = None, 0
        with self.model.attack_mode():
            while self.occupied or pending is not None:
                if self.occupied:
                    self.clock.start()
                    # A compiled model keeps one batch shape (its CUDA graph is replayed, not recaptured).
                    self._step(self.capacity if self.static else self.occupied)
                    self.clock.stop(tuple(self.slots.jobs[:self.occupied]))
                    since += 1
                if pending is not None:
                    yield from self._handle(*pending)
                    pending = None
                if self.occupied and since >= self.poll_every:
                    pending, since = self._snapshot(), 0
                    if not self.lagged:
                        yield from self._handle(*pending)
                        pending = None

    def _step(self, width: int) -> None:
        if self.round_widths:
            width = min(1 << (width - 1).bit_length(), self.capacity)  # idle slots ride along, masked
        s = self.slots
        if self.graphs is None:
            attack_step(self.settings, s, width)
            return
        key = (width, s.padded)  # besides the slots' generation, what the captured shapes and branches depend on
        try:
            self.graphs.step(key, (id(s), s.generation), lambda: attack_step(self.settings, s, width))
        except CaptureFailed as failure:
            self.capture_error = failure.cause
            warnings.warn(f"capturing the attack step as a CUDA graph failed ({failure}); running eagerly "
                          "(SAVA_CUDA_GRAPHS=0 skips the attempt)", RuntimeWarning, stacklevel=2)
            self.graphs.drop()
            self.graphs = None
            attack_step(self.settings, s, width)

    def _snapshot(self):
        """Which occupied slots finished, copied towards the host (asynchronously into pinned memory on CUDA;
        a copy taken now on the CPU, read as late as on CUDA when the poll is lagged)."""
        s, n = self.slots, self.occupied
        status = s.finished[:n]
        if not self.lagged:
            return status, n
        if self.device.type != "cuda":
            return (status.clone(), None), n
        host = torch.empty(n, dtype=torch.bool, pin_memory=True)
        host.copy_(status, non_blocking=True)
        event = torch.cuda.Event()
        event.record()
        return (host, event), n

    def _handle(self, snapshot, count: int) -> Iterator[VideoResult]:
        if self.lagged:
            snapshot, event = snapshot
            if event is not None:
                event.synchronize()
        self.clock.settle()
        status = snapshot.tolist()
        s = self.slots
        for slot in range(count):
            if status[slot] and s.jobs[slot] is not None:
                yield self._result(slot)
                s.jobs[slot] = None
                s.finished[slot] = False
        self._refill()

    def _refill(self) -> None:
        """Free slots below ``occupied`` take waiting videos; without any, the last videos move into them."""
        s = self.slots
        for slot in range(self.capacity):
            if s.jobs[slot] is not None:
                continue
            job = next(self.queue, None)
            if job is None:
                break
            s.load(slot, job)
        holes = [slot for slot in range(self.capacity) if s.jobs[slot] is None]
        occupied = [slot for slot in range(self.capacity) if s.jobs[slot] is not None]
        while holes and occupied and holes[0] < occupied[-1]:
            s.move(occupied.pop(), holes.pop(0))
        self.occupied = sum(job is not None for job in s.jobs)

    def _result(self, slot: int) -> VideoResult:
        s = self.slots
        job = s.jobs[slot]
        record, iterations, params = s.record[slot].cpu(), int(s.iters[slot]), {n: v[slot] for n, v in s.params.items()}
        if self.refine and int(s.first_success[slot]) >= 0:
            iterations = int(s.first_success[slot])
            record, params = s.best_record[slot].cpu(), {n: v[slot] for n, v in s.best_params.items()}
        valid = s.frame_valid[slot]
        clean = s.clean[slot][valid].unsqueeze(0)
        kept = {name: value[valid] for name, value in params.items()}
        with torch.no_grad():
            delta = self.perturbation.apply(clean, {n: v.unsqueeze(0) for n, v in kept.items()})[0] - clean[0]
        job.result.queries += iterations + 1  # one forward (and backward) pass of the target per iteration
        tensors = self.perturbation.result_tensors(kept)
        logits = record[LOGITS:LOGITS + s.classes]
        # NaN or inf logits end a video (NaN wins argmax, or the NaN loss runs it to the cap) with them recorded.
        if not bool(torch.isfinite(logits).all()):  # the videos finished before keep their results
            raise non_finite_logits(self.model, [job.result.video_id], "adversarial")
        probs = logits.softmax(-1)
        return fill_result(job.result, success=bool(record[SUCCESS]), iterations=iterations,
                           frames=s.frame_idx[slot][valid].tolist(), num_frames=s.num_frames,
                           ssim=record[LOGITS + s.classes:][valid.cpu()],
                           delta=delta, clip_numel=s.clip[slot].numel(), pred=int(logits.argmax()),
                           prob=float(probs.max()), label_prob=float(probs[job.result.label]), loss=float(record[LOSS]),
                           seconds=job.seconds, flow=tensors.get("flow"), noise=tensors.get("noise"))
