"""Frame selection: which k frames of each video a sparse attack perturbs.

A selector answers ``select(model, videos, labels, k, score=None) -> B x k``
int64 frame indices (distinct within a row). Any sparse attack takes any
selector. An *adaptive* selector chooses each video's number of frames
itself (``k`` is then a cap, or ``None``): its rows are padded with -1.
After a call, ``queries`` is the number of forward passes of the target it
spent per video (MQ counts them). ``score(frame_idx, steps) -> B`` losses, when the attack passes it, runs
the attack's own generator for a few steps on candidate frames (lower is
better for the attacker): Bayesian optimisation and brute force use it.
"""

from __future__ import annotations

import torch

from ..errors import ConfigError


class Selector:
    name = "selector"
    adaptive = False
    queries = 0
    # Search selectors call progress(scored, total, videos) after each candidate they score for a batch
    # (the runner's "frame search" bar): scoring is most of their time, and nothing else shows it.
    progress = None

    def _scored(self, scored: int, total: int, videos: int) -> None:
        if self.progress is not None:
            self.progress(scored, total, videos)

    def select(self, model, videos: torch.Tensor, labels: torch.Tensor, k: int, score=None) -> torch.Tensor:
        raise NotImplementedError

    def settings(self) -> dict:
        """What, beyond its name, decides this selector's picks (recorded with a run, so that a run folder
        resumes only under the same search); empty for the selectors the name fully describes."""
        return {}

    def __repr__(self) -> str:
        return self.name


def check_k(k: int, num_frames: int) -> None:
    if not isinstance(k, int) or k < 1:
        raise ConfigError(f"the number of perturbed frames must be a positive integer, got {k!r}")
    if k > num_frames:
        raise ConfigError(f"cannot perturb k={k} frames of a clip with only T={num_frames} frames")


class FirstK(Selector):
    """The first k frames: the paper's "without BO" setting."""

    name = "first"

    def select(self, model, videos, labels, k, score=None):
        check_k(k, videos.shape[1])
        return torch.arange(k).expand(videos.shape[0], k).clone()


class AllFrames(Selector):
    """Every frame of the clip (the first ``k`` when a cap is given): the dense setting, as flickering
    attacks perturb the whole clip (Pony et al. 2021)."""

    name = "all"
    adaptive = True  # its k is the clip's length, known only once the videos are

    def select(self, model, videos, labels, k, score=None):
        count = videos.shape[1] if k is None else min(k, videos.shape[1])
        return torch.arange(count).expand(videos.shape[0], count).clone()


class RandomK(Selector):
    """k distinct frames drawn uniformly per video, reproducible from a seed."""

    name = "random"

    def __init__(self, seed: int = 0):
        self.generator = torch.Generator().manual_seed(seed)

    def select(self, model, videos, labels, k, score=None):
        check_k(k, videos.shape[1])
        scores = torch.rand(videos.shape[0], videos.shape[1], generator=self.generator)
        return scores.argsort(dim=1)[:, :k].sort(dim=1).values


class Explicit(Selector):
    """The same given frame indices for every video."""

    name = "explicit"

    def __init__(self, indices):
        self.indices = [int(i) for i in indices]
        if len(set(self.indices)) != len(self.indices) or any(i < 0 for i in self.indices):
            raise ConfigError(f"explicit frame indices must be distinct and non-negative, got {self.indices}")

    def select(self, model, videos, labels, k, score=None):
        num_frames = videos.shape[1]
        if len(self.indices) != k:
            raise ConfigError(f"{len(self.indices)} explicit frame indices given for k={k} frames")
        bad = [i for i in self.indices if i >= num_frames]
        if bad:
            raise ConfigError(f"frame indices {bad} are outside a clip of T={num_frames} frames")
        return torch.tensor(self.indices).expand(videos.shape[0], k).clone()

    def __repr__(self) -> str:
        return ",".join(map(str, self.indices))


def make_selector(spec, seed: int = 0, evaluations: int = 4, score_steps: int = 10) -> Selector:
    """``"first"``, ``"all"`` (every frame), ``"random"``, ``"saliency"``, ``"keyframes"`` (adaptive, boundary 0.3) or
    ``"keyframes:B"``, ``"ifd"``, ``"bo"`` (BO whose first candidate is the saliency pick; ``"bo:saliency"``
    says the same) or ``"bo:random"`` (a random first candidate), ``"brute"``, or frame indices such as
    ``"0,7"``."""
    if isinstance(spec, Selector):
        return spec
    if spec == "saliency":
        from .saliency import Saliency

        return Saliency()
    if str(spec).startswith("keyframes"):
        from .saliency import Keyframes

        _, _, boundary = str(spec).partition(":")
        try:
            return Keyframes(float(boundary)) if boundary else Keyframes()
        except ValueError:
            raise ConfigError(f"keyframes takes a boundary in (0, 1], as keyframes:0.3; got {spec!r}") from None
    if spec == "ifd":
        from .difference import InterFrameDifference

        return InterFrameDifference()
    if spec == "brute":
        from .search import BruteForce

        return BruteForce(steps=score_steps)
    if spec in ("bo", "bo:saliency", "bo:random"):
        from .search import BayesOpt

        return BayesOpt(evaluations=evaluations, steps=score_steps, seed=seed,
                        start=spec.partition(":")[2] or "saliency")
    if spec == "first":
        return FirstK()
    if spec == "all":
        return AllFrames()
    if spec == "random":
        return RandomK(seed)
    parts = str(spec).split(",")
    if all(p.strip().isdigit() for p in parts):
        return Explicit(int(p) for p in parts)
    raise ConfigError(f"unknown frame selector {spec!r}; "
                      "use first, all, random, saliency, keyframes[:B], ifd, bo, bo:random, brute, or frame indices "
                      "such as 0,7")
