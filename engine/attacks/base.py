"""What every sparse attack shares: settings checked before any work, the
clean classification that decides which videos are attacked, frame
selection, batched runs on :class:`~sava.attacks.loop.SparseAttackLoop`, and
the generator-based scoring that search selectors call.

An attack is a subclass that chooses a perturbation and an objective.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import torch

from ..errors import ConfigError, InputError
from ..kernels.reference import SSIM_WINDOW
from ..metrics import RunSummary, VideoResult, summarise
from ..models.adapter import check_videos
from ..selection import Selector, check_k, make_selector
from .loop import Budget, Job, SparseAttackLoop
from .losses import ADV_LOSSES


@dataclass
class AttackRun:
    results: list[VideoResult]
    summary: RunSummary
    settings: dict = field(default_factory=dict)


class SparseAttack:
    """Settings are validated in the constructor, before any work; ``run``
    holds no state between calls. Subclasses set ``method``, build
    ``self.perturbation`` and implement ``objective``."""

    method = "sparse-attack"

    def __init__(self, model, perturbation, *, frames: int, selector: str | Selector, max_iters: int,
                 min_ssim: float | None, max_l21: float | None, targeted: bool, adv_loss: str, batch_size: int,
                 seed: int, settings: dict):
        if not getattr(model, "white_box", False):
            raise ConfigError(
                f"{self.method} needs the gradients of its target; {getattr(model, 'name', model)!r} is a "
                "black-box model (generate on a white-box torch model and evaluate the transfer instead)"
            )
        if not isinstance(frames, int) or frames < 1:
            raise ConfigError(f"frames (the number of perturbed frames) must be a positive integer, got {frames!r}")
        if not isinstance(max_iters, int) or max_iters < 0:
            raise ConfigError(f"max_iters must be a non-negative integer, got {max_iters!r}")
        if min_ssim is not None and not 0 < min_ssim <= 1:
            raise ConfigError(f"min_ssim must lie in (0, 1], got {min_ssim}")
        if max_l21 is not None and not max_l21 > 0:
            raise ConfigError(f"max_l21 must be positive, got {max_l21}")
        if adv_loss not in ADV_LOSSES:
            raise ConfigError(f"unknown adversarial loss {adv_loss!r}; choose from {', '.join(ADV_LOSSES)}")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.model = model
        self.frames = frames
        self.selector = make_selector(selector, seed)
        self.perturbation = perturbation
        self.max_iters = max_iters
        self.budget = Budget(min_ssim, max_l21)
        self.targeted = targeted
        self.adv_loss = adv_loss
        self.batch_size = batch_size
        self.settings = {
            "method": self.method, "frames": frames, "selector": repr(self.selector), "max_iters": max_iters,
            "min_ssim": min_ssim, "max_l21": max_l21, "targeted": targeted, "adv_loss": adv_loss,
            "batch_size": batch_size, "seed": seed,
        } | settings

    def objective(self, adv, clean, ssim, logits, goal, iters) -> torch.Tensor:
        """Per-video loss to minimise; see :data:`sava.attacks.loop.Objective`."""
        raise NotImplementedError

    # ------------------------------------------------------------------ running
    def run(self, videos: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor | None = None,
            video_ids: list[str] | None = None) -> AttackRun:
        """Attack a batch of ``[0, 1]`` videos (``B x T x C x H x W``)."""
        check_videos(videos, labels)
        if video_ids is not None and len(video_ids) != len(videos):
            raise InputError(f"{len(video_ids)} video ids for {len(videos)} videos")
        if video_ids is not None and len(set(video_ids)) != len(video_ids):
            raise InputError("video ids must be unique")
        ids = video_ids or [f"video-{i:05d}" for i in range(len(videos))]
        target_list = [None] * len(videos) if targets is None else targets.tolist()
        items = zip(ids, videos, labels.tolist(), target_list)
        started = time.perf_counter()
        finished = {r.video_id: r for r in self.stream(items)}
        results = [finished[i] for i in ids]
        return AttackRun(results, summarise(results, time.perf_counter() - started), dict(self.settings))

    def stream(self, items: Iterable[tuple]) -> Iterator[VideoResult]:
        """Attack ``(video_id, video, label, target)`` items (``T x C x H x W``
        videos), yielding each result as soon as the video is finished.
        Items are read lazily, ``batch_size`` at a time."""
        loop = SparseAttackLoop(self.model, self.perturbation, self.objective, targeted=self.targeted,
                                max_iters=self.max_iters, budget=self.budget, capacity=self.batch_size)
        skipped: list[VideoResult] = []
        yield from loop.run(self._jobs(items, skipped))
        yield from skipped

    def _jobs(self, items: Iterable[tuple], skipped: list[VideoResult]) -> Iterator[Job]:
        chunk = []
        for item in items:
            chunk.append(item)
            if len(chunk) == self.batch_size:
                yield from self._prepare(chunk, skipped)
                chunk = []
        if chunk:
            yield from self._prepare(chunk, skipped)

    def _prepare(self, chunk: list[tuple], skipped: list[VideoResult]) -> Iterator[Job]:
        """Classify the clean clips, queue the videos the model gets right (the
        ones FR is measured over) and select their frames."""
        ids, videos, labels, targets = zip(*chunk)
        videos = torch.stack(list(videos))
        labels = torch.tensor(labels, dtype=torch.long)
        self._check_batch(videos, labels, targets)
        clean_pred = self.model.predict(videos)[0].cpu()
        queued = []
        for i, video_id in enumerate(ids):
            label, pred = int(labels[i]), int(clean_pred[i])
            target = None if targets[i] is None else int(targets[i])
            attacked = pred == label and (target is None or pred != target)
            result = VideoResult(video_id=video_id, label=label, clean_pred=pred, attacked=attacked, target=target,
                                 final_pred=pred)
            if attacked:
                queued.append((i, target if self.targeted else label, result))
            else:
                skipped.append(result)
        if not queued:
            return
        rows = torch.tensor([i for i, _, _ in queued])
        chosen, goals = videos[rows], torch.tensor([goal for _, goal, _ in queued])
        score = lambda frame_idx, steps: self.score(chosen, goals, frame_idx, steps)  # noqa: E731
        frame_idx = self.selector.select(self.model, chosen, labels[rows], self.frames, score=score).cpu()
        for slot, (_, goal, result) in enumerate(queued):
            yield Job(chosen[slot], frame_idx[slot], goal, result)

    def score(self, videos: torch.Tensor, goals: torch.Tensor, frame_idx: torch.Tensor, steps: int) -> torch.Tensor:
        """The objective each video reaches after ``steps`` updates from scratch on
        the frames ``frame_idx`` (``B x k``), with no early stop: how promising
        those frames are. All videos run in one batch, each on its own frames."""
        loop = SparseAttackLoop(self.model, self.perturbation, self.objective, targeted=self.targeted,
                                max_iters=steps, budget=self.budget, capacity=self.batch_size,
                                stop_on_success=False)
        jobs = [Job(videos[i], frame_idx[i], int(goals[i]), VideoResult(str(i), int(goals[i]), -1, True))
                for i in range(len(videos))]
        losses = {int(r.video_id): r.loss for r in loop.run(jobs)}
        return torch.tensor([losses[i] for i in range(len(videos))])

    def _check_batch(self, videos: torch.Tensor, labels: torch.Tensor, targets) -> None:
        check_videos(videos, labels)
        self.model.check_videos(videos)
        check_k(self.frames, videos.shape[1])
        height, width = videos.shape[-2:]
        if height < SSIM_WINDOW or width < SSIM_WINDOW:
            raise InputError(
                f"frames of {height} x {width} are smaller than the {SSIM_WINDOW} x {SSIM_WINDOW} SSIM window"
            )
        if self.targeted and any(t is None for t in targets):
            raise ConfigError("a targeted attack needs a target label for every video")
        classes = self.model.classes
        if classes is not None:
            wanted = labels.tolist() + [t for t in targets if t is not None]
            bad = [v for v in wanted if not 0 <= v < len(classes)]
            if bad:
                raise InputError(f"labels {bad} are outside the model's {len(classes)} classes")
