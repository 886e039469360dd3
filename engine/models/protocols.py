"""What an attack needs of its target model, as a type: a white-box ``VideoModel`` satisfies it, and so does
any object a user writes with the same members (a model served some other way, a wrapper with its own
preprocessing). Black-box models (``sava.export``'s runtimes) share the descriptive part only."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Protocol, runtime_checkable

import torch


@runtime_checkable
class AttackedModel(Protocol):
    """A differentiable video classifier: ``[0, 1]`` videos ``B x T x C x H x W`` to ``B x classes`` logits."""

    white_box: bool  # True: its gradients can be taken
    name: str
    classes: list[str] | None  # output names in order, when known
    device: torch.device
    static_batch: bool  # True: run it on the whole batch every step (a compiled, graph-captured model)

    def logits(self, videos: torch.Tensor) -> torch.Tensor:
        """Differentiable logits of ``B x T x C x H x W`` videos in [0, 1]."""

    def predict(self, videos: torch.Tensor, batch_size: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Labels and softmax probabilities, without gradients."""

    def attack_mode(self) -> AbstractContextManager:
        """Eval mode and frozen weights while an attack runs; the model's own state comes back afterwards."""

    def check_videos(self, videos: torch.Tensor) -> None:
        """Raise a worded error for videos this model cannot take."""
