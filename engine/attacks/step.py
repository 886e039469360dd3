"""One step of the sparse attack over the first ``width`` slots, on the device, under masks.

The adversarial frames are made by the fused perturbation kernel from the
slots' clean frames and written into the persistent clip buffer the model
reads (:class:`IntoClip`: no full-clip copy); the objective of every slot is
taken, the slots that finish now record their figures and stop, and the
others take one masked Adam step (one launch for all parameters) and, under
a budget, are projected back into it. Nothing in here reads a tensor's value
on the host (see ``tests/engine/test_step_sync.py``), so the host can run
steps back to back and learn the outcome later (``SparseAttackLoop``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from .. import kernels
from .budget import Budget, project_
from .losses import reached_goal
from .slots import LABEL_PROB, LOSS, PRED, PROB, Slots


@dataclass
class Step:
    """What an objective sees of one iteration: one row per slot of the step (finished and idle slots
    included; their losses are ignored)."""

    adv: torch.Tensor  # rows x k x C x H x W adversarial selected frames
    clean: torch.Tensor  # rows x k x C x H x W
    ssim: torch.Tensor  # rows x k (1 on padding frames)
    logits: torch.Tensor  # rows x classes
    goal: torch.Tensor  # rows
    iters: torch.Tensor  # rows: updates applied so far
    params: dict[str, torch.Tensor]  # rows x k x ... (zero on padding frames)
    frame_idx: torch.Tensor  # rows x k
    frame_valid: torch.Tensor  # rows x k, False on padding frames
    num_frames: int  # T
    _l21: torch.Tensor | None = field(default=None, repr=False)

    @property
    def l21(self) -> torch.Tensor:
        """Per-pixel l2,1 norm of each row's perturbation (differentiable; computed when first asked for)."""
        if self._l21 is None:
            self._l21 = kernels.l21_norm(self.adv - self.clean)
        return self._l21


# Objective: Step -> per-row loss to minimise.
Objective = Callable[[Step], torch.Tensor]


class IntoClip(torch.autograd.Function):
    """Writes the adversarial frames into the clip buffer in place and hands the buffer on; the backward
    gathers the clip's gradient at those frames. Unlike a differentiable scatter into a copy of the clip, it
    moves only the ``k`` frames."""

    @staticmethod
    def forward(ctx, frames, clip, frame_idx):
        rows = torch.arange(clip.shape[0], device=clip.device).unsqueeze(1)
        clip[rows, frame_idx] = frames.to(clip.dtype)
        ctx.save_for_backward(frame_idx)
        ctx.mark_dirty(clip)
        return clip

    @staticmethod
    def backward(ctx, grad):
        (frame_idx,) = ctx.saved_tensors
        rows = torch.arange(grad.shape[0], device=grad.device).unsqueeze(1)
        return grad[rows, frame_idx], None, None


@dataclass
class StepSettings:
    model: object
    perturbation: object
    objective: Objective
    targeted: bool
    max_iters: int
    budget: Budget
    stop_on_success: bool
    refine: bool
    margin: float
    # Where a host read costs nothing (the CPU), the projection skips its bisection when no video needs it.
    host_reads_are_free: bool


def _masked(params: dict[str, torch.Tensor], scale: torch.Tensor) -> dict[str, torch.Tensor]:
    """Parameters with the padding frames held at zero (and given no gradient)."""
    return {name: value * scale for name, value in params.items()}


