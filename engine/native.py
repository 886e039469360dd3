"""ctypes bindings to sava's C library (``bindings/``, built with CMake).

    cmake -S . -B build && cmake --build build      # then: import sava.native

The library is found through ``$SAVA_LIBRARY`` or in ``build/`` of the source
checkout. It is also the ``native`` backend of :mod:`sava.kernels` for
``perturb_frames`` and ``ssim`` (forward only, float32 CPU tensors): the same
functions a C or C++ service runs, checked against the Python reference.
"""

from __future__ import annotations

import ctypes
import os
from functools import lru_cache
from pathlib import Path

import torch

from .errors import SavaError

LIBRARY_ENV = "SAVA_LIBRARY"
BUILD_COMMAND = "cmake -S . -B build && cmake --build build"


class NativeError(SavaError):
    """The C library is missing or returned an error status."""


def _candidates() -> list[Path]:
    root = Path(__file__).resolve().parents[1]
    names = ("libsava.so", "libsava.dylib", "sava.dll")
    return [root / "build" / name for name in names]


@lru_cache(maxsize=1)
def library() -> ctypes.CDLL:
    explicit = os.environ.get(LIBRARY_ENV)
    paths = [Path(explicit)] if explicit else _candidates()
    for path in paths:
        if path.is_file():
            return _declare(ctypes.CDLL(str(path)))
    where = explicit or ", ".join(str(p) for p in paths)
    raise NativeError(f"sava's C library is not built (looked for {where}); build it from the source checkout "
                      f"with: {BUILD_COMMAND} (or point ${LIBRARY_ENV} at libsava)")


def _declare(lib: ctypes.CDLL) -> ctypes.CDLL:
    f32, i64 = ctypes.POINTER(ctypes.c_float), ctypes.c_int64
    lib.sava_status_string.restype = ctypes.c_char_p
    lib.sava_version.restype = ctypes.c_char_p
    lib.sava_apply_cpu.argtypes = [f32, f32, i64, i64, i64, i64, ctypes.POINTER(ctypes.c_int64), i64, f32, f32, i64,
                                   i64]
    lib.sava_ssim_cpu.argtypes = [f32, f32, i64, i64, i64, i64, f32]
    return lib


def version() -> str:
    return library().sava_version().decode()


def _check(status: int) -> None:
    if status != 0:
        raise NativeError(f"sava C library: {library().sava_status_string(status).decode()} (status {status})")


def _pointer(tensor: torch.Tensor | None, dtype=ctypes.c_float):
    if tensor is None:
        return None
    return ctypes.cast(tensor.data_ptr(), ctypes.POINTER(dtype))


def _cpu_float(tensor: torch.Tensor, name: str) -> torch.Tensor:
    if tensor.requires_grad:
        raise NativeError(f"the native backend has no backward; {name} requires a gradient")
    return tensor.detach().to("cpu", torch.float32).contiguous()


def apply_perturbation(video: torch.Tensor, frame_idx: torch.Tensor, flow: torch.Tensor | None = None,
                       noise: torch.Tensor | None = None) -> torch.Tensor:
    """One ``T x C x H x W`` clip with its ``k`` frames perturbed (``flow`` ``k x 2 x H x W``,
    ``noise`` ``k x C x H x W`` or ``k x C x 1 x 1``)."""
    video = _cpu_float(video, "video")
    t, c, h, w = video.shape
    frames = frame_idx.to("cpu", torch.int64).contiguous()
    flow = None if flow is None else _cpu_float(flow, "flow")
    noise = None if noise is None else _cpu_float(noise, "noise")
    out = torch.empty_like(video)
    noise_h, noise_w = (0, 0) if noise is None else noise.shape[-2:]
    _check(library().sava_apply_cpu(_pointer(video), _pointer(out), t, c, h, w, _pointer(frames, ctypes.c_int64),
                                    len(frames), _pointer(flow), _pointer(noise), noise_h, noise_w))
    return out


def perturb_frames(frames: torch.Tensor, flow: torch.Tensor | None = None,
                   noise: torch.Tensor | None = None) -> torch.Tensor:
    """``(..., C, H, W)`` frames perturbed, as ``sava.kernels.perturb_frames``."""
    lead, shape = frames.shape[:-3], frames.shape[-3:]
    flat = frames.reshape(-1, *shape)
    k = flat.shape[0]
    flat_flow = None if flow is None else flow.reshape(k, 2, *shape[1:])
    flat_noise = None if noise is None else noise.reshape(k, shape[0], *noise.shape[-2:])
    out = apply_perturbation(flat, torch.arange(k), flat_flow, flat_noise)
    return out.reshape(*lead, *shape).to(frames.device)


def ssim(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-frame SSIM ``(..., C, H, W) -> (...)``, as ``sava.kernels.ssim``."""
    if x.shape != y.shape:
        raise NativeError(f"ssim: shapes differ: {tuple(x.shape)} vs {tuple(y.shape)}")
    lead, shape = x.shape[:-3], x.shape[-3:]
    a = _cpu_float(x, "x").reshape(-1, *shape)
    b = _cpu_float(y, "y").reshape(-1, *shape)
    out = torch.empty(a.shape[0], dtype=torch.float32)
    _check(library().sava_ssim_cpu(_pointer(a), _pointer(b), a.shape[0], *shape, _pointer(out)))
    return out.reshape(lead).to(x.device)
