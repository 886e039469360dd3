"""``sava attack``: an attack on a model and a dataset, written into a run folder."""

from __future__ import annotations

import json
import os
import sys
from datetime import datetime
from pathlib import Path

import torch

from .. import __version__
from ..attacks import LINF_METHODS, METHODS
from ..attacks.deepsava import DEFAULT_ADV_LOSS, DEFAULT_FLOW_LR, DEFAULT_LAM, DEFAULT_LAM_END, DEFAULT_SELECTOR
from ..errors import SavaError
from ..models.adapter import (
    DEFAULT_SIDE,
    check_output_count,
    clip_for_files,
    outputs_on_clip,
    response_warnings,
    sampling_for_files,
)
from ..runner.manifest import SETTINGS
from .checks import METHOD_OPTIONS, ignored_options, refuse_senseless_numbers
from .options import (
    MAX_SIDE,
    UNBOUNDED,
    HelpFormatter,
    SettingsOnly,
    device_argument,
    finite,
    finite_or_none,
    load_model_from_args,
    model_arguments,
    refuse_user_model_options,
)

# Options that say how a video file becomes a clip: said to be ignored on a bundled set, which holds clips.
FILE_OPTIONS = ("clip_frames", "size", "fit", "frame_stride", "frame_rate", "resize")