def attack_step(s: StepSettings, slots: Slots, width: int) -> None:
    """One iteration of the first ``width`` slots, in place."""
    w = width
    running, iters, goal = slots.running[:w], slots.iters[:w], slots.goal[:w]
    clean, frame_idx, scale = slots.clean[:w], slots.frame_idx[:w], slots.valid_scale(w)
    leaves = {name: value[:w].detach().requires_grad_() for name, value in slots.params.items()}
    params = _masked(leaves, scale)
    adv = s.perturbation.apply(clean, params)
    logits = s.model.logits(IntoClip.apply(adv, slots.clip[:w].detach(), frame_idx))
    ssim = kernels.ssim(adv, clean)
    step = Step(adv, clean, ssim, logits, goal, iters, params, frame_idx, slots.frame_valid[:w], slots.num_frames)
    loss = s.objective(step)

    with torch.no_grad():
        seen = logits.detach()
        slots.nonfinite[:w] |= running & ~torch.isfinite(seen).all(dim=1)
        l21 = step.l21.detach() if s.budget.max_l21 is not None or s.refine else None
        done = reached_goal(seen, goal, s.targeted) & s.budget.satisfied(ssim.detach(), l21)
        # With a margin, a video keeps going past the boundary; it still counts as fooled at the cap.
        settled = done & reached_goal(seen, goal, s.targeted, s.margin) if s.margin > 0 else done
        out_of_iters = iters >= s.max_iters
        finish = running & ((settled | out_of_iters) if s.stop_on_success else out_of_iters)
        probs = seen.float().softmax(-1)
        prob, pred = probs.max(-1)
        label_prob = probs.gather(1, slots.label[:w].unsqueeze(1)).squeeze(1)
        now = torch.stack([loss.detach().float(), pred.float(), prob, label_prob], 1)
        slots.record[:w] = torch.where(finish.unsqueeze(1), now, slots.record[:w])
        slots.record_ssim[:w] = torch.where(finish.unsqueeze(1), ssim.detach(), slots.record_ssim[:w])
        slots.success[:w] = torch.where(finish, done, slots.success[:w])
        if s.refine:
            _keep_best(slots, w, running & done, l21, now, ssim.detach(), params)
        keep = running & ~finish

    total = torch.where(keep, loss, torch.zeros_like(loss)).sum()
    grads = torch.autograd.grad(total, list(leaves.values()))
    with torch.no_grad():
        names = list(slots.params)
        kernels.masked_adam_multi_([slots.params[n][:w] for n in names], list(grads),
                                   [slots.moments[n][0][:w] for n in names], [slots.moments[n][1][:w] for n in names],
                                   iters, keep, [s.perturbation.learning_rates[n] for n in names])
        if s.budget.active:
            current = {name: slots.params[name][:w] for name in names}
            project_(s.budget, current, keep, lambda p: _distances(s, clean, _masked(p, scale)),
                     skip_when_inside=s.host_reads_are_free)
        slots.running[:w] = keep
        slots.finished[:w] |= finish


def _distances(s: StepSettings, clean: torch.Tensor, params: dict[str, torch.Tensor]):
    adv = s.perturbation.apply(clean, params)
    return kernels.ssim(adv, clean), (kernels.l21_norm(adv - clean) if s.budget.max_l21 is not None else None)


def _keep_best(slots: Slots, w: int, done: torch.Tensor, l21: torch.Tensor, now: torch.Tensor, ssim: torch.Tensor,
               params: dict[str, torch.Tensor]) -> None:
    """Refine mode: each video's first success and its smallest (l2,1) successful perturbation."""
    first = done & (slots.first_success[:w] < 0)
    slots.first_success[:w] = torch.where(first, slots.iters[:w], slots.first_success[:w])
    better = done & (l21 < slots.best_l21[:w])
    slots.best_l21[:w] = torch.where(better, l21, slots.best_l21[:w])
    slots.best_record[:w] = torch.where(better.unsqueeze(1), now, slots.best_record[:w])
    slots.best_ssim[:w] = torch.where(better.unsqueeze(1), ssim, slots.best_ssim[:w])
    for name, value in params.items():
        row = better.view(-1, *[1] * (value.dim() - 1))
        slots.best_params[name][:w] = torch.where(row, value.detach(), slots.best_params[name][:w])


__all__ = ["IntoClip", "Objective", "Step", "StepSettings", "attack_step", "LOSS", "PRED", "PROB", "LABEL_PROB"]
