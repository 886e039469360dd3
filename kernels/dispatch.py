"""Which implementation runs each operation.

``backend="auto"`` (the default) takes the Triton kernel for float32 CUDA
tensors and the pure-torch reference otherwise. An explicit ``backend=``
argument, or the environment variable ``SAVA_BACKEND`` (``auto``,
``reference``, ``triton``, ``native``), overrides it. ``native`` is the C
library through the bindings the package registers (``provide_native``; forward only: ``perturb_frames`` and
``ssim``). The Triton modules are imported on
first use, so ``TRITON_INTERPRET=1`` (Triton's CPU interpreter, used by the
tests) can still be set before then.
"""

from __future__ import annotations

import importlib
import importlib.util
import os

import torch

from . import reference

BACKENDS = ("auto", "reference", "triton", "native")
ENVIRONMENT_VARIABLE = "SAVA_BACKEND"


def triton_available() -> bool:
    return importlib.util.find_spec("triton") is not None


def resolve(backend: str | None, *tensors: torch.Tensor | None) -> str:
    """The backend that will run an operation on these tensors."""
    choice = backend or os.environ.get(ENVIRONMENT_VARIABLE, "auto")
    if choice not in BACKENDS:
        raise ValueError(f"unknown backend {choice!r}; choose from {', '.join(BACKENDS)} "
                         f"(argument or ${ENVIRONMENT_VARIABLE})")
    present = [t for t in tensors if t is not None]
    if choice == "auto":
        fits = all(t.is_cuda and t.dtype in (torch.float32, torch.int64) for t in present)
        return "triton" if fits and triton_available() else "reference"
    if choice == "triton":
        if not triton_available():
            raise RuntimeError("backend 'triton' needs the triton package: pip install triton")
        on_cpu = any(not t.is_cuda for t in present)
        if on_cpu and os.environ.get("TRITON_INTERPRET") != "1":
            raise RuntimeError("backend 'triton' runs on CUDA tensors; for CPU tensors set TRITON_INTERPRET=1 "
                               "before sava.kernels' Triton modules are first used (Triton's interpreter)")
        floats = [t for t in present if t.is_floating_point()]
        if any(t.dtype != torch.float32 for t in floats):
            raise ValueError(f"backend 'triton' takes float32 tensors, got {sorted({str(t.dtype) for t in floats})}")
    return choice


_native_bindings = None  # a function returning the C library's bindings, handed down by the package


def provide_native(bindings) -> None:
    """Register how to reach the C library's bindings (``perturb_frames`` and ``ssim``): the package above
    hands them down (``sava/__init__``) so that the kernels never import it."""
    global _native_bindings
    _native_bindings = bindings


def _native():
    if _native_bindings is None:
        raise RuntimeError("backend 'native' needs the C library's bindings; import sava to register them")
    return _native_bindings()


def _triton(module: str):
    return importlib.import_module(f"{__package__}.fused.{module}")


def _check_rows(operation: str, rows, first, *inputs) -> None:
    """``rows`` limits an evaluation to some entries of the first dimension: one bool per entry, on the inputs'
    device, and no gradient asked for (the rows left out would have none to give)."""
    if rows is None:
        return
    if rows.dtype != torch.bool or rows.shape != (first.shape[0],) or first.dim() < 4:
        raise ValueError(f"{operation}: rows must be a bool mask of shape ({first.shape[0]},) over the first "
                         f"dimension of (N, ..., C, H, W) inputs, got {rows.dtype} of shape {tuple(rows.shape)} "
                         f"for inputs of shape {tuple(first.shape)}")
    if rows.device != first.device:
        raise ValueError(f"{operation}: rows is on {rows.device}, the inputs on {first.device}")
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in inputs):
        raise ValueError(f"{operation}: rows is for evaluation only; the inputs need a gradient "
                         "(call it under torch.no_grad())")


def perturb_frames(frames, flow=None, noise=None, backend: str | None = None, rows=None):
    """``clamp(clamp(warp(frames, flow)) + noise)``: frames warped bilinearly by a per-pixel flow, then noise
    added, each result clamped to [0, 1]. Differentiable in ``flow`` and ``noise`` (and ``frames``).

    Args:
        frames: ``(..., C, H, W)`` in [0, 1].
        flow: ``(..., 2, H, W)`` pixel displacements (x, y), or None for no warp.
        noise: ``(..., C, H, W)`` additive noise, or None.
        backend: ``"auto"`` (None), ``"triton"``, ``"reference"`` or ``"native"``.
        rows: evaluation only: a bool mask over the first dimension; the other rows' output is unspecified,
            so the kernel may skip them.

    Returns:
        ``(..., C, H, W)`` adversarial frames.

    Example:
        >>> frames = torch.rand(2, 3, 3, 16, 16)
        >>> flow, noise = torch.zeros(2, 3, 2, 16, 16), torch.full((2, 3, 3, 16, 16), 0.01)
        >>> out = perturb_frames(frames, flow, noise)
        >>> out.shape, bool(((out - frames).abs() <= 0.01 + 1e-6).all())
        (torch.Size([2, 3, 3, 16, 16]), True)
    """
    _check_rows("perturb_frames", rows, frames, frames, flow, noise)
    choice = resolve(backend, frames, flow, noise)
    if choice == "triton":
        return _triton("perturb").perturb_frames(frames, flow, noise, rows=rows)
    if choice == "native":
        return _native().perturb_frames(frames, flow, noise)
    return reference.perturb_frames(frames, flow, noise)


