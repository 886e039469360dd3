"""The L-infinity sign-gradient family used for transfer attacks: FGSM, BIM,
MI, DI and TI, each with or without temporal translation (TT).

All frames are perturbed (``clean + delta``, ``|delta| <= epsilon``, kept in
[0, 1]); every step is ``delta += alpha * sign(g)`` followed by the
projection (``sava.kernels.masked_sign_step_``), where ``g`` is the gradient of
the cross-entropy (untargeted: of the true label, ascended; targeted: minus
that of the target), transformed by the pieces a method switches on:

* DI (Xie et al. 2019): each video's input is, with probability ``diversity``,
  shrunk to a random size in [0.9, 1) of the frame and padded back at a
  random place, before the model sees it;
* TT: the gradient is the weighted sum over temporally translated copies
  (:mod:`sava.attacks.translation`);
* TI (Dong et al. 2019): the gradient is smoothed per frame by a Gaussian
  kernel of ``smoothing`` pixels (sigma = (size - 1) / 6, TI's three sigmas);
* MI (Dong et al. 2018): ``m = momentum * m + g / mean|g|``, and ``m`` is
  stepped on.

Presets (the TT paper's settings): ``fgsm`` one step of ``epsilon``; ``bim``
10 steps of ``epsilon / 10``; ``mi``, ``di``, ``ti`` are BIM with momentum
1.0, diversity 0.5, and a 7-pixel kernel. ``epsilon`` defaults to 16/255.

A transfer attack keeps going after it fools its white-box model (it aims at
other models), so every video runs every step; success is reported on the
white-box model, and the transfer on others is measured separately.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Iterator

import torch
import torch.nn.functional as F

from .. import kernels
from ..errors import ConfigError
from ..metrics import VideoResult
from .base import Attack, Queued
from .losses import adversarial_term, reached_goal
from .results import fill_result
from .translation import TemporalTranslation

PRESETS = {
    "fgsm": {"steps": 1},
    "bim": {"steps": 10},
    "mi": {"steps": 10, "momentum": 1.0},
    "di": {"steps": 10, "diversity": 0.5},
    "ti": {"steps": 10, "smoothing": 7},
}
DEFAULT_EPSILON = 16 / 255
DIVERSE_MIN_SCALE = 0.9


def gaussian_kernel(size: int) -> torch.Tensor:
    sigma = max((size - 1) / 6, 1e-3)
    line = torch.exp(-((torch.arange(size) - (size - 1) / 2) ** 2) / (2 * sigma**2))
    kernel = line.view(-1, 1) * line.view(1, -1)
    return kernel / kernel.sum()


def smooth_frames(grad: torch.Tensor, size: int) -> torch.Tensor:
    """Each frame and channel of ``B x T x C x H x W`` convolved with a ``size`` Gaussian (zero padding)."""
    b, t, c, h, w = grad.shape
    kernel = gaussian_kernel(size).to(grad).expand(c, 1, size, size)
    return F.conv2d(grad.reshape(b * t, c, h, w), kernel, padding=size // 2, groups=c).view(b, t, c, h, w)


def diverse_input(videos: torch.Tensor, probability: float, generator: torch.Generator) -> torch.Tensor:
    """DI's random resize and pad, drawn per video, the same for all its frames."""
    b, t, c, h, w = videos.shape
    out = []
    for video in videos:
        if float(torch.rand(1, generator=generator)) >= probability:
            out.append(video)
            continue
        low_h, low_w = math.ceil(DIVERSE_MIN_SCALE * h), math.ceil(DIVERSE_MIN_SCALE * w)
        new_h = int(torch.randint(low_h, h, (1,), generator=generator)) if low_h < h else h
        new_w = int(torch.randint(low_w, w, (1,), generator=generator)) if low_w < w else w
        small = F.interpolate(video, size=(new_h, new_w), mode="bilinear", align_corners=False)
        top = int(torch.randint(0, h - new_h + 1, (1,), generator=generator))
        left = int(torch.randint(0, w - new_w + 1, (1,), generator=generator))
        out.append(F.pad(small, (left, w - new_w - left, top, h - new_h - top)))
    return torch.stack(out)


