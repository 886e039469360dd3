"""What every attack shares, and the sparse attacks' common part.

* :class:`Attack`: settings checked before any work, ``run`` over a tensor of
  videos or ``stream`` over lazily read items, and the clean classification
  that decides which videos are attacked (the ones FR is measured over).
* :class:`SparseAttack`: frame selection, batched runs on
  :class:`~sava.attacks.loop.SparseAttackLoop`, and the generator-based
  scoring that search selectors call. A sparse attack is a subclass that
  chooses a perturbation and an objective.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import torch

from ..errors import ConfigError, InputError
from ..kernels.reference import SSIM_WINDOW
from ..metrics import RunSummary, VideoResult, summarise
from ..models.adapter import VideoModel, check_finite_logits, check_videos
from ..selection import Selector, check_k, make_selector
from .budget import Budget
from .loop import SparseAttackLoop
from .losses import ADV_LOSSES
from .slots import Job
from .step import Step


@dataclass
class AttackRun:
    results: list[VideoResult]
    summary: RunSummary
    settings: dict = field(default_factory=dict)


@dataclass
class Queued:
    """The videos of one chunk that the model classifies correctly."""

    videos: torch.Tensor  # B x T x C x H x W
    labels: torch.Tensor  # B, true labels
    goals: torch.Tensor  # B: the true label (untargeted) or the target
    results: list[VideoResult]


class Attack:
    """Settings are validated in the constructor, before any work; ``run``
    holds no state between calls. Subclasses implement ``stream``."""

    method = "attack"

    def __init__(self, model, *, targeted: bool, batch_size: int, seed: int, settings: dict):
        if isinstance(model, torch.nn.Module):
            # A bare module is taken as torchattacks takes one: B x T x C x H x W in [0, 1] to logits, with
            # no normalisation of its own. A ``VideoModel`` gives it another layout or a mean and std.
            model = VideoModel(model)
        if not getattr(model, "white_box", False):
            raise ConfigError(
                f"{self.method} needs the gradients of its target; {getattr(model, 'name', model)!r} is a "
                "black-box model (generate on a white-box torch model and evaluate the transfer instead)"
            )
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.model = model
        self.targeted = bool(targeted)
        self.batch_size = batch_size
        self.seed = seed
        self.settings = {"method": self.method, "targeted": self.targeted, "batch_size": batch_size,
                         "seed": seed} | settings

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

    def __call__(self, videos: torch.Tensor, labels: torch.Tensor,
                 targets: torch.Tensor | None = None) -> torch.Tensor:
        """The adversarial clips (``B x T x C x H x W``, on the clips' device), as attack libraries return them:
        ``x_adv = attack(videos, labels)``. A video the model already misclassifies comes back unchanged; a
        failed attack comes back with its last perturbation. ``run`` gives the per-video results instead."""
        from ..transfer import replay  # transfer builds on the attacks' results, not the other way round

        run = self.run(videos, labels, targets)
        return torch.stack([replay(video, result) for video, result in zip(videos, run.results)])

    def stream(self, items: Iterable[tuple]) -> Iterator[VideoResult]:
        """Attack ``(video_id, video, label, target)`` items (``T x C x H x W``
        videos), yielding each result as soon as the video is finished.
        Items are read lazily, ``batch_size`` at a time."""
        raise NotImplementedError

    def _chunks(self, items: Iterable[tuple]) -> Iterator[list[tuple]]:
        chunk = []
        for item in items:
            chunk.append(item)
            if len(chunk) == self.batch_size:
                yield chunk
                chunk = []
        if chunk:
            yield chunk

    def _classify(self, chunk: list[tuple], skipped: list[VideoResult]) -> Queued | None:
        """Classify the clean clips; the videos the model gets right are queued,
        the others go to ``skipped`` (not attacked, not counted in FR)."""
        ids, videos, labels, targets = zip(*chunk)
        videos = torch.stack(list(videos))
        labels = torch.tensor(labels, dtype=torch.long)
        self._check_batch(videos, labels, targets)
        clean_pred, probs = self.model.predict(videos)
        check_finite_logits(self.model, probs, list(ids), "clean")
        clean_pred = clean_pred.cpu()
        rows, goals, results = [], [], []
        for i, video_id in enumerate(ids):
            label, pred = int(labels[i]), int(clean_pred[i])
            target = None if targets[i] is None else int(targets[i])
            attacked = pred == label and (target is None or pred != target)
            result = VideoResult(video_id=video_id, label=label, clean_pred=pred, attacked=attacked, target=target,
                                 final_pred=pred, num_frames=videos.shape[1])
            if attacked:
                rows.append(i)
                goals.append(target if self.targeted else label)
                results.append(result)
            else:
                skipped.append(result)
        if not rows:
            return None
        rows = torch.tensor(rows)
        return Queued(videos[rows], labels[rows], torch.tensor(goals), results)

    def _check_batch(self, videos: torch.Tensor, labels: torch.Tensor, targets) -> None:
        check_videos(videos, labels)
        self.model.check_videos(videos)
        if self.targeted and any(t is None for t in targets):
            raise ConfigError("a targeted attack needs a target label for every video")
        classes = self.model.classes
        if classes is not None:
            wanted = labels.tolist() + [t for t in targets if t is not None]
            bad = [v for v in wanted if not 0 <= v < len(classes)]
            if bad:
                raise InputError(f"labels {bad} are outside the model's {len(classes)} classes")


class SparseAttack(Attack):
    """Subclasses set ``method``, pass a perturbation and implement ``objective``.

    ``margin`` (logits, default 0): a video stops only once its success holds by that much, instead of
    just past the decision boundary; perturbations that must survive a change of model (transfer) or of
    pixels (compression) want one. A video that crosses the boundary but not the margin by the cap still
    counts as fooled."""

    method = "sparse-attack"
    refine = False  # run every video to the cap and keep its smallest success (see SparseAttackLoop)
    # False: a success does not stop a video, every video runs exactly ``max_iters`` steps (throughput
    # measured at a fixed number of steps; the result still records the first success).
    stop_on_success = True
    # Steps between two host reads of which videos finished (see SparseAttackLoop): results do not depend on it.
    poll_every = 1
    # On CUDA, each step captured once as a CUDA graph and replayed (None: unless SAVA_CUDA_GRAPHS=0).
    cuda_graphs: bool | None = None
    # Read the finished flags one step late (None: on CUDA) and step the slots in power-of-two widths (None:
    # when replaying graphs). Results depend on neither; the tests turn them on to show it on the CPU.
    lagged_poll: bool | None = None
    round_widths: bool | None = None

    def __init__(self, model, perturbation, *, frames: int | None, selector: str | Selector, max_iters: int,
                 min_ssim: float | None, max_l21: float | None, targeted: bool, adv_loss: str, batch_size: int,
                 seed: int, settings: dict, margin: float = 0.0):
        selector = make_selector(selector, seed)
        if frames is None and not selector.adaptive:
            raise ConfigError(f"frames=None (a number of frames per video of the selector's choosing) needs an "
                              f"adaptive selector such as keyframes; {selector!r} takes a fixed k")
        if frames is not None and (not isinstance(frames, int) or frames < 1):
            raise ConfigError(f"frames (the number of perturbed frames) must be a positive integer, got {frames!r}")
        if not isinstance(max_iters, int) or max_iters < 0:
            raise ConfigError(f"max_iters must be a non-negative integer, got {max_iters!r}")
        if min_ssim is not None and not 0 < min_ssim <= 1:
            raise ConfigError(f"min_ssim must lie in (0, 1], got {min_ssim}")
        if max_l21 is not None and not max_l21 > 0:
            raise ConfigError(f"max_l21 must be positive, got {max_l21}")
        if not isinstance(margin, (int, float)) or margin < 0:
            raise ConfigError(f"margin (logits by which a success must hold before a video stops) must be >= 0, "
                              f"got {margin!r}")
        if adv_loss not in ADV_LOSSES:
            raise ConfigError(f"unknown adversarial loss {adv_loss!r}; choose from {', '.join(ADV_LOSSES)}")
        super().__init__(model, targeted=targeted, batch_size=batch_size, seed=seed, settings={
            "frames": frames, "selector": repr(selector), "max_iters": max_iters, "min_ssim": min_ssim,
            "max_l21": max_l21, "adv_loss": adv_loss} | settings
            # Recorded only when set, so that run folders from before the option still resume.
            | ({"margin": float(margin)} if margin else {})
            # A search selector's own settings: a folder made under another search (BO's settings changed
            # with this record's introduction) refuses to resume rather than mixing two searches' picks.
            | ({"selection": selection} if (selection := selector.settings()) else {}))
        self.frames = frames
        self.selector = selector
        self.selection_seconds = 0.0  # wall time inside the selector, over every batch so far
        self.perturbation = perturbation
        self.max_iters = max_iters
        self.budget = Budget(min_ssim, max_l21)
        self.adv_loss = adv_loss
        self.margin = float(margin)
        self._scoring_loops: dict[int, SparseAttackLoop] = {}

    def objective(self, step: Step) -> torch.Tensor:
        """Per-video loss to minimise; see :class:`sava.attacks.loop.Step`."""
        raise NotImplementedError

    def stream(self, items: Iterable[tuple]) -> Iterator[VideoResult]:
        loop = SparseAttackLoop(self.model, self.perturbation, self.objective, targeted=self.targeted,
                                max_iters=self.max_iters, budget=self.budget, capacity=self.batch_size,
                                stop_on_success=self.stop_on_success, refine=self.refine, margin=self.margin,
                                **self._loop_options())
        skipped: list[VideoResult] = []
        yield from loop.run(self._jobs(items, skipped))
        yield from skipped

    def _jobs(self, items: Iterable[tuple], skipped: list[VideoResult]) -> Iterator[Job]:
        for chunk in self._chunks(items):
            queued = self._classify(chunk, skipped)
            if queued is not None:
                yield from self._select(queued)

    def _select(self, queued: Queued) -> Iterator[Job]:
        """Each queued video's frames, as jobs for the loop."""
        def score(frame_idx, steps, rows=None):
            if rows is None:
                return self.score(queued.videos, queued.goals, frame_idx, steps)
            return self.score(queued.videos[rows], queued.goals[rows], frame_idx, steps)

        started = time.perf_counter()
        frame_idx = self.selector.select(self.model, queued.videos, queued.labels, self.frames, score=score).cpu()
        self.selection_seconds += time.perf_counter() - started
        for slot, result in enumerate(queued.results):
            result.queries = self.selector.queries
            frames = frame_idx[slot]
            yield Job(queued.videos[slot], frames[frames >= 0], int(queued.goals[slot]), result)  # adaptive: -1 pads

    def score(self, videos: torch.Tensor, goals: torch.Tensor, frame_idx: torch.Tensor,
              steps: int) -> tuple[torch.Tensor, torch.Tensor]:
        """How promising the frames ``frame_idx`` (``B x k``) are: each video runs up to ``steps`` updates
        from scratch on its own frames, all in one batch. Returns the objective each reached (lower is better
        for the attacker) and whether the candidate already fooled the model, at which point that video
        stopped (a candidate that fools is as good as a search can find; the attack from it fools too)."""
        loop = self._scoring_loop(steps)
        jobs = [Job(videos[i], frame_idx[i], int(goals[i]), VideoResult(str(i), int(goals[i]), -1, True))
                for i in range(len(videos))]
        results = {int(r.video_id): r for r in loop.run(jobs)}
        losses = torch.tensor([results[i].loss for i in range(len(videos))])
        return losses, torch.tensor([results[i].success for i in range(len(videos))])

    def _loop_options(self) -> dict:
        return {"poll_every": self.poll_every, "cuda_graphs": self.cuda_graphs, "lagged_poll": self.lagged_poll,
                "round_widths": self.round_widths}

    def _scoring_loop(self, steps: int) -> SparseAttackLoop:
        """One loop per number of scoring steps, kept across candidates: its slots, and on CUDA the graphs
        captured on them, serve every candidate of the same shape (a new loop would capture anew each time)."""
        loops = self._scoring_loops
        if steps not in loops:
            loops[steps] = SparseAttackLoop(self.model, self.perturbation, self.objective, targeted=self.targeted,
                                            max_iters=steps, budget=self.budget, capacity=self.batch_size,
                                            stop_on_success=True, margin=self.margin, **self._loop_options())
        return loops[steps]

    def _check_batch(self, videos: torch.Tensor, labels: torch.Tensor, targets) -> None:
        super()._check_batch(videos, labels, targets)
        if self.frames is not None:
            check_k(self.frames, videos.shape[1])
        height, width = videos.shape[-2:]
        if height < SSIM_WINDOW or width < SSIM_WINDOW:
            raise InputError(
                f"frames of {height} x {width} are smaller than the {SSIM_WINDOW} x {SSIM_WINDOW} SSIM window"
            )

