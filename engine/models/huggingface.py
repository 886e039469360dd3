"""``hf:FOLDER``: any Hugging Face video classifier saved with ``save_pretrained`` (config, weights and the
processor's settings), or ``hf:ORG/NAME`` of one already in the local Hugging Face cache, as a model that
takes ``B x T x C x H x W`` in [0, 1] and returns logits. Nothing is downloaded."""

from __future__ import annotations

import inspect
import json
import re
import sys
from pathlib import Path

from torch import nn

from ..data.sampling import Sampling, zoom_for_resize
from ..errors import ModelError
from .adapter import ModelInfo, VideoModel
from .weights_file import fill

PROCESSOR_FILES = ("video_preprocessor_config.json", "preprocessor_config.json")
# Processors whose rescaling subtracts 1 in their code, with no ``offset`` setting in the file to say so.
OFFSET_IN_CODE = {"VivitVideoProcessor"}
GENERIC_LABEL = re.compile(r"LABEL_\d+")  # what transformers names the outputs of a config without id2label
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")  # a model's name on the Hugging Face Hub: ORG/NAME


class LogitsOf(nn.Module):
    """A transformers classifier called as ``model(pixel_values=x).logits``, as a module from videos to logits."""

    def __init__(self, classifier: nn.Module):
        super().__init__()
        self.classifier = classifier

    def forward(self, videos):
        return self.classifier(pixel_values=videos).logits


def import_transformers():
    """transformers, imported past this repository's ``kernels/`` folder.

    Run from a checkout's root (``python -m``, pytest), the folder that installs as ``sava.kernels`` is also
    importable as a top-level ``kernels`` and hides the Hugging Face ``kernels`` package that transformers
    imports by that name (and then fails on). The checkout's root leaves ``sys.path`` while transformers and
    its hub-kernel integration import, so the name resolves to the real package, or to none."""
    from .. import kernels as ours

    root = Path(ours.__file__).resolve().parents[1]
    shadowed = isinstance(sys.modules.get("kernels"), type(sys)) and \
        Path(getattr(sys.modules["kernels"], "__file__", "") or "").resolve().parent == root / "kernels"
    saved = sys.path[:]
    sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != root]
    if shadowed:
        del sys.modules["kernels"]
    try:
        import transformers
        import transformers.integrations.hub_kernels  # noqa: F401 -- evaluated here, past the shadow
    except ImportError as exc:
        raise ModelError(f"hf: models need transformers: pip install 'sava[hf]' ({exc})") from exc
    finally:
        sys.path[:] = saved
    return transformers


def _side(value) -> tuple[int, int] | None:
    """A processor's or config's frame size: an int, ``[h, w]`` or a dict of height/width or shortest_edge."""
    if isinstance(value, int):
        return value, value
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return int(value[0]), int(value[1])
    if isinstance(value, dict):
        if "height" in value and "width" in value:
            return int(value["height"]), int(value["width"])
        if "shortest_edge" in value:
            return int(value["shortest_edge"]), int(value["shortest_edge"])
    return None


def _processor(folder: Path) -> dict:
    for name in PROCESSOR_FILES:
        if (folder / name).is_file():
            try:
                return json.loads((folder / name).read_text(encoding="utf-8"))
            except json.JSONDecodeError as exc:
                raise ModelError(f"{folder / name} is not valid JSON: {exc}") from exc
    return {}


def _processor_setting(processor: dict, key: str, transformers, fallback):
    """A processor setting: the file's, else the default of the processor class the file names (ViViT's
    processor rescales by 1/127.5 and shifts by -1 unless told otherwise), else the usual default."""
    if key in processor:
        return processor[key]
    for kind in ("image_processor_type", "video_processor_type"):
        try:  # a class needing a library this environment lacks (torchvision) fails on any attribute
            cls = getattr(transformers, str(processor.get(kind)))
            parameter = inspect.signature(cls.__init__).parameters.get(key)
            if parameter is not None and parameter.default is not inspect.Parameter.empty:
                return parameter.default
            if hasattr(cls, key):
                return getattr(cls, key)
        except (AttributeError, ImportError, TypeError, ValueError):
            continue
    return fallback


def _per_channel(value, channels: int, what: str, folder: str) -> tuple[float, ...]:
    values = (value,) * channels if isinstance(value, (int, float)) else tuple(value)
    if len(values) not in (1, channels) or not all(isinstance(v, (int, float)) for v in values):
        raise ModelError(f"hf:{folder}: the processor's {what} {value!r} is not one number per channel")
    return tuple(float(v) for v in values)


