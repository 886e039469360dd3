"""The black-box model interface: logits for ``[0, 1]`` videos in
``B x T x C x H x W``, whatever runs them, and no gradients.

Everything a runtime needs to take a model without Python objects (input
layout, frame count and size, class names) travels in the ONNX file's
metadata (:mod:`sava.export.onnx_export`); the normalisation and the layout
change are inside the graph, so every runtime is fed raw ``[0, 1]`` pixels.
"""

from __future__ import annotations

import json
from contextlib import contextmanager

import torch

from ..errors import InputError, ModelError
from ..models.adapter import DescribedModel, ModelInfo, check_videos

METADATA_PREFIX = "sava."


def info_from_metadata(metadata: dict[str, str], fallback_name: str) -> tuple[ModelInfo, bool]:
    """The model description an exported file carries, and whether its time axis is dynamic."""
    def field(name, default=None):
        raw = metadata.get(METADATA_PREFIX + name)
        return default if raw is None else json.loads(raw)

    shape = field("clip_shape")
    info = ModelInfo(name=field("name", fallback_name), layout="BTCHW", classes=field("classes"),
                     clip_shape=tuple(shape) if shape else None,
                     extra={"dataset": field("dataset"), "source_layout": field("source_layout"),
                            "normalisation_in_graph": True})
    return info, bool(field("dynamic_time", False))


class BlackBoxModel(DescribedModel):
    """Subclasses implement ``_logits(chunk) -> torch.Tensor`` (CPU float32)."""

    white_box = False
    device = torch.device("cpu")  # where attacks would put tensors; the runtime moves them itself

    def __init__(self, info: ModelInfo, dynamic_time: bool, max_batch: int = 32):
        self.info = info
        self.dynamic_time = dynamic_time
        self.max_batch = max_batch

    def check_videos(self, videos: torch.Tensor) -> None:
        check_videos(videos)
        if self.info.clip_shape is None:
            return
        t, c, h, w = self.info.clip_shape
        got = tuple(videos.shape[1:])
        if got[1:] != (c, h, w) or (not self.dynamic_time and got[0] != t):
            frames = "any number of" if self.dynamic_time else str(t)
            raise InputError(f"{self.name} takes clips of {frames} frames of {c} x {h} x {w} "
                             f"(B x T x C x H x W); got B x {' x '.join(map(str, got))}")

    @torch.no_grad()
    def logits(self, videos: torch.Tensor) -> torch.Tensor:
        self.check_videos(videos)
        out = []
        for chunk in videos.split(self.max_batch):
            logits = self._logits(chunk.float().contiguous())
            classes = len(self.classes) if self.classes else None
            if logits.dim() != 2 or logits.shape[0] != len(chunk) or (classes and logits.shape[1] != classes):
                wanted = f"{len(chunk)} x {classes if classes else 'classes'}"
                raise ModelError(f"{self.name} returned logits of shape {tuple(logits.shape)} for {len(chunk)} "
                                 f"clips; a classifier returns B x classes ({wanted})")
            out.append(logits)
        return torch.cat(out)

    __call__ = logits

    @torch.no_grad()
    def predict(self, videos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        probs = self.logits(videos).softmax(-1)
        return probs.argmax(-1), probs

    @contextmanager
    def attack_mode(self):
        yield self

    def _logits(self, chunk: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError
