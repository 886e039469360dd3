"""Frame selection by searching with the attack's own generator.

Both selectors score a candidate set of k frames by running the generator for
a few Adam steps from scratch on those frames and reading the objective it
reaches (``score`` from the attack; lower is better for the attacker). Every
video of the batch evaluates its own candidate in the same batched run.

* ``BruteForce`` scores every candidate: the upper bound of DeepSAVA's Table 8.
* ``BayesOpt`` (DeepSAVA Alg. 1): a Gaussian-process surrogate over frame
  masks (botorch's ``SingleTaskGP``, one independent GP per video, fitted as one
  batched model) and expected improvement pick each video's next candidate;
  after ``evaluations`` candidates the best one is returned for the full attack.
  ``start="saliency"`` makes each video's first candidate its gradient-saliency pick (one batched forward
  and backward) instead of a random one: measured, it helps where the frame that matters is easy to
  see from the gradient (README, "Frame selection").
  The authors' code scored with a single Adam step, too noisy to rank frames,
  and then never used the chosen frame; here the score uses ``steps`` steps and
  the choice is what the attack perturbs.
"""

from __future__ import annotations

import itertools
import math
import warnings

import torch

from ..errors import ConfigError
from . import Selector, check_k

MAX_CANDIDATES = 512  # beyond this many k-subsets, each BO step draws this many at random
TEMPORAL_SIGMA = 1.5  # frames: how far along time the surrogate's inputs spread a chosen frame


def _need_score(score, name: str) -> None:
    if score is None:
        raise ConfigError(f"the {name} selector scores frames with the attack's generator; "
                          "use it through an attack (for example DeepSAVA(selector=...))")


def _features(subsets: torch.Tensor, num_frames: int, sigma: float = TEMPORAL_SIGMA) -> torch.Tensor:
    """``... x k`` frame indices -> ``... x T`` GP inputs: the 0/1 frame mask
    blurred along time. On raw one-hot masks every two different frames are
    equally far apart and the surrogate cannot learn that neighbouring frames
    behave alike; blurred, nearby choices are near in input space."""
    masks = torch.zeros(*subsets.shape[:-1], num_frames, dtype=torch.float64).scatter_(-1, subsets, 1.0)
    t = torch.arange(num_frames, dtype=torch.float64)
    blur = torch.exp(-((t.view(-1, 1) - t.view(1, -1)) ** 2) / (2 * sigma**2))
    return masks @ blur


class BruteForce(Selector):
    """Every k-subset of frames, scored; the best per video."""

    name = "brute"

    def __init__(self, steps: int = 10, max_subsets: int = 256):
        if steps < 1:
            raise ConfigError(f"scoring steps must be >= 1, got {steps}")
        self.steps, self.max_subsets = steps, max_subsets
        self.evaluations = 0  # candidates scored per video in the last call

    def select(self, model, videos, labels, k, score=None):
        _need_score(score, self.name)
        num_frames = videos.shape[1]
        check_k(k, num_frames)
        if math.comb(num_frames, k) > self.max_subsets:
            raise ConfigError(f"brute force over C({num_frames}, {k}) = {math.comb(num_frames, k)} frame sets is "
                              f"more than {self.max_subsets}; use the bo selector")
        subsets = torch.tensor(list(itertools.combinations(range(num_frames), k)))
        scores = []
        for subset in subsets:
            scores.append(score(subset.expand(len(videos), k), self.steps))
            self._scored(len(scores), len(subsets), len(videos))
        losses = torch.stack(scores, dim=1)
        self.evaluations = len(subsets)
        self.queries = self.evaluations * (self.steps + 1)  # each scoring run: steps updates and a last forward
        self.losses = losses  # B x candidates, kept for reports (Table 8, Fig. 7)
        return subsets[losses.argmin(dim=1)]


