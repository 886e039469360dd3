"""The bundled target models: three architecture families trained on each
bundled dataset. Weights ship as safetensors beside this file; their metadata
holds everything needed to rebuild and wrap the model."""

from __future__ import annotations

import json
from pathlib import Path

from safetensors import safe_open
from safetensors.torch import load_file

from ..data.sampling import NOT_RECORDED, Sampling
from ..errors import ModelError
from .adapter import ModelInfo, VideoModel
from .architectures import ARCHITECTURES

WEIGHTS_DIR = Path(__file__).parent / "weights"
DATASET_OF = {"camera": "camera", "digits": "digits"}
DEFAULT_MODEL = "c3d-camera"
# Per-channel statistics used to normalise inputs inside every bundled model.
MEAN = (0.45, 0.45, 0.45)
STD = (0.25, 0.25, 0.25)


def bundled_names() -> list[str]:
    return sorted(p.stem for p in WEIGHTS_DIR.glob("*.safetensors"))


def weights_path(name: str) -> Path:
    path = WEIGHTS_DIR / f"{name}.safetensors"
    if not path.is_file():
        available = ", ".join(bundled_names()) or "none (run python -m sava.models.train_bundled)"
        raise ModelError(f"unknown model {name!r}; bundled models: {available}")
    return path


def read_metadata(path: str | Path) -> dict:
    with safe_open(str(path), framework="pt") as handle:
        raw = handle.metadata() or {}
    return {key: json.loads(value) for key, value in raw.items()}


def info_from_metadata(meta: dict) -> ModelInfo:
    return ModelInfo(
        name=meta["name"],
        layout=meta["layout"],
        mean=tuple(meta["mean"]),
        std=tuple(meta["std"]),
        classes=list(meta["classes"]),
        clip_shape=tuple(meta["clip_shape"]),
        sampling=Sampling.recorded(meta),  # a file sava train wrote records how its video files were sampled
        extra={k: v for k, v in meta.items() if k not in {"name", "layout", "mean", "std", "classes", "clip_shape",
                                                             *NOT_RECORDED}},
    )


def build(arch: str, num_classes: int, channels: int):
    if arch not in ARCHITECTURES:
        raise ModelError(f"unknown architecture {arch!r}; known: {', '.join(sorted(ARCHITECTURES))}")
    return ARCHITECTURES[arch](num_classes=num_classes, channels=channels)


def load_bundled(name: str, device=None) -> VideoModel:
    return load_weights_file(weights_path(name), device)


def load_weights_file(path: str | Path, device=None) -> VideoModel:
    """A model saved with its sava metadata (the bundled weights, or a ``sava train`` result)."""
    meta = read_metadata(path)
    if "arch" not in meta:
        raise ModelError(f"{path} has no sava metadata (arch, classes, ...); load it as package.module:factory "
                         "with --weights instead")
    module = build(meta["arch"], len(meta["classes"]), meta["clip_shape"][1])
    module.load_state_dict(load_file(str(path)))
    module.eval()
    return VideoModel(module, info_from_metadata(meta), device=device)


def describe() -> list[dict]:
    """One row per bundled model: name, architecture, dataset, test accuracy."""
    rows = []
    for name in bundled_names():
        meta = read_metadata(weights_path(name))
        rows.append({key: meta[key] for key in ("name", "arch", "dataset", "test_accuracy", "clip_shape")}
                    | {"classes": len(meta["classes"])})
    return rows
