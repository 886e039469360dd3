"""The ``sava`` command line.

    sava attack                 # DeepSAVA, one frame, on the bundled 3D CNN and its test clips
    sava attack --perturbation all --num-videos 60
    sava models                 # bundled models and their test accuracy
    sava data                   # bundled datasets
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import sys
from datetime import datetime
from pathlib import Path

import torch

from . import __version__
from .attacks import LINF_METHODS, METHODS
from .attacks.deepsava import (
    DEFAULT_ADV_LOSS,
    DEFAULT_FLOW_LR,
    DEFAULT_LAM,
    DEFAULT_LAM_END,
    DEFAULT_SELECTOR,
)
from .errors import SavaError
from .reproduce import TABLES as REPRODUCIBLE_TABLES


def _finite(text: str) -> float:
    """A number option: NaN or infinity is never a meaningful setting (``--margin nan`` would silently
    disable every comparison it enters)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def _floats(text: str) -> tuple[float, ...]:
    """Comma-separated per-channel values: one (all channels) or three (R, G, B)."""
    values = tuple(_finite(v) for v in text.split(","))
    if len(values) not in (1, 3):
        raise argparse.ArgumentTypeError(f"give one value or three (R,G,B), got {len(values)}: {text!r}")
    return values


REPRODUCIBLE = list(REPRODUCIBLE_TABLES)


def _user_model_arguments(group) -> None:
    """What describes a model sava does not bundle (``sava attack`` and ``sava export``)."""
    group.add_argument("--weights", help="state dict of a torchvision:NAME or package.module:factory model "
                                         "(.safetensors, .pt or .pth)")
    group.add_argument("--layout", default=None, choices=["BTCHW", "BCTHW"],
                       help="input layout of a user model (default: a zoo preset's, else BTCHW)")
    group.add_argument("--mean", type=_floats, help="per-channel mean of a user model, e.g. 0.45,0.45,0.45")
    group.add_argument("--std", type=_floats, help="per-channel std of a user model")
    group.add_argument("--classes", default=None,
                       help="a user model's class names in its output order: a,b,c or a file of one name per "
                            "line (default: the model's own, or a classes.txt beside the model or weights file)")


def _refuse_user_model_options(args, bundled: list[str]) -> None:
    """The options ``_user_model_arguments`` adds describe a model sava does not bundle: an error with a
    bundled model (or ``all`` of them), which carries its own."""
    if args.model != "all" and args.model not in bundled:
        return
    given = [name for name in ("layout", "mean", "std", "weights", "classes") if getattr(args, name) is not None]
    if given:
        owner = ("the bundled models carry their own" if args.model == "all" else
                 f"the bundled model {args.model!r} carries its own")
        raise SavaError(f"{', '.join('--' + n for n in given)} {'describes' if len(given) == 1 else 'describe'} "
                        f"a user model; {owner} (drop them)")


def clip_of(model, spec: str, frames: int | None, size) -> tuple[int, list[int]]:
    """Frames and frame size for decoding video files: the user's, else a zoo preset's clip, else 16 x 112 x 112
    (the bundled models keep the fixed default their earlier runs recorded, so those runs still resume)."""
    from .models.zoo import is_zoo

    clip = model.info.clip_shape if is_zoo(spec) else None
    return (frames or (clip[0] if clip else DEFAULT_FRAMES),
            list(size or (clip[2:] if clip else (DEFAULT_SIDE, DEFAULT_SIDE))))


