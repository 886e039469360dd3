"""Frame selection by searching with the attack's own generator.

Both selectors score a candidate set of k frames by running the generator for
a few Adam steps from scratch on those frames and reading the objective it
reaches (``score`` from the attack; lower is better for the attacker). Every
video of the batch evaluates its own candidate in the same batched run.

* ``BruteForce`` scores every candidate: the upper bound of DeepSAVA's Table 8.
* ``BayesOpt`` (DeepSAVA Alg. 1): a Gaussian-process surrogate over frame
  masks (botorch's ``SingleTaskGP``, one independent GP per video, as one
  batched model at its priors' hyperparameters) and expected improvement pick
  each video's next candidate; after at most ``evaluations`` candidates the best
  one is returned for the full attack, and a video stops searching once a candidate fools the model.
  Each video's first candidate is its gradient-saliency pick (one batched forward and backward) and
  every later one the surrogate's; ``start="random"`` (``bo:random``, the paper's setting) draws the
  first two at random instead. With 4 candidates this searches in 0.13-0.25x of brute force's time on
  the bundled models, nearly 0.25x where almost no candidate fools during scoring (``benchmarks/bo_cost.py``).
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
# Frames: how far along time the surrogate's inputs spread a chosen frame. 2.5 reached brute force's outcome
# most often among 1.5 to 3.5 on 96 clips per LSTM model (the models where BO and brute force differ most),
# disjoint from those benchmarks/bo_cost.py reports on.
TEMPORAL_SIGMA = 2.5
FOOLED = 1e3  # added to the loss of a candidate that did not fool the model, when ranking candidates


def _unpack(scored) -> tuple[torch.Tensor, torch.Tensor]:
    """A score's losses and whether each candidate fooled the model (a score that returns losses alone
    reports no candidate as fooling)."""
    losses, fooled = scored if isinstance(scored, tuple) else (scored, torch.zeros(len(scored), dtype=torch.bool))
    return losses.double().cpu(), fooled.bool().cpu()


def _rank(losses: torch.Tensor, fooled: torch.Tensor) -> torch.Tensor:
    """Lower is better: a candidate that fooled the model before every one that did not, then by loss."""
    return losses + FOOLED * (~fooled)


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

    def settings(self) -> dict:
        return {"score_steps": self.steps}

    def select(self, model, videos, labels, k, score=None):
        _need_score(score, self.name)
        num_frames = videos.shape[1]
        check_k(k, num_frames)
        if math.comb(num_frames, k) > self.max_subsets:
            raise ConfigError(f"brute force over C({num_frames}, {k}) = {math.comb(num_frames, k)} frame sets is "
                              f"more than {self.max_subsets}; use the bo selector")
        subsets = torch.tensor(list(itertools.combinations(range(num_frames), k)))
        losses, fooled = [], []
        for subset in subsets:
            loss, fool = _unpack(score(subset.expand(len(videos), k), self.steps))
            losses.append(loss)
            fooled.append(fool)
            self._scored(len(losses), len(subsets), len(videos))
        self.losses, self.fooled = torch.stack(losses, dim=1), torch.stack(fooled, dim=1)  # B x candidates
        self.evaluations = len(subsets)
        self.queries = self.evaluations * (self.steps + 1)  # each scoring run: steps updates and a last forward
        return subsets[_rank(self.losses, self.fooled).argmin(dim=1)]


class BayesOpt(Selector):
    """Bayesian optimisation over k-frame masks with expected improvement."""

    name = "bo"

    def __init__(self, evaluations: int = 4, initial: int | None = None, steps: int = 10, seed: int = 0,
                 start: str = "saliency"):
        # Candidates scored before the surrogate picks: the saliency pick alone (a random second one, as
        # before, reached brute force's outcome less often), or two random ones.
        initial = (1 if start == "saliency" else 2) if initial is None else initial
        if not 1 <= initial <= evaluations:
            raise ConfigError(f"BO needs 1 <= initial ({initial}) <= evaluations ({evaluations})")
        if start not in ("random", "saliency"):
            raise ConfigError(f"BO starts from a random or the saliency candidate, not {start!r}")
        self.start = start
        if steps < 1:
            raise ConfigError(f"scoring steps must be >= 1, got {steps}")
        self.budget, self.initial, self.steps = evaluations, initial, steps
        self.seed = seed
        self.generator = torch.Generator().manual_seed(seed)
        self.evaluations = 0

    def settings(self) -> dict:
        return {"evaluations": self.budget, "initial": self.initial, "score_steps": self.steps, "seed": self.seed,
                "start": self.start, "temporal_sigma": TEMPORAL_SIGMA}

    def select(self, model, videos, labels, k, score=None):
        _need_score(score, self.name)
        batch, num_frames = videos.shape[:2]
        check_k(k, num_frames)
        total = math.comb(num_frames, k)
        budget = min(self.budget, total)
        tried = torch.empty(batch, 0, k, dtype=torch.long)
        losses = torch.empty(batch, 0, dtype=torch.float64)
        fooled = torch.empty(batch, 0, dtype=torch.bool)
        # A video whose candidate fooled the model is done: no search finds better, and the attack from that
        # candidate fools it too. Later steps repeat its best candidate without scoring it (the surrogate's
        # batched inputs keep one shape), and the search ends when every video is done.
        done = torch.zeros(batch, dtype=torch.bool)
        spent = torch.zeros(batch, dtype=torch.long)
        for step in range(budget):
            if done.all():
                break
            pool = self._pool(num_frames, k, total)
            if step == 0 and self.start == "saliency":
                from .saliency import frame_weights

                pick = frame_weights(model, videos, labels).topk(k, dim=1).indices.sort(dim=1).values.cpu()
            elif step < self.initial:
                pick = self._random_untried(pool, tried)
            else:
                pick = self._most_promising(pool, tried, losses, num_frames)
            loss, fool = torch.zeros(batch, dtype=torch.float64), torch.zeros(batch, dtype=torch.bool)
            if done.any():  # the done videos repeat their best so far, unscored
                best = _rank(losses, fooled).argmin(dim=1)
                loss, fool = losses[torch.arange(batch), best], fooled[torch.arange(batch), best]
                pick = torch.where(done.view(-1, 1), tried[torch.arange(batch), best], pick)
            active = (~done).nonzero().squeeze(1)
            scored = score(pick, self.steps) if len(active) == batch else \
                score(pick[active], self.steps, rows=active)
            loss[active], fool[active] = _unpack(scored)
            spent[active] += 1
            done |= fool
            tried = torch.cat([tried, pick.unsqueeze(1)], dim=1)
            losses = torch.cat([losses, loss.unsqueeze(1)], dim=1)
            fooled = torch.cat([fooled, fool.unsqueeze(1)], dim=1)
            self._scored(step + 1, budget, batch)
        self.evaluations = int(spent.max())  # candidates scored for the video that needed the most
        self.spent = spent
        self.queries = self.evaluations * (self.steps + 1) + (self.start == "saliency")
        self.losses, self.fooled, self.tried = losses, fooled, tried
        return tried[torch.arange(batch), _rank(losses, fooled).argmin(dim=1)]

    def __repr__(self) -> str:
        return "bo" if self.start == "saliency" else "bo:random"

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
        from botorch.models import SingleTaskGP

        # One GP per video (a batched model); it maximises -loss. The inputs are blurred masks in a
        # known range and SingleTaskGP standardises the outcomes itself, so botorch's reminders are noise.
        # Its kernel keeps the hyperparameters of botorch's priors: with two to five observations per video a
        # maximum-likelihood fit is ill-determined, and it cost about a second per step, as much as scoring a
        # candidate on the small bundled models (benchmarks/results/bo_cost.jsonl).
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", InputDataWarning)
            model = SingleTaskGP(_features(tried, num_frames), -losses.unsqueeze(-1)).eval()
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
