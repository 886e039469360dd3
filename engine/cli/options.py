"""What several commands share: number parsing, the options that describe a user's model and its clip, and
loading that model."""

from __future__ import annotations

import argparse
import math

from ..data.sampling import FITS, MAX_FRAME_RATE
from ..errors import SavaError

MAX_SIDE = 4096  # pixels per side of a resized frame; beyond this a clip no longer fits a sensible batch


def finite(text: str) -> float:
    """A number option: NaN or infinity is never a meaningful setting (``--margin nan`` would silently
    disable every comparison it enters)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """``--help`` with each option's default, added only where its help does not already say it and there is
    one to say (argparse's own formatter printed "(default: ...) (default: None)")."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "default" in text or action.default in (None, False, argparse.SUPPRESS):
            return text
        return super()._get_help_string(action)


UNBOUNDED = "none"  # a budget option's value that lifts the method's default budget


def finite_or_none(text: str) -> float | str:
    """A budget: a finite number, or ``none`` for no budget at all (Sparse holds its frames to SSIM 0.9
    unless told ``--min-ssim none``, the paper's unbounded attack)."""
    return UNBOUNDED if text.strip().lower() == UNBOUNDED else finite(text)


def floats(text: str) -> tuple[float, ...]:
    """Comma-separated per-channel values: one (all channels) or three (R, G, B)."""
    values = tuple(finite(v) for v in text.split(","))
    if len(values) not in (1, 3):
        raise argparse.ArgumentTypeError(f"give one value or three (R,G,B), got {len(values)}: {text!r}")
    return values


def input_arguments(group, whose: str = "a user model") -> None:
    """How a model sava does not bundle takes its clips: layout and normalisation."""
    group.add_argument("--layout", default=None, choices=["BTCHW", "BCTHW"],
                       help=f"input layout of {whose} (default: a zoo preset's, else BTCHW)")
    group.add_argument("--mean", type=floats, help=f"per-channel mean of {whose}, e.g. 0.45,0.45,0.45")
    group.add_argument("--std", type=floats, help=f"per-channel std of {whose}")


def user_model_arguments(group) -> None:
    """What describes a model sava does not bundle (``sava attack`` and ``sava export``)."""
    group.add_argument("--weights", help="state dict (.safetensors, .pt or .pth) of a torchvision:NAME or "
                                         "package.module:factory model (torchvision:NAME: 'cached' for the one "
                                         "torchvision downloaded into torch's hub cache); for hf:FOLDER or a "
                                         "TorchScript file, one that replaces its own (as sava train writes)")
    input_arguments(group)
    group.add_argument("--classes", default=None,
                       help="a user model's class names in its output order: a,b,c or a file of one name per "
                            "line (default: the model's own, or a classes.txt beside the model or weights file)")


def model_arguments(group, *, all_models: bool = False, files: bool = True) -> None:
    """``--model`` with the options that describe a user's model and the clip it takes (attack, export, train,
    reproduce); ``files``: the command decodes video files, and takes how they are sampled."""
    group.add_argument("--model", default="c3d-camera",
                       help="a bundled model name" + (", all (every bundled model)" if all_models else "") +
                            ", torchvision:NAME (with --weights), hf:FOLDER (a save_pretrained folder, or "
                            "ORG/NAME in the local Hugging Face cache), package.module:factory, or a TorchScript "
                            "file (sava models lists them)")
    user_model_arguments(group)
    clip_arguments(group)
    if files:
        sampling_arguments(group)


def clip_arguments(group) -> None:
    """``--clip-frames`` and ``--size``: the clip video files are decoded to, or an export is made for."""
    group.add_argument("--clip-frames", type=int, default=None,
                       help="frames per clip, sampled from each video file (default: the clip the model was "
                            "trained on where it knows it: a bundled model, a zoo preset, a sava train file; "
                            "else 16)")
    group.add_argument("--size", type=int, nargs=2, default=None, metavar=("H", "W"),
                       help="frame size of each clip (default: as --clip-frames, else 112 112)")


def stride(text: str) -> int:
    """``--frame-stride``: a whole number of frames, 0 for a clip spread over the whole file."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of frames") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"a frame stride cannot be negative, got {value}")
    return value


def rate(text: str) -> float:
    """``--frame-rate``: frames per second, above 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of frames per second") from None
    if not 0 < value <= MAX_FRAME_RATE:  # NaN fails the comparison too
        raise argparse.ArgumentTypeError(f"a frame rate lies above 0 and at most {MAX_FRAME_RATE:g} frames per "
                                         f"second, got {text}")
    return value


def sampling_arguments(group) -> None:
    """``--fit``, ``--resize``, ``--frame-stride`` and ``--frame-rate``: how a clip is taken from each video file
    (``sava.data.Sampling``)."""
    group.add_argument("--fit", default=None, choices=FITS,
                       help="how a frame of another aspect ratio becomes the clip's size: stretch (the whole "
                            "frame, distorted) or crop (scaled keeping its aspect ratio, centre kept, as "
                            "Hugging Face's video processors do) (default: the model's own, as its transforms "
                            "fit frames, else stretch)")
    group.add_argument("--resize", type=int, nargs="+", default=None, metavar="PX",
                       help="scale each frame to H W pixels (or its short side to S, aspect kept) and keep the "
                            "clip's --size from its centre, as a model evaluated on such a crop saw it (e.g. "
                            "--resize 128 171 for torchvision's R3D-18 recipe at 112 x 112); with --fit crop, H W "
                            "is covered keeping the aspect ratio (default: the model's own; a zoo preset knows its "
                            "transforms', else the clip's size)")
    spacing = group.add_mutually_exclusive_group()  # two answers to which frames a clip takes
    spacing.add_argument("--frame-stride", type=stride, default=None, metavar="N",
                         help="take the clip's frames N apart from the middle of each file, as a model trained on "
                              "short windows of motion saw them (e.g. 2 for 15 fps training on 30 fps footage); 0 "
                              "spreads them evenly over the whole file (default: the model's own: a zoo preset's "
                              "--frame-rate, what a sava train file recorded, else 0)")
    spacing.add_argument("--frame-rate", type=rate, default=None, metavar="FPS",
                         help="take the clip at FPS frames per second, whatever each file's own rate: its frames are "
                              "resampled as torchvision's frame_rate resamples them and the middle of the file kept "
                              "(torchvision's video weights were evaluated at 15 fps, MViT's at 7.5; the zoo presets "
                              "default to theirs; not with --frame-stride)")


def device_argument(group) -> None:
    """``--device``: where a command's model runs (``runner.shard.resolve_device`` reads it)."""
    group.add_argument("--device", default="auto", help="auto (CUDA when available, else CPU), cpu, cuda, cuda:N")


def model_description(args) -> dict:
    """What ``model_arguments`` took beside ``--model``, under ``TrainConfig``'s names (None where not given)."""
    return {"weights": args.weights, "layout": args.layout, "mean": args.mean, "std": args.std,
            "classes": args.classes, "clip_frames": args.clip_frames,
            "size": tuple(args.size) if args.size else None, "fit": args.fit, "frame_stride": args.frame_stride,
            "frame_rate": args.frame_rate, "resize": tuple(args.resize) if args.resize else None}


def refuse_user_model_options(args, bundled: list[str]) -> None:
    """The options ``user_model_arguments`` adds describe a model sava does not bundle: an error with a
    bundled model (or ``all`` of them), which carries its own."""
    if args.model != "all" and args.model not in bundled:
        return
    given = [name for name in ("layout", "mean", "std", "weights", "classes") if getattr(args, name) is not None]
    if given:
        owner = ("the bundled models carry their own" if args.model == "all" else
                 f"the bundled model {args.model!r} carries its own")
        raise SavaError(f"{', '.join('--' + n for n in given)} {'describes' if len(given) == 1 else 'describe'} "
                        f"a user model; {owner} (drop them)")


def load_model_from_args(args, device):
    """``--model`` with the options ``user_model_arguments`` adds (``sava.models.loading.load_named_model``)."""
    from ..models.loading import load_named_model

    return load_named_model(args.model, args.weights, layout=args.layout, mean=args.mean, std=args.std,
                            classes=args.classes, device=device)


class SettingsOnly:
    """Stands in for the model while an attack's settings are checked, before the model and data load."""

    white_box = True
    name = "settings check"