def _load_model_from_args(args, device):
    """``--model`` with the options ``_user_model_arguments`` adds; its class names set from wherever
    ``classes.model_names`` finds them (recorded in ``model.info.extra["class_order"]``)."""
    from .classes import model_names
    from .models.loading import load_model

    model = load_model(args.model, args.weights, layout=args.layout, mean=args.mean, std=args.std, device=device)
    names = model_names(model, args.model, args.weights, args.classes)
    if names.names is not None:
        model.info.classes = names.names
    model.info.extra["class_order"] = names.source
    return model


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sava", description="Sparse adversarial attacks on video classifiers.")
    parser.add_argument("--version", action="version", version=f"sava {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an unexpected error")
    sub = parser.add_subparsers(dest="command", required=True)

    attack = sub.add_parser("attack", help="run DeepSAVA on a model and a dataset, write a run folder",
                            formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    what = attack.add_argument_group("target and data")
    what.add_argument("--model", default="c3d-camera",
                      help="bundled model name, torchvision:NAME (with --weights), hf:FOLDER (a save_pretrained "
                           "folder), package.module:factory, or a TorchScript file (sava models lists them)")
    _user_model_arguments(what)
    what.add_argument("--data", help="bundled set name, a folder of class sub-folders, or a CSV of path,label "
                                     "(default: the bundled model's own set)")
    what.add_argument("--split", default="test", choices=["test", "train"], help="split of a bundled set")
    what.add_argument("--num-videos", type=int, default=64, help="attack the first N videos (0: all)")
    what.add_argument("--clip-frames", type=int, default=None,
                      help="frames sampled from each video file (default: a zoo preset's clip, else 16)")
    what.add_argument("--size", type=int, nargs=2, default=None, metavar=("H", "W"),
                      help="frame size video files are resized to (default: a zoo preset's, else 112 112)")

    how = attack.add_argument_group("attack (settings left out take each method's default)")
    how.add_argument("--method", default="deepsava", choices=list(METHODS),
                     help="deepsava (flow + noise, SSIM); sparse (Wei et al. 2019: noise, l2,1); flicker (sparse "
                          "flickering); keyframe (Xu et al. 2022: adaptive keyframes, two-stage loss); fgsm, bim, mi, "
                          "di, ti (L-infinity transfer attacks, --tt for temporal translation); msanet (attention-"
                          "guided PGD after the MSANet abstract)")
    how.add_argument("--frames", "-k", type=int, default=None,
                     help="perturbed frames per video (default 1; keyframe: as many as reach --boundary)")
    how.add_argument("--selector", default=None,
                     help=f"first, random, saliency (largest class-score gradient), keyframes[:B] (adaptive), ifd "
                          f"(inter-frame difference), bo (Bayesian optimisation), brute (every frame), or frame "
                          f"indices such as 0,7 (default: deepsava {DEFAULT_SELECTOR}, keyframe keyframes, others "
                          f"first)")
    how.add_argument("--bo-evaluations", type=int, default=4,
                     help="most candidates a video scores under --selector bo (it stops once one fools the model)")
    how.add_argument("--score-steps", type=int, default=10,
                     help="generator steps that score one candidate (bo, brute)")
    how.add_argument("--perturbation", default="combined", choices=["combined", "noise", "flow", "all"],
                     help="deepsava: 'all' runs combined, noise-only and flow-only side by side (paper Table 7)")
    how.add_argument("--lam", type=_finite, default=None,
                     help=f"deepsava: SSIM weight at a video's first iteration (default {DEFAULT_LAM:g}; the paper: "
                          f"1, 1.5 for CNN+LSTM); sparse: the l2,1 weight; flicker: the smoothness weight")
    how.add_argument("--lam-end", type=_finite, default=DEFAULT_LAM_END,
                     help="deepsava: SSIM weight at the iteration cap, reached geometrically (set equal to --lam for "
                          "a fixed weight, as in the paper)")
    how.add_argument("--iters", type=int, default=None,
                     help="iteration cap per video (default 100); fgsm, bim, ...: the number of steps")
    how.add_argument("--flow-lr", type=_finite, default=DEFAULT_FLOW_LR, help="Adam learning rate of the flow (pixels)")
    how.add_argument("--noise-lr", type=_finite, default=None, help="Adam learning rate of the noise (or flicker)")
    how.add_argument("--min-ssim", type=_finite, default=None, help="SSIM budget for every perturbed frame")
    how.add_argument("--margin", type=_finite, default=None,
                     help="deepsava, sparse, flicker: keep going after a success until it holds by this many "
                          "logits (or the cap); for perturbations that should transfer or survive compression")
    how.add_argument("--max-l21", type=_finite, default=None, help="l2,1 budget (per-pixel) for each video")
    how.add_argument("--boundary", type=_finite, default=None,
                     help="keyframe: share of the total frame weight the keyframes reach (default 0.3; targeted "
                          "0.4)")
    how.add_argument("--epsilon", type=_finite, default=None,
                     help="L-infinity budget of fgsm ... msanet (default 16/255)")
    how.add_argument("--tt", action="store_true", help="fgsm, bim, mi, di, ti: temporal-translation gradients")
    how.add_argument("--tt-shift", type=int, default=7, help="TT shift length L")
    how.add_argument("--tt-weights", default="gaussian", choices=["gaussian", "linear", "uniform"])
    how.add_argument("--tt-strategy", default="adjacent", choices=["adjacent", "remote", "random"])
    how.add_argument("--targeted", action="store_true", help="targeted attack (target: --target-class, "
                                                            "else the next class after the label)")
    how.add_argument("--target-class", type=int, default=None)
    how.add_argument("--adv-loss", default=None, choices=["ce", "log1mp"],
                     help=f"log1mp: -log(1 - p_y), whose gradient does not vanish on confident models; "
                          f"ce: cross-entropy (default {DEFAULT_ADV_LOSS}; keyframe and the L-infinity family use ce)")

    run = attack.add_argument_group("run")
    run.add_argument("--batch-size", type=int, default=None, help="videos attacked at once (default 32; "
                                                                    "L-infinity family 8)")
    run.add_argument("--device", default="auto", help="auto (CUDA when available, else CPU), cpu, cuda, cuda:N")
    run.add_argument("--precision", default="fp32", choices=["fp32", "bf16"],
                     help="bf16: the model's forward and backward under bfloat16 autocast (a GPU speed lever; "
                          "success is then the bf16 model's decision)")
    run.add_argument("--compile", action="store_true",
                     help="torch.compile the model (CUDA graphs on CUDA); every step then runs the full batch")
    run.add_argument("--no-cuda-graphs", action="store_true",
                     help="on CUDA, run every attack step eagerly instead of replaying it as a CUDA graph "
                          "(as SAVA_CUDA_GRAPHS=0)")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--out", type=Path, default=None,
                     help="run folder (default: runs/<time>-<model>); an existing run folder is resumed")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.add_argument("--workers", type=int, default=2, help="processes decoding video files ahead of the attack")
    run.add_argument("--save-videos", action="store_true",
                     help="also write each adversarial clip as a lossless video (adversarial/ID.mkv)")

    repro = sub.add_parser("reproduce", help="regenerate the shape of a paper table on the bundled benchmark",
                           formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    repro.add_argument("tables", nargs="+", choices=REPRODUCIBLE + ["all"], metavar="TABLE",
                       help=f"one or more of {', '.join(REPRODUCIBLE)}, or all (runs shared between the tables of "
                            "one model are made once)")
    repro.add_argument("--model", default="c3d-camera", help="a bundled model, or all")
    repro.add_argument("--num-videos", type=int, default=32)
    repro.add_argument("--iters", type=int, default=100)
    repro.add_argument("--out", type=Path, default=Path("runs/reproduce"))

    export = sub.add_parser("export", help="export a target model to ONNX, checked against torch",
                            formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    export.add_argument("--model", default="c3d-camera",
                        help="a bundled model, all, torchvision:NAME (with --weights), hf:FOLDER, "
                             "package.module:factory, or a TorchScript file")
    _user_model_arguments(export)
    export.add_argument("--clip-frames", type=int, default=None,
                        help="frames of the clip a user model takes (default 16; bundled models know theirs)")
    export.add_argument("--size", type=int, nargs=2, default=None, metavar=("H", "W"),
                        help="frame size a user model takes (default 112 112)")
    export.add_argument("--out", type=Path, default=Path("exports"), help="folder for MODEL.onnx")
    export.add_argument("--tolerance", type=_finite, default=1e-4,
                        help="largest |ONNX Runtime - torch| logit difference accepted")
    export.add_argument("--fixed-time", action="store_true", help="do not try a dynamic time axis")

    transfer = sub.add_parser("transfer", help="fooling-rate matrix of adversarial videos across models and "
                                               "runtimes (DeepSAVA Table 12)",
                              formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    transfer.add_argument("--dataset", default="camera", help="bundled set whose bundled models are sources and "
                                                              "targets by default")
    transfer.add_argument("--sources", default=None, help="comma-separated white-box models (default: the "
                                                          "dataset's bundled models)")
    transfer.add_argument("--targets", default=None,
                          help="comma-separated models (anything --model takes, SPEC@WEIGHTS for a weights file, "
                               "e.g. torchvision:r3d_18@r3d.pth) or .onnx files, which run on the ONNX runtimes "
                               "only (default: the dataset's bundled models)")
    transfer.add_argument("--methods", default="deepsava,sparse", help="attacks run on each source")
    transfer.add_argument("--frames", "-k", type=int, default=7, help="perturbed frames (the paper's seven)")
    transfer.add_argument("--runs", nargs="*", type=Path, default=[],
                          help="sava attack run folders to use as sources instead of running attacks")
    transfer.add_argument("--runtime", default="torch,onnxruntime",
                          help="comma-separated runtimes for the targets: torch, onnxruntime, tensorrt")
    transfer.add_argument("--provider", default="cpu", choices=["cpu", "cuda", "tensorrt"],
                          help="ONNX Runtime execution provider")
    transfer.add_argument("--precision", default="fp32", choices=["fp32", "fp16"], help="TensorRT precision")
    transfer.add_argument("--num-videos", type=int, default=32)
    transfer.add_argument("--iters", type=int, default=100)
    transfer.add_argument("--margin", type=_finite, default=0.0,
                          help="sparse methods: stop a video only once its success holds by this many logits")
    transfer.add_argument("--onnx-dir", type=Path, default=Path("exports"),
                          help="where bundled models are exported for ONNX runtimes (reused when present)")
    transfer.add_argument("--out", type=Path, default=None, help="default: runs/transfer-<time>")
    transfer.add_argument("--seed", type=int, default=0)

    training = sub.add_parser("train", help="fine-tune a bundled model under a defence (adversarial training)",
                              formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    training.add_argument("--model", default="c3d-camera", help="a bundled model (its architecture, data, weights)")
    training.add_argument("--defence", default="combined", choices=["none", "pgd", "combined", "injected"])
    training.add_argument("--epochs", type=int, default=3)
    training.add_argument("--lr", type=_finite, default=1e-4)
    training.add_argument("--batch-size", type=int, default=32)
    training.add_argument("--steps", type=int, default=5, help="inner attack steps per batch (pgd, combined)")
    training.add_argument("--epsilon", type=_finite, default=8 / 255, help="noise budget (L-infinity)")
    training.add_argument("--alpha", type=_finite, default=None, help="inner step size (default 2.5 epsilon / steps)")
    training.add_argument("--frames", type=int, default=None,
                          help="perturbed frames per clip (pgd: default all; combined: default 1)")
    training.add_argument("--max-flow", type=_finite, default=1.0, help="combined: flow budget in pixels")
    training.add_argument("--inject", type=int, default=300, help="injected: DeepSAVA clips added to the data")
    training.add_argument("--from-scratch", action="store_true", help="start from random weights")
    training.add_argument("--limit", type=int, default=None, help="train on the first N clips only")
    training.add_argument("--seed", type=int, default=0)
    training.add_argument("--checkpoint-every", type=int, default=20, help="batches between checkpoints")
    training.add_argument("--out", type=Path, default=None,
                          help="run folder (default: runs/train-<model>-<defence>); an existing one is resumed")
    training.add_argument("--no-progress", action="store_true")

    merge = sub.add_parser("merge", help="gather the manifests of a run folder (shards from several machines) and "
                                         "write its summary")
    merge.add_argument("folder", type=Path)

    sub.add_parser("models", help="list the bundled models with their test accuracy")
    sub.add_parser("data", help="list the bundled datasets")
    return parser


# ---------------------------------------------------------------------- attack
def cmd_attack(args) -> int:
    from .classes import ClassNames, accuracy_warning, label_map
    from .data import load_dataset
    from .provenance import environment
    from .runner import DatasetRun, current_shard, run_dataset
    from .selection import check_k

    torch.manual_seed(args.seed)
    _check_run_settings(args)
    if args.perturbation != "combined" and args.method != "deepsava":
        raise SavaError(f"--perturbation is a deepsava setting; {args.method} has its own perturbation")
    kinds = ["combined", "noise", "flow"] if args.perturbation == "all" else [args.perturbation]
    build_attack(args, model=None, kind=kinds[0])  # bad settings fail here, before the model and data load
    shard = current_shard()
    if shard.distributed and args.out is None:
        raise SavaError("a torchrun run needs --out: every process must write into the same run folder")
    try:
        model = _load_model_from_args(args, shard.device(args.device))
        if args.precision != "fp32":
            model.precision = args.precision
        if args.no_cuda_graphs:  # read by every attack loop of this process, torchrun workers included
            os.environ["SAVA_CUDA_GRAPHS"] = "0"
        if args.compile:
            if not hasattr(model, "compile"):
                raise SavaError(f"--compile needs a white-box torch model; {model.name} is not one")
            model.compile()
        data_spec = args.data or model.info.extra.get("dataset")
        if data_spec is None:
            raise SavaError("--data is needed for a model that is not bundled")
        args.clip_frames, args.size = clip_of(model, args.model, args.clip_frames, args.size)
        dataset = load_dataset(data_spec, args.split, args.clip_frames, tuple(args.size))
        count = len(dataset) if args.num_videos == 0 else min(args.num_videos, len(dataset))
        if args.frames is not None:
            check_k(args.frames, dataset.clip_shape[0])  # before any work or any file
        names = ClassNames(model.classes, model.info.extra.get("class_order", "the model's metadata"))
        relabel, notice = label_map(dataset, names, model.name, data_spec)
        if notice:
            print(notice, file=sys.stderr)
        attacks = [(kind, build_attack(args, model, kind)) for kind in kinds]

        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        base = args.out or Path("runs") / f"{stamp}-{Path(model.name).stem}"
        rows = []
        for kind, attack in attacks:
            folder = base / kind if len(kinds) > 1 else base
            meta = {"sava_version": __version__, "model": model.name, "data": data_spec, "split": args.split,
                    "clip_frames": args.clip_frames, "size": list(args.size), "videos": count,
                    "settings": attack.settings, "device": str(model.device), "classes": model.classes,
                    "class_order": names.source,
                    "environment": environment(str(model.device))}  # commit and versions: where a figure came from
            if args.precision != "fp32":  # recorded only when set, so runs from before the option still resume
                meta["precision"] = args.precision
            label = attack.settings["method"] + (f" {kind}" if args.method == "deepsava" else "")
            run = DatasetRun(folder, meta, count, relabel, len(model.classes or relabel), args.targeted,
                             args.target_class, args.workers, args.save_videos, not args.no_progress, label, shard,
                             log=lambda line: print(line, file=sys.stderr))
            summary = run_dataset(attack, dataset, run)
            rows.append((label, summary, folder))
    finally:
        shard.close()
    if shard.rank == 0:
        for _, _, folder in rows:
            for item in json.loads((folder / "metrics.json").read_text())["skipped_files"]:
                print(f"skipped video {item['video_id']}: {item['reason']}", file=sys.stderr)
        _print_table(model.name, data_spec, args, rows)
        warning = accuracy_warning(rows[0][1], args.targeted, names)
        if warning:
            print(warning, file=sys.stderr)
    return 0


def _check_run_settings(args) -> None:
    """Settings that no dataset or model can make valid, refused before anything loads or decodes."""
    from .models.bundled import bundled_names
    from .runner.shard import resolve_device

    if args.num_videos < 0:
        raise SavaError(f"--num-videos must be >= 0, got {args.num_videos}")
    if args.clip_frames is not None and args.clip_frames < 1:
        raise SavaError(f"--clip-frames must be at least 1, got {args.clip_frames}")
    height, width = args.size or (DEFAULT_SIDE, DEFAULT_SIDE)
    if not (11 <= height <= MAX_SIDE and 11 <= width <= MAX_SIDE):
        raise SavaError(f"--size must lie between 11 (the SSIM window) and {MAX_SIDE} pixels per side, "
                        f"got {height} {width}")
    if args.batch_size is not None and args.batch_size < 1:
        raise SavaError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.workers < 0:
        raise SavaError(f"--workers must be >= 0, got {args.workers}")
    if args.model in bundled_names():
        _refuse_user_model_options(args, bundled_names())
    if args.out is not None and args.out.exists() and not args.out.is_dir():
        raise SavaError(f"--out {args.out} is a file, not a folder")
    resolve_device(args.device)


DEFAULT_FRAMES, DEFAULT_SIDE = 16, 112  # video files decoded for a model that names no clip of its own
MAX_SIDE = 4096  # pixels per side of a resized frame; beyond this a clip no longer fits a sensible batch


class _SettingsOnly:
    """Stands in for the model while an attack's settings are checked, before the model and data load."""

    white_box = True
    name = "settings check"


def build_attack(args, model, kind: str = "combined"):
    """The attack the command line asks for; only the settings given are passed,
    so every method keeps its own defaults."""
    from .attacks import make_attack
    from .attacks.translation import TemporalTranslation
    from .selection import make_selector

    given = lambda **options: {key: value for key, value in options.items() if value is not None}  # noqa: E731
    common = given(targeted=args.targeted or None, batch_size=args.batch_size, seed=args.seed)
    if args.method in LINF_METHODS or args.method == "msanet":
        if args.selector is not None or args.frames is not None:
            raise SavaError(f"{args.method} perturbs every frame; drop --selector and --frames")
        if args.margin is not None:
            raise SavaError(f"--margin belongs to the sparse methods (deepsava, sparse, flicker), not {args.method}")
        if args.method == "msanet":
            settings = common | given(epsilon=args.epsilon)
        else:
            translation = TemporalTranslation(args.tt_shift, args.tt_weights, args.tt_strategy, args.seed) \
                if args.tt else None
            settings = common | given(epsilon=args.epsilon, steps=args.iters, translation=translation)
    else:
        if args.tt or args.epsilon is not None:
            raise SavaError(f"--tt and --epsilon belong to the L-infinity methods, not {args.method}")
        selector = None if args.selector is None else make_selector(args.selector, args.seed, args.bo_evaluations,
                                                                     args.score_steps)
        settings = common | given(frames=args.frames, selector=selector, max_iters=args.iters,
                                  min_ssim=args.min_ssim, max_l21=args.max_l21)
        if args.margin is not None and args.method == "keyframe":
            raise SavaError("--margin does not apply to keyframe, which runs every video to the cap anyway")
        settings |= given(margin=args.margin)
        if args.method == "deepsava":
            settings |= given(perturbation=kind, lam=args.lam, lam_end=args.lam_end, flow_lr=args.flow_lr,
                              noise_lr=args.noise_lr, adv_loss=args.adv_loss)
        elif args.method in ("sparse", "flicker"):
            settings |= given(lam=args.lam, lr=args.noise_lr, adv_loss=args.adv_loss)
        else:  # keyframe
            settings |= given(boundary=args.boundary, lr=args.noise_lr)
    if args.boundary is not None and args.method != "keyframe":
        raise SavaError("--boundary is the keyframe method's setting")
    return make_attack(args.method, model or _SettingsOnly(), **settings)


def _print_table(model_name, data_spec, args, rows) -> None:
    print(f"\n{args.method} on {model_name} / {data_spec} ({args.split})")
    header = f"{'attack':<18} {'videos':>6} {'attacked':>8} {'FR':>7} {'ANI':>6} {'mean SSIM':>9} " \
             f"{'SSIM wins':>9} {'min SSIM':>8} {'frames':>6} {'MAP':>7} {'time s':>7} {'videos/s':>8}"
    print(header)
    print("-" * len(header))
    shown = lambda value, form: "-" if value is None else format(value, form)  # noqa: E731
    for label, s, _ in rows:
        print(f"{label:<18} {s.videos:>6} {s.attacked:>8} {s.fooling_rate:>7.1%} {shown(s.ani, '.1f'):>6} "
              f"{shown(s.mean_ssim, '.4f'):>9} {shown(s.mean_ssim_successes, '.4f'):>9} "
              f"{shown(s.min_ssim, '.4f'):>8} {shown(s.frames_per_video, '.1f'):>6} "
              f"{shown(s.map, '.4f'):>7} {s.seconds:>7.1f} {s.videos_per_second:>8.2f}")
    for kind, _, folder in rows:
        print(f"run folder ({kind}): {folder}")


# ---------------------------------------------------------------------- listings
def cmd_models(args) -> int:
    from .models.bundled import describe
    from .models.zoo import describe_presets

    print(f"{'model':<18} {'arch':<10} {'dataset':<8} {'classes':>7} {'clip (T,C,H,W)':<16} {'test acc':>8}")
    for row in describe():
        print(f"{row['name']:<18} {row['arch']:<10} {row['dataset']:<8} {row['classes']:>7} "
              f"{str(tuple(row['clip_shape'])):<16} {row['test_accuracy']:>8.2%}")
    print("\nzoo presets (--model NAME --weights STATE_DICT; no download; a 400-way head gets Kinetics-400's "
          "class names):")
    print(f"{'preset':<24} {'clip (T,H,W)':<16} {'mean':<26} note")
    for row in describe_presets():
        clip = str(row["clip"]) if row["clip"] else "from its files"
        mean = ",".join(f"{m:g}" for m in row["mean"]) if row["mean"] else "from its files"
        print(f"{row['name']:<24} {clip:<16} {mean:<26} {row['note']}")
    return 0


def cmd_data(args) -> int:
    from .data import BUNDLED

    print(f"{'dataset':<8} {'classes':>7} {'train':>6} {'test':>5}  {'clip (T,C,H,W)':<16} description")
    for name, (module, description) in sorted(BUNDLED.items()):
        shape = (module.FRAMES, 3, module.SIZE, module.SIZE)
        print(f"{name:<8} {len(module.CLASSES):>7} {module.CLIPS['train']:>6} {module.CLIPS['test']:>5}  "
              f"{str(shape):<16} {description}")
        print(f"{'':<8} classes: {', '.join(module.CLASSES)}")
    return 0


def cmd_reproduce(args) -> int:
    from .models.bundled import bundled_names
    from .reproduce import TABLES, context, models_for, reproduce

    if args.model != "all" and args.model not in bundled_names():
        raise SavaError(f"unknown bundled model {args.model!r}; choose from {', '.join(bundled_names())} or all")
    if args.num_videos < 1 or args.iters < 1:
        raise SavaError("--num-videos and --iters must be positive")
    log = lambda line: print(line, file=sys.stderr)  # noqa: E731
    tables = list(TABLES) if "all" in args.tables else list(dict.fromkeys(args.tables))
    contexts = {}  # one per model: tables of the same model share their clips and common runs
    for table in tables:
        for name in models_for(table, args.model):
            if name not in contexts:
                contexts[name] = context(name, args.num_videos, args.iters, log)
            folder = args.out / name
            reproduce(table, name, folder, args.num_videos, args.iters, log, ctx=contexts[name])
            print((folder / f"{table}.md").read_text())
            print(f"written: {folder}/{table}.md, .json, .png\n")
    return 0


def cmd_export(args) -> int:
    from .export import export_onnx, safe_name
    from .models.bundled import bundled_names, load_bundled

    bundled = bundled_names()
    _refuse_user_model_options(args, bundled)
    if args.model == "all" or args.model in bundled:
        models = [(name, load_bundled(name), None) for name in (bundled if args.model == "all" else [args.model])]
    else:  # any model sava attack takes; its clip shape comes from the options
        if (args.clip_frames is not None and args.clip_frames < 1) or (args.size and min(args.size) < 1):
            raise SavaError("--clip-frames and --size must be positive")
        model = _load_model_from_args(args, "cpu")
        frames, (height, width) = clip_of(model, args.model, args.clip_frames, args.size)
        given = args.clip_frames is not None or args.size is not None
        channels = model.info.clip_shape[1] if model.info.clip_shape else 3
        shape = (frames, channels, height, width) if given or not model.info.clip_shape else model.info.clip_shape
        models = [(safe_name(args.model), model, shape)]
    for name, model, shape in models:
        report = export_onnx(model, args.out / f"{name}.onnx", tolerance=args.tolerance,
                             dynamic_time=not args.fixed_time, clip_shape=shape)
        time_axis = "dynamic" if report.dynamic_time else "fixed"
        if report.fixed_time_reason:
            time_axis += f": a dynamic time axis failed ({report.fixed_time_reason})"
        if report.dynamo_failure:
            print(f"{name}: the dynamo exporter failed ({report.dynamo_failure}); exported with torch's "
                  "TorchScript-based exporter (recorded in the file's metadata)")
        print(f"{name}: {report.path} (batch dynamic, time {time_axis}); ONNX checker passed; "
              f"largest |ORT - torch| = {report.max_abs_difference:.2e} over shapes {report.checked_shapes}")
    return 0


def _runtimes_for(spec: str, runtimes: list[str]) -> list[str]:
    """The asked runtimes a target runs on: an ``.onnx`` file on the ONNX ones only, any other model on all."""
    if not spec.endswith(".onnx"):
        return runtimes
    onnx_runtimes = [r for r in runtimes if r != "torch"]
    if not onnx_runtimes:
        raise SavaError(f"target {spec} is an ONNX file and runs on onnxruntime or tensorrt only; --runtime "
                        f"{','.join(runtimes)} names neither")
    return onnx_runtimes


def cmd_transfer(args) -> int:
    from .attacks import make_attack
    from .data import bundled
    from .export import RUNTIMES, load_runtime_model
    from .models.bundled import bundled_names, load_bundled
    from .provenance import environment
    from .transfer import disagreements, evaluate, from_run_folder, generate, write

    runtimes = [r.strip() for r in args.runtime.split(",") if r.strip()]
    unknown = [r for r in runtimes if r not in RUNTIMES]
    if unknown:
        raise SavaError(f"unknown runtime(s) {', '.join(unknown)}; choose from {', '.join(RUNTIMES)}")
    dataset_models = [n for n in bundled_names() if n.endswith(f"-{args.dataset}")]
    split = lambda text: [v.strip() for v in text.split(",") if v.strip()]  # noqa: E731
    source_names = split(args.sources) if args.sources else ([] if args.runs else dataset_models)
    target_names = split(args.targets) if args.targets else dataset_models
    if not target_names:
        raise SavaError(f"no bundled models for dataset {args.dataset!r}; name --targets")
    for name in source_names:
        if name not in bundled_names():
            raise SavaError(f"sources must be bundled white-box models; {name!r} is not one")
    methods = split(args.methods)
    attacks = [(name, make_attack(name, _SettingsOnly(), **_transfer_settings(name, args))) for name in methods]
    log = lambda line: print(line, file=sys.stderr)  # noqa: E731
    sources = [from_run_folder(folder) for folder in args.runs]
    clips = bundled(args.dataset, "test") if source_names else None
    # A user target is exported for the ONNX runtimes at the clips it will see, when it names no clip itself.
    clip_shape = tuple(sources[0].videos.shape[1:]) if sources else (tuple(clips.clip_shape) if clips else None)
    targets = {}  # every runtime is opened (and exports made) before any attack runs
    for target in target_names:
        spec, _, weights = target.partition("@")
        for runtime in _runtimes_for(spec, runtimes):
            targets[f"{spec} [{runtime}]"] = load_runtime_model(
                spec, runtime, provider=args.provider, precision=args.precision, onnx_dir=args.onnx_dir,
                weights=weights or None, clip_shape=clip_shape)
    if source_names:
        count = min(args.num_videos, len(clips))
        videos, labels = clips.float_videos(slice(0, count)), clips.labels[:count]
        for name in source_names:
            model = load_bundled(name)
            for method, _ in attacks:
                attack = make_attack(method, model, **_transfer_settings(method, args))
                log(f"generating {method} on {name} ...")
                sources.append(generate(model, attack, videos, labels, method))
    rows = evaluate(sources, targets, log=log)
    out = args.out or Path("runs") / f"transfer-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    meta = {"command": "sava " + shlex.join(args.argv), "environment": environment(), "runtimes": runtimes,
            "frames": args.frames, "iters": args.iters, "margin": args.margin,
            "title": f"transfer fooling rate, {args.dataset}, {args.frames} frames"
                     + (f", margin {args.margin:g}" if args.margin else "")}
    if len(runtimes) > 1:
        meta["disagreements"] = {f"{a} vs {b}": disagreements(rows, a, b)
                                 for i, a in enumerate(runtimes) for b in runtimes[i + 1:]}
    write(out, rows, meta)
    _print_transfer(rows, meta, out)
    return 0


def _transfer_settings(method: str, args) -> dict:
    from .attacks import LINF_METHODS

    if method in LINF_METHODS or method == "msanet":
        return {"seed": args.seed}
    settings = {"max_iters": args.iters, "seed": args.seed}
    if method == "keyframe":
        return settings
    return settings | {"frames": args.frames} | ({"margin": args.margin} if args.margin else {})


def _print_transfer(rows, meta, out) -> None:
    from .transfer import matrix

    sources, targets, cell = matrix(rows)
    width = max(len(s) for s in sources) + 2
    print(" " * width + " ".join(f"{t:>24}" for t in targets))
    for source in sources:
        print(f"{source:<{width}}" + " ".join(f"{'-' if cell[source, t] is None else f'{cell[source, t]:.1%}':>24}"
                                              for t in targets))
    for pair, count in meta.get("disagreements", {}).items():
        print(f"decisions that differ, {pair}: {count}")
    print(f"written: {out}/transfer.json, transfer.csv, transfer.png")


def cmd_train(args) -> int:
    from .models.bundled import bundled_names
    from .train import TrainConfig, make_defence, train

    if args.model not in bundled_names():
        raise SavaError(f"sava train fine-tunes a bundled model; choose from {', '.join(bundled_names())}")
    if args.epochs < 1:
        raise SavaError(f"--epochs must be positive, got {args.epochs}")
    config = TrainConfig(model=args.model, defence=args.defence, epochs=args.epochs, lr=args.lr,
                         batch_size=args.batch_size, steps=args.steps, epsilon=args.epsilon, alpha=args.alpha,
                         frames=args.frames, max_flow=args.max_flow, inject=args.inject, limit=args.limit,
                         from_scratch=args.from_scratch, seed=args.seed, checkpoint_every=args.checkpoint_every)
    make_defence(args.defence, steps=args.steps, epsilon=args.epsilon, alpha=args.alpha, frames=args.frames,
                 max_flow=args.max_flow)  # bad settings fail before any work
    folder = args.out or Path("runs") / f"train-{args.model}-{args.defence}"
    entry = train(config, folder, log=lambda line: print(line, file=sys.stderr), progress=not args.no_progress)
    print(f"{args.model} under {args.defence}: clean test accuracy {entry['test_accuracy']:.2%}; "
          f"weights: {folder / 'model.safetensors'} (sava attack --model {folder / 'model.safetensors'})")
    return 0


def cmd_merge(args) -> int:
    from .runner import merge
    from .runner.folder import is_run_folder, locked

    if not is_run_folder(args.folder) or not (args.folder / "run.json").is_file():
        raise SavaError(f"{args.folder} is not a sava run folder (sava writes .sava-run and run.json into its run "
                        "folders)")
    with locked(args.folder):  # never while a run is writing into the folder
        summary = merge(args.folder, log=lambda problem: print(f"sava merge: warning: {problem}", file=sys.stderr))
    print(f"{args.folder}: {summary.videos} videos, {summary.attacked} attacked, FR {summary.fooling_rate:.1%}; "
          f"written: metrics.json, videos.jsonl")
    return 0


COMMANDS = {"attack": cmd_attack, "train": cmd_train, "merge": cmd_merge, "reproduce": cmd_reproduce,
            "export": cmd_export, "transfer": cmd_transfer, "models": cmd_models, "data": cmd_data}


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv  # the command as given, recorded with results
    try:
        return COMMANDS[args.command](args)
    except SavaError as exc:
        print(f"sava {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"sava {args.command}: interrupted; finished videos are in the run folder", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 -- one line, not a traceback; --debug shows it
        if args.debug:
            raise
        print(f"sava {args.command}: error: unexpected {type(exc).__name__}: {exc} (sava --debug {args.command} "
              "... shows the traceback; what finished is in the run folder)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