class LinfAttack(Attack):
    """The L-infinity sign-gradient family on every frame: ``fgsm``, ``bim``, ``mi`` (momentum), ``di``
    (input diversity), ``ti`` (translation-invariant smoothing), with ``translation=`` for temporal
    translation (TT).

    Args:
        model: the white-box target; method: one of the five; epsilon: the budget (default 16/255);
            steps: iterations (the method's default when None); translation: a ``TemporalTranslation``.

    Example:
        >>> torch.manual_seed(0) and None
        >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4 * 3 * 16 * 16, 3))
        >>> videos = torch.rand(2, 4, 3, 16, 16)
        >>> run = LinfAttack(net, method="bim", epsilon=4 / 255).run(videos, net(videos).argmax(1))
        >>> all(r.linf <= 4 / 255 + 1e-6 for r in run.results)
        True
    """

    method = "linf"

    def __init__(self, model, *, method: str = "bim", epsilon: float = DEFAULT_EPSILON, steps: int | None = None,
                 alpha: float | None = None, momentum: float | None = None, diversity: float | None = None,
                 smoothing: int | None = None, translation: TemporalTranslation | bool | None = None,
                 targeted: bool = False, batch_size: int = 8, seed: int = 0):
        if method not in PRESETS:
            raise ConfigError(f"unknown L-infinity method {method!r}; choose from {', '.join(PRESETS)}")
        preset = PRESETS[method]
        steps = preset["steps"] if steps is None else steps
        momentum = preset.get("momentum") if momentum is None else momentum
        diversity = preset.get("diversity") if diversity is None else diversity
        smoothing = preset.get("smoothing") if smoothing is None else smoothing
        if not epsilon >= 0:
            raise ConfigError(f"epsilon (the L-infinity budget) must be >= 0, got {epsilon}")
        if not isinstance(steps, int) or steps < 1:
            raise ConfigError(f"steps must be a positive integer, got {steps!r}")
        alpha = epsilon / steps if alpha is None else alpha
        if not alpha >= 0:
            raise ConfigError(f"alpha (the step size) must be >= 0, got {alpha}")
        if momentum is not None and not momentum >= 0:
            raise ConfigError(f"momentum must be >= 0, got {momentum}")
        if diversity is not None and not 0 <= diversity <= 1:
            raise ConfigError(f"diversity (a probability) must lie in [0, 1], got {diversity}")
        if smoothing is not None and (not isinstance(smoothing, int) or smoothing < 1 or smoothing % 2 == 0):
            raise ConfigError(f"smoothing (a kernel size in pixels) must be an odd positive integer, got {smoothing!r}")
        if translation is True:
            translation = TemporalTranslation(seed=seed)
        self.name = ("tt-" if translation else "") + method
        self.epsilon, self.steps, self.alpha = float(epsilon), steps, float(alpha)
        self.momentum, self.diversity, self.smoothing = momentum, diversity, smoothing
        self.translation = translation or None
        super().__init__(model, targeted=targeted, batch_size=batch_size, seed=seed, settings={
            "method": self.name, "epsilon": self.epsilon, "steps": steps, "alpha": self.alpha,
            "momentum": momentum, "diversity": diversity, "smoothing": smoothing,
            "translation": repr(self.translation) if self.translation else None})

    # ------------------------------------------------------------------ pieces
    def _perturbed(self, clean: torch.Tensor, delta: torch.Tensor, state: dict) -> torch.Tensor:
        """The adversarial clips of a perturbation (a subclass may mask it)."""
        return clean + delta

    def _before_step(self, step: int, clean: torch.Tensor, delta: torch.Tensor, goals: torch.Tensor,
                     state: dict) -> None:
        """Hook run before each step (the attention attack refreshes its mask here)."""

    def _loss_of(self, goals: torch.Tensor, generator: torch.Generator, diverse: bool = True):
        def loss_of(videos):
            if diverse and self.diversity:
                videos = diverse_input(videos, self.diversity, generator)
            return adversarial_term(self.model.logits(videos), goals, self.targeted, "ce")

        return loss_of

    def _gradient(self, clean, delta, goals, state, generator) -> torch.Tensor:
        delta = delta.detach().requires_grad_()
        adversarial = self._perturbed(clean, delta, state)
        loss_of = self._loss_of(goals, generator)
        loss = self.translation.loss(loss_of, adversarial) if self.translation else loss_of(adversarial)
        (grad,) = torch.autograd.grad(loss.sum(), delta)
        state["queries"] += self.translation.copies if self.translation else 1
        return grad

    # ------------------------------------------------------------------ running
    def stream(self, items: Iterable[tuple]) -> Iterator[VideoResult]:
        generator = torch.Generator().manual_seed(self.seed)
        if self.translation:
            self.translation.generator.manual_seed(self.seed)
        for chunk in self._chunks(items):
            skipped: list[VideoResult] = []
            queued = self._classify(chunk, skipped)
            if queued is not None:
                with self.model.attack_mode():
                    yield from self._attack(queued, generator)
            yield from skipped

    def _attack(self, queued: Queued, generator: torch.Generator) -> Iterator[VideoResult]:
        started = time.perf_counter()
        device = self.model.device
        clean, goals = queued.videos.to(device), queued.goals.to(device)
        delta = torch.zeros_like(clean)
        active = torch.ones(len(clean), dtype=torch.bool, device=device)
        velocity = torch.zeros_like(clean) if self.momentum is not None else None
        state = {"queries": 0}
        for step in range(self.steps):
            self._before_step(step, clean, delta, goals, state)
            grad = self._gradient(clean, delta, goals, state, generator)
            if self.smoothing:
                grad = smooth_frames(grad, self.smoothing)
            if velocity is not None:
                scale = grad.abs().mean(dim=(1, 2, 3, 4), keepdim=True).clamp_min(1e-12)
                velocity = self.momentum * velocity + grad / scale
                grad = velocity
            kernels.masked_sign_step_(delta, grad, active, self.alpha, self.epsilon, clean)
        with torch.no_grad():
            adversarial = self._perturbed(clean, delta, state)
            probs = self.model.logits(adversarial).softmax(-1)
            done = reached_goal(probs, goals, self.targeted)
            ssim = kernels.ssim(adversarial, clean)
            change = adversarial - clean
        share = (time.perf_counter() - started) / len(clean)
        for i, result in enumerate(queued.results):
            result.queries = state["queries"] + 1
            yield fill_result(result, success=bool(done[i]), iterations=self.steps,
                              frames=list(range(clean.shape[1])), num_frames=clean.shape[1], ssim=ssim[i],
                              delta=change[i], clip_numel=change[i].numel(), pred=int(probs[i].argmax()),
                              prob=float(probs[i].max()), label_prob=float(probs[i, result.label]), seconds=share,
                              noise=change[i].cpu())
