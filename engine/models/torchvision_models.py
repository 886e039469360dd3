"""``torchvision:NAME``: torchvision's video classifiers built from a user's weights file, or from the checkpoint
torchvision downloaded into torch's hub cache before (no download is attempted); the number of classes is
read from the file's output layer."""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import ModelError, first_line
from .adapter import ModelInfo, VideoModel
from .weights_file import fill, read_state_dict
from .zoo import TORCHVISION, kinetics400_classes

KINETICS400 = 400
CACHED = "cached"  # --weights cached: the checkpoint torchvision itself downloaded earlier


def import_torchvision_video():
    """``torchvision.models.video``, or an error that says how to install a torchvision matching this torch."""
    try:
        import torchvision.models.video as video
    except ImportError as exc:
        raise ModelError(f"torchvision presets need torchvision: pip install 'sava[torchvision]' ({exc})") from exc
    except RuntimeError as exc:  # a torchvision built for another torch: "operator torchvision::nms does not exist"
        raise ModelError(
            f"torchvision does not import beside torch {torch.__version__} ({first_line(exc)}): the two "
            "were built for each other's other versions. Install the torchvision release made for this torch from "
            "the same index (CPU torch: pip install torchvision --index-url https://download.pytorch.org/whl/cpu; "
            "see the compatibility table in torchvision's README)") from exc
    return video


def cached_checkpoint(name: str) -> Path:
    """The checkpoint of ``name`` that torchvision downloaded into torch's hub cache
    (``$TORCH_HOME/hub/checkpoints``, ``~/.cache/torch`` by default) when its weights were last asked for:
    files are named ``NAME-HASH.pth``; nothing is downloaded here."""
    folder = Path(torch.hub.get_dir()) / "checkpoints"
    found = sorted(folder.glob(f"{name}-*.pth")) + sorted(folder.glob(f"{name}_*-*.pth"))
    if not found:
        raise ModelError(f"--weights {CACHED}: no {name} checkpoint in torch's hub cache ({folder}); sava "
                         f"downloads nothing: give the weights file, or fetch it once with torchvision "
                         f"(torchvision.models.video.{name}(weights='DEFAULT'))")
    if len(found) > 1:
        raise ModelError(f"--weights {CACHED}: {len(found)} {name} checkpoints in {folder} "
                         f"({', '.join(path.name for path in found)}); give the one to use as --weights FILE")
    return found[0]


def load_torchvision(name: str, weights, *, layout=None, mean=None, std=None, device=None) -> VideoModel:
    if name not in TORCHVISION:
        raise ModelError(f"unknown torchvision preset {name!r}; presets: {', '.join(sorted(TORCHVISION))} "
                         "(sava models lists them)")
    preset = TORCHVISION[name]
    if weights is not None and str(weights) == CACHED:
        weights = cached_checkpoint(name)
    state = read_state_dict(weights) if weights is not None else None
    if state is not None and preset.head not in state:
        raise ModelError(f"{weights} holds no {preset.head!r}: not a torchvision {name} state dict "
                         f"(its first keys: {', '.join(list(state)[:4])})")
    classes = int(state[preset.head].shape[0]) if state is not None else KINETICS400
    video = import_torchvision_video()
    module = getattr(video, name)(weights=None, num_classes=classes)
    if state is not None:
        fill(module, weights, state)
    # preset.sampling: the resize of its weights' transforms, then their centre crop.
    info = ModelInfo(name=f"torchvision:{name}", layout=layout or "BCTHW", mean=mean or preset.mean,
                     std=std or preset.std, classes=kinetics400_classes() if classes == KINETICS400 else None,
                     clip_shape=(preset.clip[0], 3, *preset.clip[1:]), sampling=preset.sampling,
                     extra={"weights": str(weights) if weights is not None else "random (no --weights)"})
    return VideoModel(module.eval(), info, device=device)


__all__ = ["import_torchvision_video", "load_torchvision"]
