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
    lib.sava_apply_cpu.argtypes = [f32, f32, i64, i64, i64, i64, ctypes.POINTER(ctypes.c_int64), i64, f32, i64, f32,
                                   i64, i64, i64]
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
    ``noise`` ``k x C x H x W`` or ``k x C x 1 x 1``). Every size is checked here and again in C."""
    if video.dim() != 4:
        raise NativeError(f"video must be T x C x H x W, got shape {tuple(video.shape)}")
    video = _cpu_float(video, "video")
    t, c, h, w = video.shape
    frames = frame_idx.to("cpu", torch.int64).contiguous()
    if frames.dim() != 1:
        raise NativeError(f"frame indices must be 1-D, got shape {tuple(frames.shape)}")
    k = len(frames)
    flow = None if flow is None else _cpu_float(flow, "flow")
    noise = None if noise is None else _cpu_float(noise, "noise")
    if flow is not None and tuple(flow.shape) != (k, 2, h, w):
        raise NativeError(f"flow must be {k} x 2 x {h} x {w} for {k} frames of {c} x {h} x {w}, got "
                          f"{tuple(flow.shape)}")
    if noise is not None and tuple(noise.shape) not in ((k, c, h, w), (k, c, 1, 1)):
        raise NativeError(f"noise must be {k} x {c} x {h} x {w} or {k} x {c} x 1 x 1, got {tuple(noise.shape)}")
    out = torch.empty_like(video)
    noise_h, noise_w = (0, 0) if noise is None else noise.shape[-2:]
    _check(library().sava_apply_cpu(_pointer(video), _pointer(out), t, c, h, w, _pointer(frames, ctypes.c_int64), k,
                                    _pointer(flow), 0 if flow is None else flow.numel(), _pointer(noise),
                                    0 if noise is None else noise.numel(), noise_h, noise_w))
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


# ---------------------------------------------------------------------- CUDA through CuPy
CUDA_SOURCE = Path(__file__).resolve().parents[1] / "bindings" / "src" / "cuda_kernels.cuh"
THREADS = 256


@lru_cache(maxsize=1)
def cuda_module():
    """The library's CUDA kernels compiled at run time by CuPy (NVRTC): no CMake needed on a GPU machine."""
    try:
        import cupy
    except ImportError as exc:
        raise NativeError("compiling sava's CUDA kernels at run time needs CuPy (pip install cupy-cuda12x or "
                          "cupy-cuda13x)") from exc
    if not CUDA_SOURCE.is_file():
        raise NativeError(f"the CUDA sources are not here ({CUDA_SOURCE}); use a source checkout of sava")
    return cupy.RawModule(code=CUDA_SOURCE.read_text(), options=("--std=c++14",))


def _as_cupy(array):
    """Any CUDA array speaking DLPack (torch, CuPy, JAX...) as a CuPy view, without a copy."""
    import cupy

    return array if isinstance(array, cupy.ndarray) else cupy.from_dlpack(array)


def cuda_apply(video, frame_idx, flow=None, noise=None):
    """``apply_perturbation`` on the GPU through CuPy; inputs are CUDA arrays (DLPack), the result a CuPy array."""
    import cupy

    video = cupy.ascontiguousarray(_as_cupy(video), dtype=cupy.float32)
    t, c, h, w = video.shape
    frames = [int(i) for i in (frame_idx.tolist() if hasattr(frame_idx, "tolist") else frame_idx)]
    if len(set(frames)) != len(frames) or any(not 0 <= i < t for i in frames):
        raise NativeError(f"frame indices must be distinct and inside the clip of {t} frames, got {frames}")
    k = len(frames)
    flow = None if flow is None else cupy.ascontiguousarray(_as_cupy(flow), dtype=cupy.float32)
    noise = None if noise is None else cupy.ascontiguousarray(_as_cupy(noise), dtype=cupy.float32)
    if flow is not None and flow.shape != (k, 2, h, w):
        raise NativeError(f"flow must be {k} x 2 x {h} x {w}, got {flow.shape}")
    if noise is not None and noise.shape not in ((k, c, h, w), (k, c, 1, 1)):
        raise NativeError(f"noise must be {k} x {c} x {h} x {w} or {k} x {c} x 1 x 1, got {noise.shape}")
    out = video.copy()
    if k == 0:
        return out
    device_frames = cupy.asarray(frames, dtype=cupy.int64)
    clean = video[device_frames].copy()
    kernel = cuda_module().get_function("sava_apply_kernel")
    work = k * h * w
    null = cupy.uint64(0)
    kernel(((work + THREADS - 1) // THREADS,), (THREADS,),
           (clean, out, device_frames, cupy.int64(k), cupy.int64(c), cupy.int64(h), cupy.int64(w),
            flow if flow is not None else null, noise if noise is not None else null,
            cupy.int64(1 if noise is None else noise.shape[-2] * noise.shape[-1])))
    return out


def cuda_ssim(x, y):
    """Per-frame SSIM of ``n x C x H x W`` CUDA arrays through CuPy."""
    import cupy

    from .kernels.reference import gaussian_window

    x = cupy.ascontiguousarray(_as_cupy(x), dtype=cupy.float32)
    y = cupy.ascontiguousarray(_as_cupy(y), dtype=cupy.float32)
    if x.shape != y.shape or x.ndim != 4 or min(x.shape[-2:]) < 11:
        raise NativeError(f"ssim takes two n x C x H x W arrays with H, W >= 11; got {x.shape} and {y.shape}")
    n, c, h, w = x.shape
    taps = cupy.asarray(gaussian_window().numpy())
    sums = cupy.zeros(n, dtype=cupy.float64)
    out = cupy.empty(n, dtype=cupy.float32)
    work = n * c * (h - 10) * (w - 10)
    module = cuda_module()
    module.get_function("sava_ssim_kernel")(((work + THREADS - 1) // THREADS,), (THREADS,),
                                            (x, y, cupy.int64(n), cupy.int64(c), cupy.int64(h), cupy.int64(w), taps,
                                             sums))
    module.get_function("sava_ssim_finish_kernel")(((n + THREADS - 1) // THREADS,), (THREADS,),
                                                   (sums, out, cupy.int64(n), cupy.float64(c * (h - 10) * (w - 10))))
    return out
