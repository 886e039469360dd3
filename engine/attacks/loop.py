"""The batched loop every sparse attack runs on.

The loop keeps a fixed number of *slots*. Each slot holds one video under
attack: its clean clip, its selected frames and the per-frame state of those
frames only (perturbation parameters and Adam moments; ``k`` frames, never
``T``). Every iteration:

1. the active slots' adversarial frames are built and their clips classified;
2. a video that now reaches its goal within the budget is finished with the
   perturbation it has *now* (iterations = updates applied so far); a video
   that has used the iteration cap is finished as a failure;
3. the remaining videos take one masked Adam step (finished slots frozen) and
   are projected back into the budget;
4. free slots are refilled from the queue of waiting videos, so a slow video
   never holds the others back (continuous batching).

Results are yielded as each video finishes.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import torch

from .. import kernels
from ..metrics import VideoResult
from .losses import reached_goal

BISECTION_STEPS = 12


@dataclass
class Job:
    """One video waiting for a slot."""

    video: torch.Tensor  # T x C x H x W, [0, 1]
    frame_idx: torch.Tensor  # k, int64
    goal: int  # true label (untargeted) or target label
    result: VideoResult  # filled in as the attack finishes


@dataclass
class Budget:
    """Perceptual budgets. Enforced by projection: after every update, a
    video whose perturbation leaves the budget has all its parameters scaled
    towards zero (the identity) by bisection until it is back inside, so every
    iterate -- and hence every success -- satisfies it."""

    min_ssim: float | None = None  # each perturbed frame's SSIM must stay at or above
    max_l21: float | None = None  # per-pixel l2,1 of the video's perturbation at or below

    @property
    def active(self) -> bool:
        return self.min_ssim is not None or self.max_l21 is not None

    def satisfied(self, ssim: torch.Tensor, l21: torch.Tensor) -> torch.Tensor:
        ok = torch.ones_like(l21, dtype=torch.bool)
        if self.min_ssim is not None:
            ok &= ssim.min(dim=1).values >= self.min_ssim
        if self.max_l21 is not None:
            ok &= l21 <= self.max_l21
        return ok


def _per_row(scale: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """``value`` (rows x ...) with each row multiplied by its entry of ``scale``."""
    return value * scale.view(-1, *[1] * (value.dim() - 1))


# Objective: (adversarial frames, clean frames, per-frame SSIM, logits, goals, iterations so far)
# -> per-video loss to minimise.
Objective = Callable[..., torch.Tensor]


class SparseAttackLoop:
    def __init__(self, model, perturbation, objective: Objective, *, targeted: bool, max_iters: int,
                 budget: Budget, capacity: int, stop_on_success: bool = True):
        self.model = model
        self.perturbation = perturbation
        self.objective = objective
        self.targeted = targeted
        self.max_iters = max_iters
        self.budget = budget
        self.capacity = capacity
        # Off when a selector scores candidate frames: every video then runs exactly max_iters updates.
        self.stop_on_success = stop_on_success

    # ------------------------------------------------------------------ slots
    def _allocate(self, job: Job) -> None:
        t, c, h, w = job.video.shape
        k = job.frame_idx.shape[0]
        cap, device = self.capacity, self.model.device
        self.videos = torch.zeros(cap, t, c, h, w, device=device)
        self.clean = torch.zeros(cap, k, c, h, w, device=device)
        self.frame_idx = torch.zeros(cap, k, dtype=torch.long, device=device)
        self.goal = torch.zeros(cap, dtype=torch.long, device=device)
        self.iters = torch.zeros(cap, dtype=torch.long, device=device)
        self.adam_steps = torch.zeros(cap, dtype=torch.long, device=device)
        self.active = torch.zeros(cap, dtype=torch.bool, device=device)
        self.params, self.moments = {}, {}
        for name, shape in self.perturbation.parameter_shapes(c, h, w).items():
            self.params[name] = torch.zeros(cap, k, *shape, device=device)
            self.moments[name] = (torch.zeros_like(self.params[name]), torch.zeros_like(self.params[name]))
        self.jobs: list[Job | None] = [None] * cap
        self.seconds = [0.0] * cap

    def _load(self, slot: int, job: Job) -> None:
        self.videos[slot] = job.video.to(self.model.device)
        self.frame_idx[slot] = job.frame_idx.to(self.model.device)
        self.clean[slot] = self.videos[slot, self.frame_idx[slot]]
        self.goal[slot] = job.goal
        self.iters[slot] = 0
        self.adam_steps[slot] = 0
        for name in self.params:
            self.params[name][slot] = 0
            self.moments[name][0][slot] = 0
            self.moments[name][1][slot] = 0
        self.active[slot] = True
        self.jobs[slot] = job
        self.seconds[slot] = 0.0

    # ------------------------------------------------------------------ run
    def run(self, jobs: Iterable[Job]) -> Iterator[VideoResult]:
        queue = iter(jobs)
        first = next(queue, None)
        if first is None:
            return
        self._allocate(first)
        queue = itertools.chain([first], queue)
        with self.model.attack_mode():
            while True:
                for slot in (~self.active).nonzero().flatten().tolist():
                    job = next(queue, None)
                    if job is None:
                        break
                    self._load(slot, job)
                if not self.active.any():
                    return
                yield from self._step()

    def _frames(self, rows: torch.Tensor, params: dict[str, torch.Tensor]):
        """Adversarial and clean selected frames of ``rows`` and their distances."""
        clean = self.clean[rows]
        adv = self.perturbation.apply(clean, params)
        return adv, clean, kernels.ssim(adv, clean), kernels.l21_norm(adv - clean)

    def _step(self) -> Iterator[VideoResult]:
        started = time.perf_counter()
        rows = self.active.nonzero().flatten()
        params = {name: value[rows].requires_grad_() for name, value in self.params.items()}
        adv, clean, ssim, l21 = self._frames(rows, params)
        logits = self.model.logits(kernels.scatter_frames(self.videos[rows], self.frame_idx[rows], adv))
        goal = self.goal[rows]
        done = reached_goal(logits, goal, self.targeted) & self.budget.satisfied(ssim, l21)
        out_of_iters = self.iters[rows] >= self.max_iters
        finished = (done & self.stop_on_success) | out_of_iters
        loss = self.objective(adv, clean, ssim, logits, goal, self.iters[rows])

        still = ~finished
        self.active[rows[finished]] = False
        if still.any():
            grads = torch.autograd.grad(loss[still].sum(), list(params.values()))
            for (name, value), grad in zip(self.params.items(), grads):
                full = torch.zeros_like(value)
                full[rows] = grad
                exp_avg, exp_avg_sq = self.moments[name]
                step = self.adam_steps.clone()  # each parameter's step advances the same shared count
                kernels.masked_adam_step_(value, full, exp_avg, exp_avg_sq, step, self.active,
                                          self.perturbation.learning_rates[name])
            self.adam_steps += self.active.long()
            if self.budget.active:
                self._project(rows[still])
            self.iters[rows[still]] += 1

        share = (time.perf_counter() - started) / len(rows)
        for slot in rows.tolist():
            self.seconds[slot] += share
        probs = logits.detach().softmax(-1)
        for i in finished.nonzero().flatten().tolist():
            yield self._finish(int(rows[i]), bool(done[i]), probs[i], ssim[i], l21[i], adv[i], clean[i],
                               float(loss[i].detach()))

    @torch.no_grad()
    def _project(self, rows: torch.Tensor) -> None:
        """Scale each violating video's parameters by the largest factor in
        [0, 1] (found by bisection) that keeps it inside the budget."""
        params = {name: value[rows] for name, value in self.params.items()}
        _, _, ssim, l21 = self._frames(rows, params)
        bad = ~self.budget.satisfied(ssim, l21)
        if not bad.any():
            return
        rows, params = rows[bad], {name: value[bad] for name, value in params.items()}
        low = torch.zeros(len(rows), device=rows.device)
        high = torch.ones(len(rows), device=rows.device)
        for _ in range(BISECTION_STEPS):
            mid = (low + high) / 2
            scaled = {name: _per_row(mid, value) for name, value in params.items()}
            _, _, ssim, l21 = self._frames(rows, scaled)
            ok = self.budget.satisfied(ssim, l21)
            low = torch.where(ok, mid, low)
            high = torch.where(ok, high, mid)
        for name, value in params.items():
            self.params[name][rows] = _per_row(low, value)

    def _finish(self, slot, success, probs, ssim, l21, adv, clean, loss) -> VideoResult:
        job = self.jobs[slot]
        result = job.result
        result.success = success
        result.iterations = int(self.iters[slot])
        result.frames = self.frame_idx[slot].tolist()
        result.ssim = [float(s) for s in ssim.detach()]
        result.l21 = float(l21.detach())
        result.linf = float((adv.detach() - clean).abs().max())
        result.final_pred = int(probs.argmax())
        result.final_prob = float(probs.max())
        result.label_prob = float(probs[result.label])
        result.seconds = self.seconds[slot]
        result.loss = loss
        result.flow = self.params["flow"][slot].detach().cpu().clone() if "flow" in self.params else None
        result.noise = self.params["noise"][slot].detach().cpu().clone() if "noise" in self.params else None
        self.jobs[slot] = None
        return result
