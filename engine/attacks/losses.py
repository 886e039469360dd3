"""Adversarial terms. Each returns, per video, the quantity the attack
*maximises*; the attack objective (minimised) subtracts it."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import ConfigError

ADV_LOSSES = ("ce", "log1mp")


def adversarial_term(logits: torch.Tensor, goal: torch.Tensor, targeted: bool, kind: str = "ce") -> torch.Tensor:
    """* untargeted ``ce``: cross-entropy of the true label (push it down);
    * untargeted ``log1mp``: ``log(1 - p_y)``, i.e. the objective carries the
      ``-log(1 - p_y)`` of the authors' code, computed stably from logits;
    * targeted: minus the cross-entropy of the target label (pull it up).
    """
    if targeted:
        return -F.cross_entropy(logits, goal, reduction="none")
    if kind == "ce":
        return F.cross_entropy(logits, goal, reduction="none")
    if kind == "log1mp":
        others = logits.scatter(1, goal.unsqueeze(1), float("-inf"))
        return others.logsumexp(1) - logits.logsumexp(1)
    raise ConfigError(f"unknown adversarial loss {kind!r}; choose from {', '.join(ADV_LOSSES)}")


def reached_goal(logits: torch.Tensor, goal: torch.Tensor, targeted: bool, margin: float = 0.0) -> torch.Tensor:
    """Whether each video is classified as the attack wants. With ``margin`` > 0, by at least that many
    logits: the goal class above every other (targeted), or some other class above the true one."""
    if margin <= 0:
        pred = logits.argmax(-1)
        return pred == goal if targeted else pred != goal
    goal_logit = logits.gather(1, goal.unsqueeze(1)).squeeze(1)
    best_other = logits.scatter(1, goal.unsqueeze(1), float("-inf")).max(1).values
    return goal_logit - best_other >= margin if targeted else best_other - goal_logit >= margin
