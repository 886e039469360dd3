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

Videos may perturb different numbers of frames (adaptive selectors): the
slots share a width ``k`` (the most frames any loaded video has, grown when a
wider one arrives) and each slot pads its own frames with frames it does not
perturb, whose parameters are masked to zero.

With ``refine`` a success does not end the video: it runs to the cap, and
the smallest (l2,1) perturbation that reached the goal is what it keeps
(the two-stage attack of Xu et al. 2022). Its iterations are those of its
first success.

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
from ..models.adapter import check_finite_logits
from .losses import reached_goal

BISECTION_STEPS = 12


@dataclass
class Job:
    """One video waiting for a slot."""

    video: torch.Tensor  # T x C x H x W, [0, 1]
    frame_idx: torch.Tensor  # k, int64 (k may differ between jobs)
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


@dataclass
class Step:
    """What an objective sees of one iteration: the active videos' rows."""

    adv: torch.Tensor  # rows x k x C x H x W adversarial selected frames
    clean: torch.Tensor  # rows x k x C x H x W
    ssim: torch.Tensor  # rows x k (1 on padding frames)
    l21: torch.Tensor  # rows
    logits: torch.Tensor  # rows x classes
    goal: torch.Tensor  # rows
    iters: torch.Tensor  # rows: updates applied so far
    params: dict[str, torch.Tensor]  # rows x k x ... (zero on padding frames)
    frame_idx: torch.Tensor  # rows x k
    frame_valid: torch.Tensor  # rows x k, False on padding frames
    num_frames: int  # T


# Objective: Step -> per-video loss to minimise.
Objective = Callable[[Step], torch.Tensor]


