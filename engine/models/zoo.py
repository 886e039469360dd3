"""Model-zoo presets: ``torchvision:NAME`` and ``hf:FOLDER`` name the video classifiers people attack, and the
preset knows what the user would otherwise look up: input layout, normalisation, the clip the weights were
trained on and, for a 400-way head, Kinetics-400's class names. Options the user gives win over a preset's."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..data.sampling import Sampling, zoom_for_resize

ZOO_PREFIXES = ("torchvision:", "hf:")
CLASS_LISTS = Path(__file__).parent / "classes"

# Normalisations of torchvision's video weights (their inference transforms).
KINETICS_VIDEO = ((0.43216, 0.394666, 0.37645), (0.22803, 0.22145, 0.216989))
MVIT = ((0.45, 0.45, 0.45), (0.225, 0.225, 0.225))
IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


@dataclass(frozen=True)
class Preset:
    """One torchvision video classifier: its builder's name, the key of its output layer's weight (whose rows
    count the classes of a weights file), normalisation, default clip (frames, height, width) and how its
    weights' inference transforms fit a frame to that clip (``resize``: torchvision's ``resize_size``, a
    height and width it stretches to, or one short side it scales to; the centre of the clip's size kept), and
    the frame rate its weights' accuracy was measured at (``rate``, their docs' ``frame_rate``)."""

    name: str
    head: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    clip: tuple[int, int, int]
    resize: tuple[int, ...]
    rate: float
    note: str = ""

    @property
    def sampling(self) -> Sampling:
        """The view its weights were evaluated on; the zoom carries it to another --size."""
        size = self.clip[1:]
        fit = "crop" if len(self.resize) == 1 else "stretch"
        return Sampling(fit, zoom=zoom_for_resize(list(self.resize), size), rate=self.rate)


def _preset(name, head, norm, clip, resize, rate, note=""):
    return Preset(name, head, norm[0], norm[1], clip, resize, rate, note)


# The resizes are those of each weights entry's VideoClassification transforms in torchvision 0.26, the rates
# those its docs give for the accuracies they state ("frame_rate=15, clips_per_video=5, and clip_len=16").
TORCHVISION = {p.name: p for p in (
    _preset("r3d_18", "fc.weight", KINETICS_VIDEO, (16, 112, 112), (128, 171), 15),
    _preset("mc3_18", "fc.weight", KINETICS_VIDEO, (16, 112, 112), (128, 171), 15),
    _preset("r2plus1d_18", "fc.weight", KINETICS_VIDEO, (16, 112, 112), (128, 171), 15),
    # S3D's weights were evaluated on 128-frame clips; 32 keeps an attack's memory sane (it takes 14 or more).
    _preset("s3d", "classifier.1.weight", KINETICS_VIDEO, (32, 224, 224), (256, 256), 15, "at least 14 frames"),
    # MViT's positional embeddings fix its input: exactly 16 frames of 224 x 224.
    _preset("mvit_v1_b", "head.1.weight", MVIT, (16, 224, 224), (256,), 7.5, "exactly 16 x 224 x 224"),
    _preset("mvit_v2_s", "head.1.weight", MVIT, (16, 224, 224), (256,), 7.5, "exactly 16 x 224 x 224"),
    _preset("swin3d_t", "head.weight", IMAGENET, (32, 224, 224), (256,), 15),
    _preset("swin3d_s", "head.weight", IMAGENET, (32, 224, 224), (256,), 15),
    _preset("swin3d_b", "head.weight", IMAGENET, (32, 224, 224), (256,), 15),
)}


def kinetics400_classes() -> list[str]:
    """Kinetics-400's class names in the order its 400-way checkpoints number their outputs."""
    from ..classes import read_names

    return read_names(str(CLASS_LISTS / "kinetics400.txt"))


def is_zoo(spec: str) -> bool:
    return str(spec).startswith(ZOO_PREFIXES)


def describe_presets() -> list[dict]:
    """One row per preset family member, for ``sava models``."""
    rows = [{"name": f"torchvision:{p.name}", "clip": p.clip, "mean": p.mean, "resize": p.resize, "rate": p.rate,
             "note": p.note} for p in TORCHVISION.values()]
    rows.append({"name": "hf:FOLDER", "clip": None, "mean": None,
                 "note": "any Hugging Face video classifier saved with save_pretrained, or hf:ORG/NAME in the "
                         "local Hugging Face cache (clip, normalisation and class names from its config and "
                         "processor files)"})
    return rows
