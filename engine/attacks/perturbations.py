"""Parametrisations of a sparse perturbation on the selected frames.

A perturbation declares its per-frame parameters (shape of one frame's
parameter, learning rate) and maps clean selected frames plus parameters to
adversarial frames. All parameters start at zero: the identity perturbation.
"""

from __future__ import annotations

from typing import Protocol

import torch

from .. import kernels
from ..errors import ConfigError

KINDS = ("combined", "noise", "flow")


class Perturbation(Protocol):
    """A sparse perturbation's parametrisation: what the attack loop needs of it."""

    learning_rates: dict[str, float]  # Adam's learning rate per parameter name; the names are its parameters

    def parameter_shapes(self, channels: int, height: int, width: int) -> dict[str, tuple[int, ...]]:
        """The shape of one frame's tensor of each parameter."""

    def apply(self, clean: torch.Tensor, params: dict[str, torch.Tensor],
              rows: torch.Tensor | None = None) -> torch.Tensor:
        """Adversarial frames ``B x k x C x H x W`` from the clean ones and the parameters (zero: identity)."""

    def result_tensors(self, params: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The tensors a result keeps: what the perturbation file holds."""


class FlowNoise:
    """DeepSAVA's perturbation: ``clamp(clamp(warp(x, flow)) + noise)``, or one
    of its two parts alone (``noise`` or ``flow``)."""

    def __init__(self, kind: str = "combined", flow_lr: float = 0.1, noise_lr: float = 0.004):
        if kind not in KINDS:
            raise ConfigError(f"unknown perturbation {kind!r}; choose from {', '.join(KINDS)}")
        for name, value in (("flow_lr", flow_lr), ("noise_lr", noise_lr)):
            if not value > 0:
                raise ConfigError(f"{name} must be positive, got {value}")
        self.kind = kind
        self.learning_rates = {}
        if kind in ("combined", "flow"):
            self.learning_rates["flow"] = flow_lr
        if kind in ("combined", "noise"):
            self.learning_rates["noise"] = noise_lr

    def parameter_shapes(self, channels: int, height: int, width: int) -> dict[str, tuple[int, ...]]:
        shapes = {"flow": (2, height, width), "noise": (channels, height, width)}
        return {name: shapes[name] for name in self.learning_rates}

    def apply(self, clean: torch.Tensor, params: dict[str, torch.Tensor],
              rows: torch.Tensor | None = None) -> torch.Tensor:
        """Adversarial frames. ``rows`` (bool per video, evaluation only) may skip the others' work; their
        frames are then unspecified."""
        return kernels.perturb_frames(clean, params.get("flow"), params.get("noise"), rows=rows)

    def result_tensors(self, params: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The parameters a result keeps (``k`` frames, on the CPU): the perturbation file's tensors."""
        return {name: value.detach().cpu().clone() for name, value in params.items()}


class FrameOffset(FlowNoise):
    """One offset per channel for each selected frame, the same over the whole
    frame (Sparse Flickering): ``clamp(x + offset)``. Kept as a ``k x C x 1 x 1``
    noise, which broadcasts over the frame wherever a noise is applied."""

    def __init__(self, lr: float):
        super().__init__("noise", noise_lr=lr)

    def parameter_shapes(self, channels: int, height: int, width: int) -> dict[str, tuple[int, ...]]:
        return {"noise": (channels, 1, 1)}

    def apply(self, clean: torch.Tensor, params: dict[str, torch.Tensor],
              rows: torch.Tensor | None = None) -> torch.Tensor:
        return (clean + params["noise"]).clamp(0.0, 1.0)  # one add per pixel: no work worth skipping