class BayesOpt(Selector):
    """Bayesian optimisation over k-frame masks with expected improvement."""

    name = "bo"

    def __init__(self, evaluations: int = 6, initial: int = 2, steps: int = 10, seed: int = 0, start: str = "random"):
        if not 1 <= initial <= evaluations:
            raise ConfigError(f"BO needs 1 <= initial ({initial}) <= evaluations ({evaluations})")
        if start not in ("random", "saliency"):
            raise ConfigError(f"BO starts from a random or the saliency candidate, not {start!r}")
        self.start = start
        if steps < 1:
            raise ConfigError(f"scoring steps must be >= 1, got {steps}")
        self.budget, self.initial, self.steps = evaluations, initial, steps
        self.generator = torch.Generator().manual_seed(seed)
        self.evaluations = 0

    def select(self, model, videos, labels, k, score=None):
        _need_score(score, self.name)
        batch, num_frames = videos.shape[:2]
        check_k(k, num_frames)
        total = math.comb(num_frames, k)
        budget = min(self.budget, total)
        tried = torch.empty(batch, 0, k, dtype=torch.long)
        losses = torch.empty(batch, 0, dtype=torch.float64)
        for step in range(budget):
            pool = self._pool(num_frames, k, total)
            if step == 0 and self.start == "saliency":
                from .saliency import frame_weights

                pick = frame_weights(model, videos, labels).topk(k, dim=1).indices.sort(dim=1).values
            elif step < self.initial:
                pick = self._random_untried(pool, tried)
            else:
                pick = self._most_promising(pool, tried, losses, num_frames)
            tried = torch.cat([tried, pick.unsqueeze(1)], dim=1)
            losses = torch.cat([losses, score(pick, self.steps).double().unsqueeze(1)], dim=1)
            self._scored(step + 1, budget, batch)
        self.evaluations = budget
        self.queries = self.evaluations * (self.steps + 1) + (self.start == "saliency")
        self.losses, self.tried = losses, tried
        return tried[torch.arange(batch), losses.argmin(dim=1)]

    def __repr__(self) -> str:
        return "bo:saliency" if self.start == "saliency" else "bo"

    # -------------------------------------------------------------- candidates
    def _pool(self, num_frames: int, k: int, total: int) -> torch.Tensor:
        """Candidate k-subsets (sorted rows): all of them, or a random sample."""
        if total <= MAX_CANDIDATES:
            return torch.tensor(list(itertools.combinations(range(num_frames), k)))
        scores = torch.rand(MAX_CANDIDATES, num_frames, generator=self.generator)
        return scores.argsort(dim=1)[:, :k].sort(dim=1).values.unique(dim=0)

    @staticmethod
    def _untried(pool: torch.Tensor, tried: torch.Tensor) -> torch.Tensor:
        """``B x candidates``: True where the video has not scored that candidate yet."""
        if tried.shape[1] == 0:
            return torch.ones(tried.shape[0], len(pool), dtype=torch.bool)
        same = (pool.view(1, 1, -1, pool.shape[1]) == tried.unsqueeze(2)).all(dim=-1)  # B x tried x pool
        return ~same.any(dim=1)

    def _random_untried(self, pool, tried):
        weights = self._untried(pool, tried).double() + 1e-12
        return pool[torch.multinomial(weights, 1, generator=self.generator).squeeze(1)]

    def _most_promising(self, pool, tried, losses, num_frames):
        from botorch.exceptions import InputDataWarning
        from botorch.fit import fit_gpytorch_mll
        from botorch.models import SingleTaskGP
        from gpytorch.mlls import ExactMarginalLogLikelihood

        # One GP per video (a batched model); it maximises -loss. The inputs are blurred masks in a
        # known range and SingleTaskGP standardises the outcomes itself, so botorch's reminders are noise.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", InputDataWarning)
            model = SingleTaskGP(_features(tried, num_frames), -losses.unsqueeze(-1))
            fit_gpytorch_mll(ExactMarginalLogLikelihood(model.likelihood, model))
        candidates = _features(pool, num_frames).expand(len(tried), -1, -1)
        with torch.no_grad():
            posterior = model.posterior(candidates)
        mean = posterior.mean.squeeze(-1)
        sigma = posterior.variance.squeeze(-1).clamp_min(1e-12).sqrt()
        best = (-losses).max(dim=1, keepdim=True).values
        # Expected improvement over the best score so far: sigma * (u Phi(u) + phi(u)), u = (mean - best) / sigma.
        u = (mean - best) / sigma
        normal = torch.distributions.Normal(0.0, 1.0)
        improvement = sigma * (u * normal.cdf(u) + normal.log_prob(u).exp())
        improvement = improvement.masked_fill(~self._untried(pool, tried), float("-inf"))
        return pool[improvement.argmax(dim=1)]
