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
from ..models.protocols import AttackedModel
from .budget import Budget, project_
from .losses import reached_goal
from .perturbations import Perturbation
from .slots import Slots, SlotViews


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
    max_iters: int = 0  # the loop's iteration cap (iters never exceed it)
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
    moves only the ``k`` frames. ``rows`` is ``arange(B)`` as a column, made by the caller once."""

    @staticmethod
    def forward(ctx, frames, clip, frame_idx, rows):
        clip[rows, frame_idx] = frames.to(clip.dtype)
        ctx.save_for_backward(frame_idx, rows)
        ctx.mark_dirty(clip)
        return clip

    @staticmethod
    def backward(ctx, grad):
        frame_idx, rows = ctx.saved_tensors
        return grad[rows, frame_idx], None, None, None


@dataclass
class StepSettings:
    model: AttackedModel
    perturbation: Perturbation
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


def attack_step(settings: StepSettings, slots: Slots, width: int) -> None:
    """One iteration of the first ``width`` slots, in place."""
    views = slots.prefix(width)
    leaves = {name: value.detach().requires_grad_() for name, value in views.params.items()}
    # Masking matters only where some video has padding frames (the host knows: no read).
    params = _masked(leaves, views.scale) if slots.padded else leaves
    adv = settings.perturbation.apply(views.clean, params)
    logits = settings.model.logits(IntoClip.apply(adv, views.clip.detach(), views.frame_idx, views.rows))
    ssim = kernels.ssim(adv, views.clean)
    step = Step(adv, views.clean, ssim, logits, views.goal, views.iters, params, views.frame_idx, views.frame_valid,
                slots.num_frames, settings.max_iters)
    loss = settings.objective(step)
    slots.ensure_record(logits.shape[1])
    views = slots.prefix(width)

    with torch.no_grad():
        seen, ssim = logits.detach(), ssim.detach()
        l21 = step.l21.detach() if settings.budget.max_l21 is not None or settings.refine else None
        done = reached_goal(seen, views.goal, settings.targeted)
        if settings.budget.active:
            done &= settings.budget.satisfied(ssim, l21)
        # With a margin, a video keeps going past the boundary; it still counts as fooled at the cap.
        settled = done & reached_goal(seen, views.goal, settings.targeted, settings.margin) \
            if settings.margin > 0 else done
        out_of_iters = views.iters >= settings.max_iters
        finish = views.running & ((settled | out_of_iters) if settings.stop_on_success else out_of_iters)
        # Columns as slots.LOGITS names them (cat promotes the flag to the logits' float type).
        now = torch.cat([loss.detach().unsqueeze(1), done.unsqueeze(1), seen, ssim], 1)
        views.record.copy_(torch.where(finish.unsqueeze(1), now, views.record))
        if settings.refine:
            _keep_best(views, views.running & done, l21, now, params)
        keep = views.running & ~finish

    grads = torch.autograd.grad(torch.where(keep, loss, 0.0).sum(), list(leaves.values()))
    with torch.no_grad():
        names = list(views.params)
        kernels.masked_adam_multi_([views.params[n] for n in names], list(grads), [views.moments[n][0] for n in names],
                                   [views.moments[n][1] for n in names], views.iters, keep,
                                   [settings.perturbation.learning_rates[n] for n in names])
        if settings.budget.active:
            project_(settings.budget, views.params, keep,
                     lambda p, rows: _distances(settings, views.clean, _masked(p, views.scale), rows),
                     skip_when_inside=settings.host_reads_are_free)
        views.running.copy_(keep)
        views.finished |= finish


def _distances(settings: StepSettings, clean: torch.Tensor, params: dict[str, torch.Tensor], rows: torch.Tensor | None):
    """Per-frame SSIM and per-video l2,1 of the perturbation ``params`` make; rows outside ``rows`` unspecified."""
    adv = settings.perturbation.apply(clean, params, rows=rows)
    ssim = kernels.ssim(adv, clean, rows=rows)
    return ssim, (kernels.l21_norm(adv - clean) if settings.budget.max_l21 is not None else None)


def _keep_best(views: SlotViews, done: torch.Tensor, l21: torch.Tensor, now: torch.Tensor,
               params: dict[str, torch.Tensor]) -> None:
    """Refine mode: each video's first success and its smallest (l2,1) successful perturbation."""
    first = done & (views.first_success < 0)
    views.first_success.copy_(torch.where(first, views.iters, views.first_success))
    better = done & (l21 < views.best_l21)
    views.best_l21.copy_(torch.where(better, l21, views.best_l21))
    views.best_record.copy_(torch.where(better.unsqueeze(1), now, views.best_record))
    for name, value in params.items():
        row = better.view(-1, *[1] * (value.dim() - 1))
        views.best_params[name].copy_(torch.where(row, value.detach(), views.best_params[name]))


__all__ = ["IntoClip", "Objective", "Step", "StepSettings", "attack_step"]