def _normalisation(processor: dict, channels: int, transformers, folder: str):
    """Mean and std that map a clip in [0, 1] to what the processor would have fed the model.

    A processor takes 8-bit pixels p, rescales (p * factor, then - 1 where ``offset`` is set) and normalises
    ((v - mean) / std). With p = 255 x for our x in [0, 1] that is (x - mean') / std' with
    mean' = (mean - shift) / scale and std' = std / scale, scale = 255 factor: one affine map, which the
    model's own normalisation (and every export of it) then carries."""
    setting = lambda key, fallback: _processor_setting(processor, key, transformers, fallback)  # noqa: E731
    scale, shift = 255.0, 0.0
    if setting("do_rescale", True):
        scale = round(255.0 * float(setting("rescale_factor", 1 / 255)), 9)  # 255 x (1 / 255) is 1, not 1 - ulp
        shift = -1.0 if setting("offset", False) or processor.get("video_processor_type") in OFFSET_IN_CODE else 0.0
    if scale <= 0:
        raise ModelError(f"hf:{folder}: the processor's rescale_factor must be positive")
    if setting("do_normalize", True):
        mean = _per_channel(setting("image_mean", None) or 0.5, channels, "image_mean", folder)
        std = _per_channel(setting("image_std", None) or 0.5, channels, "image_std", folder)
    else:
        mean, std = (0.0,) * channels, (1.0,) * channels
    if min(std) <= 0:
        raise ModelError(f"hf:{folder}: the processor's image_std must be positive")
    return tuple((m - shift) / scale for m in mean), tuple(s / scale for s in std)


def _class_names(config) -> list[str] | None:
    labels = getattr(config, "id2label", None) or {}
    names = [labels[i] for i in sorted(labels, key=int)] if labels else []
    if not names or all(GENERIC_LABEL.fullmatch(str(name)) for name in names):
        return None  # transformers' placeholders say nothing of what the outputs mean
    return [str(name) for name in names]


def _sampling(processor: dict, transformers, clip_size: tuple[int, int]) -> Sampling:
    """How the processor fits a frame to the model's ``clip_size``: ``crop`` where it keeps the aspect ratio
    (a shortest-edge resize) or crops the centre, as the video processors do by default; ``stretch`` where it
    resizes straight to a height and width. A resize larger than the centre crop it is followed by (ViViT's
    short side of 256 before 224 x 224) is the zoom."""
    resizes = _processor_setting(processor, "do_resize", transformers, True)
    size = _processor_setting(processor, "size", transformers, None)
    keeps_aspect = resizes and isinstance(size, dict) and "shortest_edge" in size
    crops = _processor_setting(processor, "do_center_crop", transformers, True)
    fit = "crop" if crops or keeps_aspect else "stretch"
    resize = _side(size) if resizes and crops else None
    if resize is None or resize[0] < clip_size[0] or resize[1] < clip_size[1]:  # a smaller resize is padded
        return Sampling(fit)
    return Sampling(fit, zoom=zoom_for_resize([resize[0]] if keeps_aspect else list(resize), clip_size))


def is_hub_id(spec: str) -> bool:
    """``ORG/NAME`` as the Hugging Face Hub names a model, and no such folder here."""
    return HUB_ID.fullmatch(spec) is not None and not Path(spec).exists()


def local_folder(spec: str) -> Path:
    """The folder ``hf:SPEC`` names: a ``save_pretrained`` folder, or for a Hub id (``ORG/NAME``) the snapshot
    of it already in the local Hugging Face cache, resolved by huggingface_hub offline (nothing is
    downloaded)."""
    path = Path(spec)
    if (path / "config.json").is_file():
        return path
    if not is_hub_id(spec):
        raise ModelError(f"hf:{spec}: not a folder saved with save_pretrained (no config.json in it)")
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        snapshot = Path(snapshot_download(spec, local_files_only=True))
    except LocalEntryNotFoundError as exc:
        raise ModelError(f"hf:{spec}: no such folder, and not in the local Hugging Face cache "
                         f"({constants.HF_HUB_CACHE}); sava downloads nothing: fetch it first (huggingface-cli "
                         f"download {spec}) or give a folder saved with save_pretrained") from exc
    if not (snapshot / "config.json").is_file():
        raise ModelError(f"hf:{spec}: its snapshot in the Hugging Face cache ({snapshot}) has no config.json")
    return snapshot


def load_huggingface(folder: str, weights, *, layout=None, mean=None, std=None, device=None) -> VideoModel:
    """``weights``, when given, replace the folder's own: the classifier's state dict (as ``sava train`` saves
    it, or ``classifier.state_dict()`` from a user's own fine-tuning)."""
    path = local_folder(folder)
    transformers = import_transformers()
    try:
        classifier = transformers.AutoModelForVideoClassification.from_pretrained(str(path))
    except (OSError, ValueError, KeyError) as exc:
        raise ModelError(f"hf:{folder}: cannot load a video classifier from it: {exc}") from exc
    if weights is not None:
        fill(classifier, weights)
    config = classifier.config
    processor = _processor(path)
    frames = processor.get("num_frames") or getattr(config, "num_frames", None) or 16
    size = _side(processor.get("crop_size")) or _side(processor.get("size")) or \
        _side(getattr(config, "image_size", None)) or (224, 224)
    channels = int(getattr(config, "num_channels", 3))
    folder_mean, folder_std = _normalisation(processor, channels, transformers, folder)
    # Named as the user named it: a cache snapshot's folder is named by its revision.
    info = ModelInfo(name=f"hf:{Path(folder).name}", layout=layout or "BTCHW", mean=mean or folder_mean,
                     std=std or folder_std,
                     classes=_class_names(config), clip_shape=(int(frames), channels, *size),
                     sampling=_sampling(processor, transformers, size),
                     extra={"hf_folder": str(path), "architecture": type(classifier).__name__}
                     | ({"weights": str(weights)} if weights is not None else {}))
    return VideoModel(LogitsOf(classifier).eval(), info, device=device)