def add_parser(sub) -> None:
    attack = sub.add_parser("attack", help="run DeepSAVA on a model and a dataset, write a run folder",
                            formatter_class=HelpFormatter)
    what = attack.add_argument_group("target and data")
    model_arguments(what)
    what.add_argument("--data", help="bundled set name, a folder of class sub-folders, or a CSV of path,label "
                                     "(default: the bundled model's own set)")
    what.add_argument("--split", default="test", choices=["test", "train"], help="split of a bundled set")
    what.add_argument("--num-videos", type=int, default=64, help="attack the first N videos (0: all)")

    how = attack.add_argument_group("attack (settings left out take each method's default)")
    how.add_argument("--method", default="deepsava", choices=list(METHODS),
                     help="deepsava (flow + noise, SSIM); sparse (Wei et al. 2019: noise, l2,1); flicker (sparse "
                          "flickering); keyframe (Xu et al. 2022: adaptive keyframes, two-stage loss); fgsm, bim, mi, "
                          "di, ti (L-infinity transfer attacks, --tt for temporal translation); msanet (attention-"
                          "guided PGD after the MSANet abstract)")
    how.add_argument("--frames", "-k", type=int, default=None,
                     help="perturbed frames per video (default 1; keyframe: as many as reach --boundary; "
                          "flicker: the whole clip, as in Pony et al.)")
    how.add_argument("--selector", default=None,
                     help=f"first, all (every frame), random, saliency (largest class-score gradient), keyframes[:B] "
                          f"(adaptive), ifd (inter-frame difference), bo (Bayesian optimisation), brute (every "
                          f"frame set), or frame indices such as 0,7 (default: deepsava {DEFAULT_SELECTOR}, keyframe "
                          f"keyframes, flicker all (first with --frames), others first)")
    how.add_argument("--bo-evaluations", type=int, default=4,
                     help="most candidates a video scores under --selector bo (it stops once one fools the model)")
    how.add_argument("--score-steps", type=int, default=10,
                     help="generator steps that score one candidate (bo, brute)")
    how.add_argument("--perturbation", default="combined", choices=["combined", "noise", "flow", "all"],
                     help="deepsava: 'all' runs combined, noise-only and flow-only side by side (paper Table 7)")
    how.add_argument("--lam", type=finite, default=None,
                     help=f"deepsava: SSIM weight at a video's first iteration (default {DEFAULT_LAM:g}; the paper: "
                          f"1, 1.5 for CNN+LSTM); sparse: the l2,1 weight; flicker: the smoothness weight")
    how.add_argument("--lam-end", type=finite, default=DEFAULT_LAM_END,
                     help="deepsava: SSIM weight at the iteration cap, reached geometrically (set equal to --lam for "
                          "a fixed weight, as in the paper)")
    how.add_argument("--iters", type=int, default=None,
                     help="iteration cap per video (default 100); fgsm, bim, ...: the number of steps")
    how.add_argument("--flow-lr", type=finite, default=DEFAULT_FLOW_LR, help="Adam learning rate of the flow (pixels)")
    how.add_argument("--noise-lr", type=finite, default=None, help="Adam learning rate of the noise (or flicker)")
    how.add_argument("--min-ssim", type=finite_or_none, default=None,
                     help="SSIM budget for every perturbed frame, or 'none' (default: sparse 0.9, which keeps its "
                          "frame recognisable; the others none)")
    how.add_argument("--margin", type=finite, default=None,
                     help="deepsava, sparse, flicker: keep going after a success until it holds by this many "
                          "logits (or the cap); for perturbations that should transfer or survive compression")
    how.add_argument("--max-l21", type=finite, default=None, help="l2,1 budget (per-pixel) for each video")
    how.add_argument("--boundary", type=finite, default=None,
                     help="keyframe: share of the total frame weight the keyframes reach (default 0.3; targeted "
                          "0.4)")
    how.add_argument("--epsilon", type=finite, default=None,
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
    device_argument(run)
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


def cmd_attack(args) -> int:
    from ..classes import ClassNames, accuracy_warning, label_map
    from ..data import BUNDLED, load_dataset
    from ..data.files import passed_over_note
    from ..provenance import environment
    from ..runner import DatasetRun, current_shard, run_dataset
    from ..selection import check_k

    torch.manual_seed(args.seed)
    refuse_senseless_numbers(args)
    _check_run_settings(args)
    for line in ignored_options(args):  # said once, before any work
        print(f"sava attack: {line}", file=sys.stderr)
    if args.perturbation != "combined" and args.method != "deepsava":
        raise SavaError(f"--perturbation is a deepsava setting; {args.method} has its own perturbation")
    kinds = ["combined", "noise", "flow"] if args.perturbation == "all" else [args.perturbation]
    build_attack(args, model=None, kind=kinds[0])  # bad settings fail here, before the model and data load
    shard = current_shard()
    if shard.distributed and args.out is None:
        raise SavaError("a torchrun run needs --out: every process must write into the same run folder")
    try:
        model = load_model_from_args(args, shard.device(args.device))
        if args.precision != "fp32":
            model.precision = args.precision
        if args.no_cuda_graphs:  # read by every attack loop of this process, torchrun workers included
            os.environ["SAVA_CUDA_GRAPHS"] = "0"
        data_spec = args.data or model.info.extra.get("dataset")
        if data_spec is None:
            raise SavaError("--data is needed for a model that is not bundled")
        # Given before the clip options are filled in with their defaults; a bundled set has clips of its own.
        file_options = [f"--{name.replace('_', '-')}" for name in FILE_OPTIONS if getattr(args, name) is not None]
        recorded = _recorded_clip(args.out, kinds)
        args.clip_frames, args.size = clip_for_files(model.info, args.clip_frames, args.size, recorded)
        sampling = sampling_for_files(model.info, args.fit, args.frame_stride, recorded, args.resize, args.size,
                                      args.frame_rate)
        dataset = load_dataset(data_spec, args.split, args.clip_frames, tuple(args.size), sampling)
        passed_over = passed_over_note(dataset)
        if passed_over:
            print(passed_over, file=sys.stderr)
        if data_spec in BUNDLED:  # the run folder records the clips the attack saw
            args.clip_frames, args.size = dataset.clip_shape[0], list(dataset.clip_shape[2:])
            if file_options:
                print(f"sava attack: note: {', '.join(file_options)} sample video files; the bundled set "
                      f"{data_spec!r} holds its own clips (ignored)", file=sys.stderr)
        count = len(dataset) if args.num_videos == 0 else min(args.num_videos, len(dataset))
        if args.frames is not None:
            check_k(args.frames, dataset.clip_shape[0])  # before any work or any file
        names = ClassNames(model.classes, model.info.extra.get("class_order", "the model's metadata"))
        outputs = outputs_on_clip(model, dataset.clip_shape, batch=1 if args.batch_size == 1 else 2)
        check_output_count(model, outputs, names.names, names.source)
        for warning in response_warnings(model, dataset.clip_shape):
            print(warning, file=sys.stderr)
        if args.compile:  # after the blank-clip probe, which would otherwise compile for a batch of one
            if not hasattr(model, "compile"):
                raise SavaError(f"--compile needs a white-box torch model; {model.name} is not one")
            model.compile()
        relabel, notice = label_map(dataset, names, model.name, data_spec, outputs)
        if notice:
            print(notice, file=sys.stderr)
        attacks = [(kind, build_attack(args, model, kind)) for kind in kinds]
        run_classes = classes_of_run(model, names, dataset, data_spec)

        sampling_record = {} if data_spec in BUNDLED else sampling.record()
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        base = args.out or Path("runs") / f"{stamp}-{Path(model.name).stem}"
        rows = []
        for kind, attack in attacks:
            folder = base / kind if len(kinds) > 1 else base
            meta = {"sava_version": __version__, "model": model.name, "data": data_spec, "split": args.split,
                    "clip_frames": args.clip_frames, "size": list(args.size), **sampling_record, "videos": count,
                    "settings": attack.settings, "device": str(model.device), **run_classes,
                    # how the model was fed (a preset's or the user's), for whoever reads or transfers the run
                    "model_input": {"layout": model.info.layout, "mean": model.info.mean, "std": model.info.std,
                                    "weights": args.weights},
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
        _print_table(model.name, data_spec, args, rows, None if data_spec in BUNDLED else sampling)
        if not any(summary.videos for _, summary, _ in rows):
            print(f"sava attack: error: none of the {count} video file(s) of {data_spec} could be used (each is "
                  "listed above with its reason)", file=sys.stderr)
            return 2
        warning = accuracy_warning(rows[0][1], args.targeted, names)
        if warning:
            print(warning, file=sys.stderr)
    return 0


def classes_of_run(model, names, dataset, data_spec: str) -> dict:
    """What the run folder records of the class order: the model's names or, for a model that names none,
    the dataset's sorted class names its labels then follow (so that a transfer can match a named target to
    them); a CSV of class indices names nothing."""
    if model.classes is None and not getattr(dataset, "labels_are_indices", False):
        return {"classes": list(dataset.classes),
                "class_order": f"none known: labels follow {data_spec}'s sorted class names"}
    return {"classes": model.classes, "class_order": names.source}


def _recorded_clip(out: Path | None, kinds: list[str]) -> dict | None:
    """The clip frames and size that the run folder being resumed recorded (its first attack's, for
    ``--perturbation all``), or None for a new folder."""
    if out is None:
        return None
    for settings in (out / SETTINGS, out / kinds[0] / SETTINGS):
        if settings.is_file():
            try:
                return json.loads(settings.read_text())
            except (OSError, ValueError):  # unreadable: the resume itself says so
                return None
    return None


def _check_run_settings(args) -> None:
    """Settings that no dataset or model can make valid, refused before anything loads or decodes."""
    from ..models.bundled import bundled_names
    from ..runner.shard import resolve_device

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
        refuse_user_model_options(args, bundled_names())
    if args.out is not None and args.out.exists() and not args.out.is_dir():
        raise SavaError(f"--out {args.out} is a file, not a folder")
    resolve_device(args.device)


def build_attack(args, model, kind: str = "combined"):
    """The attack the command line asks for; only the settings given are passed,
    so every method keeps its own defaults."""
    from ..attacks import make_attack
    from ..attacks.translation import TemporalTranslation
    from ..selection import make_selector

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
        if args.min_ssim == UNBOUNDED:
            settings["min_ssim"] = None  # given, unlike the None of an option left out
        if args.margin is not None and args.method == "keyframe":
            raise SavaError("--margin does not apply to keyframe, which runs every video to the cap anyway")
        settings |= given(margin=args.margin, perturbation=kind if args.method == "deepsava" else None)
        settings |= given(**{keyword: getattr(args, option) for option, keyword in METHOD_OPTIONS[args.method].items()})
    if args.boundary is not None and args.method != "keyframe":
        raise SavaError("--boundary is the keyframe method's setting")
    return make_attack(args.method, model or SettingsOnly(), **settings)


def _print_table(model_name, data_spec, args, rows, sampling=None) -> None:
    """The results table, under a line naming the model, the data and, for video files, how their clips were
    taken (``sampling``: frames, size, fit, spacing)."""
    if sampling is None:
        where = f" ({args.split})"
    else:
        fit = sampling.describe(args.size)
        where = f" ({args.clip_frames} frames {sampling.spacing()}, {args.size[0]} x {args.size[1]}, {fit})"
    print(f"\n{args.method} on {model_name} / {data_spec}{where}")
    header = f"{'attack':<18} {'videos':>6} {'attacked':>8} {'FR':>7} {'ANI':>6} {'mean SSIM':>9} " \
             f"{'SSIM wins':>9} {'min SSIM':>8} {'frames':>6} {'MAP':>7} {'time s':>7} {'videos/s':>8}"
    print(header)
    print("-" * len(header))
    shown = lambda value, form: "-" if value is None else format(value, form)  # noqa: E731
    for label, s, _ in rows:
        fooling = shown(s.fooling_rate if s.attacked else None, ".1%")  # of no attacked video: no rate at all
        print(f"{label:<18} {s.videos:>6} {s.attacked:>8} {fooling:>7} {shown(s.ani, '.1f'):>6} "
              f"{shown(s.mean_ssim, '.4f'):>9} {shown(s.mean_ssim_successes, '.4f'):>9} "
              f"{shown(s.min_ssim, '.4f'):>8} {shown(s.frames_per_video, '.1f'):>6} "
              f"{shown(s.map, '.4f'):>7} {s.seconds:>7.1f} {s.videos_per_second:>8.2f}")
    for kind, _, folder in rows:
        print(f"run folder ({kind}): {folder}")