def _per_row(scale: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """``value`` (rows x ...) with each row multiplied by its entry of ``scale``."""
    return value * scale.view(-1, *[1] * (value.dim() - 1))


def pad_frames(frame_idx: torch.Tensor, width: int, num_frames: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A video's ``k`` frames padded to ``width`` with frames it does not
    perturb (distinct, so writing the untouched padding frames back is a
    no-op), and the mask of the real ones."""
    chosen = frame_idx.tolist()
    spare = [t for t in range(num_frames) if t not in set(chosen)][: width - len(chosen)]
    valid = torch.arange(width) < len(chosen)
    return torch.tensor(chosen + spare, dtype=torch.long), valid


class SparseAttackLoop:
    def __init__(self, model, perturbation, objective: Objective, *, targeted: bool, max_iters: int,
                 budget: Budget, capacity: int, stop_on_success: bool = True, refine: bool = False,
                 margin: float = 0.0):
        self.model = model
        self.perturbation = perturbation
        self.objective = objective
        self.targeted = targeted
        self.max_iters = max_iters
        self.budget = budget
        self.capacity = capacity
        # Off when a selector scores candidate frames: every video then runs exactly max_iters updates.
        self.stop_on_success = stop_on_success and not refine
        self.refine = refine
        self.margin = margin  # a success stops a video once it holds by this many logits (or at the cap)

    # ------------------------------------------------------------------ slots
    def _allocate(self, job: Job) -> None:
        t, c, h, w = job.video.shape
        cap, device = self.capacity, self.model.device
        self.num_frames, self.width = t, 0
        self.videos = torch.zeros(cap, t, c, h, w, device=device)
        self.clean = torch.zeros(cap, 0, c, h, w, device=device)
        self.frame_idx = torch.zeros(cap, 0, dtype=torch.long, device=device)
        self.frame_valid = torch.zeros(cap, 0, dtype=torch.bool, device=device)
        self.goal = torch.zeros(cap, dtype=torch.long, device=device)
        self.label = torch.zeros(cap, dtype=torch.long, device=device)
        self.iters = torch.zeros(cap, dtype=torch.long, device=device)
        self.adam_steps = torch.zeros(cap, dtype=torch.long, device=device)
        self.active = torch.zeros(cap, dtype=torch.bool, device=device)
        self.first_success = torch.full((cap,), -1, dtype=torch.long, device=device)
        shapes = self.perturbation.parameter_shapes(c, h, w)
        self.params = {name: torch.zeros(cap, 0, *shape, device=device) for name, shape in shapes.items()}
        self.moments = {name: (value.clone(), value.clone()) for name, value in self.params.items()}
        self.best: dict[str, torch.Tensor] = {}  # refine: the measures and parameters of each slot's best success
        self.jobs: list[Job | None] = [None] * cap
        self.seconds = [0.0] * cap

    def _widen(self, width: int) -> None:
        """Grow every per-frame tensor to ``width`` frames; loaded videos pad
        with frames they do not perturb."""
        extra = width - self.width

        def grow(value: torch.Tensor) -> torch.Tensor:
            return torch.cat([value, value.new_zeros(value.shape[0], extra, *value.shape[2:])], dim=1)

        for name in self.params:
            self.params[name] = grow(self.params[name])
            self.moments[name] = tuple(grow(m) for m in self.moments[name])
        for name in [n for n in self.best if n.startswith("param:") or n == "ssim"]:
            self.best[name] = grow(self.best[name])
        self.frame_valid = grow(self.frame_valid)
        self.frame_idx = grow(self.frame_idx)
        self.clean = grow(self.clean)
        self.width = width
        for slot in range(self.capacity):
            if self.jobs[slot] is not None:
                self._place_frames(slot, self.frame_idx[slot][self.frame_valid[slot]])

    def _place_frames(self, slot: int, frame_idx: torch.Tensor) -> None:
        idx, valid = pad_frames(frame_idx.cpu(), self.width, self.num_frames)
        self.frame_idx[slot] = idx.to(self.model.device)
        self.frame_valid[slot] = valid.to(self.model.device)
        self.clean[slot] = self.videos[slot, self.frame_idx[slot]]

    def _load(self, slot: int, job: Job) -> None:
        if len(job.frame_idx) > self.width:
            self._widen(len(job.frame_idx))
        self.videos[slot] = job.video.to(self.model.device)
        self._place_frames(slot, job.frame_idx)
        self.goal[slot] = job.goal
        self.label[slot] = job.result.label
        self.iters[slot] = 0
        self.adam_steps[slot] = 0
        self.first_success[slot] = -1
        for name in self.params:
            self.params[name][slot] = 0
            self.moments[name][0][slot] = 0
            self.moments[name][1][slot] = 0
        if "l21" in self.best:
            self.best["l21"][slot] = float("inf")
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

    def _masked(self, rows: torch.Tensor, params: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Parameters with the padding frames held at zero (and given no gradient)."""
        valid = self.frame_valid[rows]
        return {name: value * valid.view(*valid.shape, *[1] * (value.dim() - 2)) for name, value in params.items()}

    def _frames(self, rows: torch.Tensor, params: dict[str, torch.Tensor]):
        """Adversarial and clean selected frames of ``rows`` and their distances."""
        clean = self.clean[rows]
        adv = self.perturbation.apply(clean, params)
        return adv, clean, kernels.ssim(adv, clean), kernels.l21_norm(adv - clean)

    def _step(self) -> Iterator[VideoResult]:
        started = time.perf_counter()
        rows = self.active.nonzero().flatten()
        leaves = {name: value[rows].requires_grad_() for name, value in self.params.items()}
        params = self._masked(rows, leaves)
        adv, clean, ssim, l21 = self._frames(rows, params)
        inputs = kernels.scatter_frames(self.videos[rows], self.frame_idx[rows], adv)
        if getattr(self.model, "static_batch", False):
            # One batch shape for every step (a compiled model's CUDA graph is replayed, not recaptured):
            # the idle slots ride along with their clean clips and their logits are dropped.
            logits = self.model.logits(self.videos.index_put((rows,), inputs))[rows]
        else:
            logits = self.model.logits(inputs)
        check_finite_logits(self.model, logits.detach(), lambda: [self.jobs[r].result.video_id for r in rows.tolist()],
                            "adversarial")
        goal = self.goal[rows]
        done = reached_goal(logits, goal, self.targeted) & self.budget.satisfied(ssim, l21)
        # With a margin, a video keeps going past the boundary; it still counts as fooled at the cap.
        settled = done & reached_goal(logits, goal, self.targeted, self.margin) if self.margin > 0 else done
        out_of_iters = self.iters[rows] >= self.max_iters
        finished = (settled & self.stop_on_success) | out_of_iters
        step = Step(adv, clean, ssim, l21, logits, goal, self.iters[rows], params, self.frame_idx[rows],
                    self.frame_valid[rows], self.num_frames)
        loss = self.objective(step)
        # Only the videos that finish now, and in refine mode those at their goal, need their figures.
        picked = ((finished | done) if self.refine else finished).nonzero().flatten()
        measures = self._measures(rows[picked], adv.detach()[picked], clean[picked], ssim.detach()[picked],
                                  l21.detach()[picked], logits.detach()[picked], loss.detach()[picked])
        if self.refine:
            picked_params = {name: value[picked] for name, value in params.items()}
            self._keep_best(rows[picked], done[picked], measures, picked_params)

        still = ~finished
        self.active[rows[finished]] = False
        if still.any():
            grads = torch.autograd.grad(loss[still].sum(), list(leaves.values()))
            for (name, value), grad in zip(self.params.items(), grads):
                full = torch.zeros_like(value)
                full[rows] = grad
                exp_avg, exp_avg_sq = self.moments[name]
                step_count = self.adam_steps.clone()  # each parameter's step advances the same shared count
                kernels.masked_adam_step_(value, full, exp_avg, exp_avg_sq, step_count, self.active,
                                          self.perturbation.learning_rates[name])
            self.adam_steps += self.active.long()
            if self.budget.active:
                self._project(rows[still])
            self.iters[rows[still]] += 1

        share = (time.perf_counter() - started) / len(rows)
        for slot in rows.tolist():
            self.seconds[slot] += share
        for j in finished[picked].nonzero().flatten().tolist():
            i = int(picked[j])
            yield self._finish(int(rows[i]), bool(done[i]), {name: value[j] for name, value in measures.items()})

    def _measures(self, rows, adv, clean, ssim, l21, logits, loss) -> dict[str, torch.Tensor]:
        """Per-video figures of the current iterate (rows leading)."""
        probs = logits.softmax(-1)
        valid = self.frame_valid[rows]
        delta = (adv - clean).abs() * valid.view(*valid.shape, 1, 1, 1)
        return {"ssim": ssim, "l21": l21, "linf": delta.flatten(1).max(dim=1).values,
                "abs_sum": delta.flatten(1).sum(dim=1), "pred": probs.argmax(-1), "prob": probs.max(-1).values,
                "label_prob": probs.gather(1, self.label[rows].view(-1, 1)).squeeze(1), "loss": loss}

    @torch.no_grad()
    def _keep_best(self, rows, done, measures, params) -> None:
        """Refine mode: remember each video's first success and its smallest successful perturbation
        (``rows`` are the picked videos; the others have nothing to remember)."""
        if not self.best:
            self.best = {name: value.new_zeros(self.capacity, *value.shape[1:]) for name, value in measures.items()}
            self.best["l21"].fill_(float("inf"))
            for name, value in params.items():
                self.best[f"param:{name}"] = value.new_zeros(self.capacity, *value.shape[1:])
        first = done & (self.first_success[rows] < 0)
        self.first_success[rows[first]] = self.iters[rows[first]]
        better = done & (measures["l21"] < self.best["l21"][rows])
        slots = rows[better]
        for name, value in measures.items():
            self.best[name][slots] = value[better]
        for name, value in params.items():
            self.best[f"param:{name}"][slots] = value.detach()[better]

    @torch.no_grad()
    def _project(self, rows: torch.Tensor) -> None:
        """Scale each violating video's parameters by the largest factor in
        [0, 1] (found by bisection) that keeps it inside the budget."""
        params = {name: value[rows] for name, value in self.params.items()}
        _, _, ssim, l21 = self._frames(rows, self._masked(rows, params))
        bad = ~self.budget.satisfied(ssim, l21)
        if not bad.any():
            return
        rows, params = rows[bad], {name: value[bad] for name, value in params.items()}
        low = torch.zeros(len(rows), device=rows.device)
        high = torch.ones(len(rows), device=rows.device)
        for _ in range(BISECTION_STEPS):
            mid = (low + high) / 2
            scaled = self._masked(rows, {name: _per_row(mid, value) for name, value in params.items()})
            _, _, ssim, l21 = self._frames(rows, scaled)
            ok = self.budget.satisfied(ssim, l21)
            low = torch.where(ok, mid, low)
            high = torch.where(ok, high, mid)
        for name, value in params.items():
            self.params[name][rows] = _per_row(low, value)

    def _finish(self, slot: int, success: bool, measures: dict[str, torch.Tensor]) -> VideoResult:
        job = self.jobs[slot]
        result = job.result
        params = {name: self.params[name][slot] for name in self.params}
        iterations = int(self.iters[slot])
        if self.refine:
            success = bool(self.first_success[slot] >= 0)
            if success:
                measures = {name: self.best[name][slot] for name in measures}
                params = {name: self.best[f"param:{name}"][slot] for name in self.params}
                iterations = int(self.first_success[slot])
        valid = self.frame_valid[slot]
        result.success = success
        result.iterations = iterations
        result.queries += iterations + 1  # one forward (and backward) pass of the target per iteration
        result.frames = self.frame_idx[slot][valid].tolist()
        result.num_frames = self.num_frames
        result.ssim = [float(s) for s in measures["ssim"][valid]]
        result.l21 = float(measures["l21"])
        result.linf = float(measures["linf"])
        result.mean_abs = float(measures["abs_sum"]) / self.videos[slot].numel()
        result.final_pred = int(measures["pred"])
        result.final_prob = float(measures["prob"])
        result.label_prob = float(measures["label_prob"])
        result.seconds = self.seconds[slot]
        result.loss = float(measures["loss"])
        tensors = self.perturbation.result_tensors({name: value[valid] for name, value in params.items()})
        result.flow, result.noise = tensors.get("flow"), tensors.get("noise")
        self.jobs[slot] = None
        return result