def perturb_selected(video, frame_idx, flow=None, noise=None, backend: str | None = None):
    """The selected frames of each video, perturbed (gather and perturbation fused on Triton).

    Args:
        video: ``B x T x C x H x W`` in [0, 1], any strides.
        frame_idx: ``B x k`` int64 frame indices in ``[0, T)``.
        flow: ``B x k x 2 x H x W`` or None; noise: ``B x k x C x H x W`` or None.

    Returns:
        ``B x k x C x H x W``: ``perturb_frames`` of the gathered frames.

    Example:
        >>> video = torch.rand(2, 8, 3, 16, 16)
        >>> picked = torch.tensor([[0, 5], [7, 1]])
        >>> perturb_selected(video, picked).equal(video[torch.arange(2)[:, None], picked])
        True
    """
    choice = resolve(backend, video, frame_idx, flow, noise)
    if choice == "triton":
        return _triton("perturb").perturb_selected(video, frame_idx, flow, noise)
    return perturb_frames(reference.gather_frames(video, frame_idx), flow, noise, backend=choice)


def apply_perturbation(video, frame_idx, flow=None, noise=None, backend: str | None = None):
    """The whole adversarial video: the selected frames perturbed, the others untouched.

    Example:
        >>> video = torch.rand(1, 8, 3, 16, 16)
        >>> adv = apply_perturbation(video, torch.tensor([[2]]), noise=torch.full((1, 1, 3, 16, 16), -1.0))
        >>> float(adv[0, 2].max()), bool(adv[0, 3].equal(video[0, 3]))
        (0.0, True)
    """
    return reference.scatter_frames(video, frame_idx, perturb_selected(video, frame_idx, flow, noise, backend))


def ssim(x, y, backend: str | None = None, rows=None):
    """Per-frame SSIM (11 x 11 Gaussian window, sigma 1.5, data range 1), averaged over channels and pixels.

    Args:
        x: ``(..., C, H, W)`` in [0, 1], the frames whose gradient is wanted (the fused kernel differentiates
            ``x`` only; under ``auto`` a ``y`` that needs a gradient takes the reference).
        y: the reference frames, the shape of ``x``.
        rows: evaluation only: a bool mask over the first dimension; the other rows' values are unspecified.

    Returns:
        ``(...)``: one SSIM per frame, 1 for identical frames.

    Example:
        >>> x = torch.rand(2, 4, 3, 32, 32)
        >>> ssim(x, x).shape, bool(torch.allclose(ssim(x, x), torch.ones(2, 4)))
        (torch.Size([2, 4]), True)
    """
    _check_rows("ssim", rows, x, x, y)
    if backend is None and y.requires_grad:
        return reference.ssim(x, y)
    choice = resolve(backend, x, y)
    if choice == "triton":
        return _triton("ssim").ssim(x, y, rows=rows)
    if choice == "native":
        return _native().ssim(x, y)
    return reference.ssim(x, y)


def masked_adam_step_(param, grad, exp_avg, exp_avg_sq, step, active, lr, betas=(0.9, 0.999), eps=1e-8,
                      backend: str | None = None) -> None:
    """In-place Adam step on the rows ``active`` marks; the others (parameters, moments) are left as they are.

    Args:
        param, grad, exp_avg, exp_avg_sq: ``B x ...`` tensors, updated in place (not ``grad``).
        step: ``B`` int64 steps taken so far per row (advanced for the active rows).
        active: ``B`` bool.
        lr, betas, eps: as ``torch.optim.Adam``.

    Example:
        >>> p, g = torch.zeros(2, 3), torch.ones(2, 3)
        >>> m, v, step = torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(2, dtype=torch.long)
        >>> masked_adam_step_(p, g, m, v, step, torch.tensor([True, False]), lr=0.1)
        >>> [round(x, 4) for x in p[:, 0].tolist()], step.tolist()  # Adam's first step: lr against the gradient
        ([-0.1, 0.0], [1, 0])
    """
    impl = _triton("update") if resolve(backend, param, grad, exp_avg, exp_avg_sq) == "triton" else reference
    impl.masked_adam_step_(param, grad, exp_avg, exp_avg_sq, step, active, lr, betas, eps)


def masked_adam_multi_(params, grads, exp_avgs, exp_avg_sqs, step, active, lrs, betas=(0.9, 0.999), eps=1e-8,
                       backend: str | None = None) -> None:
    """Adam on several tensors sharing one step count, in one launch on Triton (see
    ``reference.masked_adam_multi_``)."""
    impl = _triton("update") if resolve(backend, *params, *grads) == "triton" else reference
    impl.masked_adam_multi_(params, grads, exp_avgs, exp_avg_sqs, step, active, lrs, betas, eps)


def masked_sign_step_(delta, grad, active, alpha, epsilon=None, clean=None, backend: str | None = None) -> None:
    """In-place ``delta += alpha * sign(grad)`` (a step up the loss) on the active rows, then projected into
    the L-infinity ball of radius ``epsilon`` and, given ``clean``, so that ``clean + delta`` stays in [0, 1].

    Example:
        >>> delta, grad = torch.zeros(2, 4), torch.tensor([[1.0, -1.0, 1.0, -1.0]] * 2)
        >>> masked_sign_step_(delta, grad, torch.tensor([True, False]), alpha=0.5, epsilon=0.25)
        >>> delta.tolist()
        [[0.25, -0.25, 0.25, -0.25], [0.0, 0.0, 0.0, 0.0]]
    """
    impl = _triton("update") if resolve(backend, delta, grad, clean) == "triton" else reference
    impl.masked_sign_step_(delta, grad, active, alpha, epsilon, clean)
