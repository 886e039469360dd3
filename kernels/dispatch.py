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
    """``clamp(clamp(warp(frames, flow)) + noise)`` on ``(..., C, H, W)`` frames. ``rows`` (an evaluation's
    bool mask over the first dimension) lets the kernel skip the other rows: their output is unspecified."""
    _check_rows("perturb_frames", rows, frames, frames, flow, noise)
    choice = resolve(backend, frames, flow, noise)
    if choice == "triton":
        return _triton("perturb").perturb_frames(frames, flow, noise, rows=rows)
    if choice == "native":
        return _native().perturb_frames(frames, flow, noise)
    return reference.perturb_frames(frames, flow, noise)


def perturb_selected(video, frame_idx, flow=None, noise=None, backend: str | None = None):
    """The ``B x k`` selected frames of ``video``, perturbed (gather and perturbation fused on Triton)."""
    choice = resolve(backend, video, frame_idx, flow, noise)
    if choice == "triton":
        return _triton("perturb").perturb_selected(video, frame_idx, flow, noise)
    return perturb_frames(reference.gather_frames(video, frame_idx), flow, noise, backend=choice)


def apply_perturbation(video, frame_idx, flow=None, noise=None, backend: str | None = None):
    """The whole adversarial video: selected frames perturbed, the others untouched."""
    return reference.scatter_frames(video, frame_idx, perturb_selected(video, frame_idx, flow, noise, backend))


def ssim(x, y, backend: str | None = None, rows=None):
    """Per-frame SSIM ``(..., C, H, W) -> (...)``. The fused kernel differentiates
    ``x`` only; under ``auto`` a ``y`` that needs a gradient takes the reference. ``rows`` (an evaluation's
    bool mask over the first dimension) lets the kernel skip the other rows: their values are unspecified."""
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
    """In-place Adam step on the active rows (see ``reference.masked_adam_step_``)."""
    impl = _triton("update") if resolve(backend, param, grad, exp_avg, exp_avg_sq) == "triton" else reference
    impl.masked_adam_step_(param, grad, exp_avg, exp_avg_sq, step, active, lr, betas, eps)


def masked_adam_multi_(params, grads, exp_avgs, exp_avg_sqs, step, active, lrs, betas=(0.9, 0.999), eps=1e-8,
                       backend: str | None = None) -> None:
    """Adam on several tensors sharing one step count, in one launch on Triton (see
    ``reference.masked_adam_multi_``)."""
    impl = _triton("update") if resolve(backend, *params, *grads) == "triton" else reference
    impl.masked_adam_multi_(params, grads, exp_avgs, exp_avg_sqs, step, active, lrs, betas, eps)


def masked_sign_step_(delta, grad, active, alpha, epsilon=None, clean=None, backend: str | None = None) -> None:
    """In-place signed step with projection on the active rows (see ``reference.masked_sign_step_``)."""
    impl = _triton("update") if resolve(backend, delta, grad, clean) == "triton" else reference
    impl.masked_sign_step_(delta, grad, active, alpha, epsilon, clean)
