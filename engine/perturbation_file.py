"""Reading a perturbation file back (``perturbations/ID.safetensors`` of a run folder), checked.

Files come from disk, where they may be truncated, edited or written by
something else: every tensor's dtype and shape is checked against the clip it
perturbs and the frames its manifest line lists, and every value must be
finite (a NaN noise would otherwise replay as a NaN clip, which a classifier
then "misclassifies"). Every problem is a ``DataError`` that names the file.
"""

from __future__ import annotations

from pathlib import Path

import torch

from .errors import DataError


def read_perturbation(path: str | Path, frames: list[int], clip_shape: tuple[int, int, int, int]
                      ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """``(flow, noise)`` of the file at ``path`` for a ``T x C x H x W`` clip perturbed on ``frames``."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as handle:
            tensors = {name: handle.get_tensor(name) for name in handle.keys()}
    except (OSError, SafetensorError, ValueError, RuntimeError) as exc:
        raise DataError(f"{path}: not a readable perturbation file ({exc})") from exc
    unexpected = sorted(set(tensors) - {"frames", "flow", "noise"})
    if unexpected:
        raise DataError(f"{path}: unexpected tensor(s) {', '.join(unexpected)} (a perturbation file holds frames, "
                        "flow, noise)")
    t, c, h, w = clip_shape
    k = len(frames)
    stored = tensors.get("frames")
    if stored is None or stored.dtype != torch.int64 or stored.tolist() != list(frames):
        raise DataError(f"{path}: its frames {None if stored is None else stored.tolist()} are not the "
                        f"manifest's {list(frames)}")
    if "flow" not in tensors and "noise" not in tensors:
        raise DataError(f"{path}: holds neither flow nor noise")
    shapes = {"flow": [(k, 2, h, w)], "noise": [(k, c, h, w), (k, c, 1, 1)]}
    for name, allowed in shapes.items():
        value = tensors.get(name)
        if value is None:
            continue
        if value.dtype != torch.float32:
            raise DataError(f"{path}: {name} is {value.dtype}, not float32")
        if tuple(value.shape) not in allowed:
            raise DataError(f"{path}: {name} has shape {tuple(value.shape)}; a clip of {t} x {c} x {h} x {w} "
                            f"perturbed on {k} frames needs {' or '.join(' x '.join(map(str, s)) for s in allowed)}")
        if not bool(torch.isfinite(value).all()):
            raise DataError(f"{path}: {name} holds NaN or infinite values")
    return tensors.get("flow"), tensors.get("noise")
