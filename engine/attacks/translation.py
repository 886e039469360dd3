"""Temporal translation (TT; Wei et al., AAAI 2022): gradient augmentation
along time for transferable video attacks.

    g = sum_{i=-L..L} W_i * unshift_i( grad loss(shift_i(x)) )

Each copy ``i`` reorders the clip's frames by a permutation ``p_i`` (copy
``i`` shows frame ``p_i[t]`` at position ``t``); its gradient is put back in
the original order by the inverse permutation, i.e. with the same offset it
was shifted with. The authors' code shifted the gradients of random and
remote shifting back with the adjacent offsets, misaligning them.

Shifting strategies:

* ``adjacent`` (the paper's default): cyclic shift by ``i`` frames;
* ``remote``: cyclic shift by ``i + T // 2``, copies far from the original
  order (the unshifted clip is not among them);
* ``random``: copy 0 is the clip, every other copy a random order of its
  frames, drawn afresh at each call.

Weights ``W`` (normalised to sum 1): ``uniform``; ``linear``,
``1 - |i| / (L + 1)``; ``gaussian``, ``exp(-i^2 / (2 sigma^2))`` with
``sigma = L / sqrt(3)`` (the paper's default, like TI's kernel).

Since a gather is differentiable, ``grad_x sum_i W_i loss(x[:, p_i])`` *is*
the augmented gradient: autograd scatters each copy's gradient back through
its own permutation.
"""

from __future__ import annotations

import math

import torch

from ..errors import ConfigError

WEIGHTINGS = ("gaussian", "linear", "uniform")
STRATEGIES = ("adjacent", "remote", "random")


def translation_weights(shift: int, kind: str = "gaussian") -> torch.Tensor:
    """``2L + 1`` weights for the offsets ``-L .. L``, summing to 1."""
    offsets = torch.arange(-shift, shift + 1, dtype=torch.float64)
    if kind == "uniform":
        weights = torch.ones_like(offsets)
    elif kind == "linear":
        weights = 1 - offsets.abs() / (shift + 1)
    elif kind == "gaussian":
        sigma = shift / math.sqrt(3) if shift > 0 else 1.0
        weights = torch.exp(-(offsets**2) / (2 * sigma**2))
    else:
        raise ConfigError(f"unknown TT weighting {kind!r}; choose from {', '.join(WEIGHTINGS)}")
    return (weights / weights.sum()).float()


class TemporalTranslation:
    def __init__(self, shift: int = 7, weights: str = "gaussian", strategy: str = "adjacent", seed: int = 0):
        if not isinstance(shift, int) or shift < 0:
            raise ConfigError(f"the TT shift length L must be a non-negative integer, got {shift!r}")
        if strategy not in STRATEGIES:
            raise ConfigError(f"unknown TT shifting strategy {strategy!r}; choose from {', '.join(STRATEGIES)}")
        self.shift, self.strategy, self.weighting = shift, strategy, weights
        self.weights = translation_weights(shift, weights)
        self.generator = torch.Generator().manual_seed(seed)

    @property
    def copies(self) -> int:
        return 2 * self.shift + 1

    def permutations(self, num_frames: int) -> torch.Tensor:
        """``copies x T``: row ``i`` is the frame order of copy ``i - L``."""
        positions = torch.arange(num_frames)
        rows = []
        for offset in range(-self.shift, self.shift + 1):
            if self.strategy == "random" and offset != 0:
                rows.append(torch.randperm(num_frames, generator=self.generator))
                continue
            moved = offset + (num_frames // 2 if self.strategy == "remote" else 0)
            rows.append((positions - moved) % num_frames)  # torch.roll(x, moved, dims=1) shows frame t - moved at t
        return torch.stack(rows)

    def loss(self, loss_of, videos: torch.Tensor) -> torch.Tensor:
        """``sum_i W_i loss_of(videos[:, p_i])`` (per video); its gradient is the TT gradient."""
        total = 0.0
        for weight, order in zip(self.weights.tolist(), self.permutations(videos.shape[1])):
            total = total + weight * loss_of(videos[:, order.to(videos.device)])
        return total

    def __repr__(self) -> str:
        return f"TT(L={self.shift}, {self.weighting}, {self.strategy})"
