"""The ``sava`` command line.

    sava attack                 # DeepSAVA, one frame, on the bundled 3D CNN and its test clips
    sava attack --perturbation all --num-videos 60
    sava models                 # bundled models and their test accuracy
    sava data                   # bundled datasets
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime
from pathlib import Path

import torch

from . import __version__
from .attacks.deepsava import (
    DEFAULT_ADV_LOSS,
    DEFAULT_FLOW_LR,
    DEFAULT_LAM,
    DEFAULT_LAM_END,
    DEFAULT_NOISE_LR,
    DEFAULT_SELECTOR,
)
from .attacks.sparse import DEFAULT_LAM as SPARSE_DEFAULT_LAM
from .errors import SavaError


def _floats(text: str) -> tuple[float, ...]:
    return tuple(float(v) for v in text.split(","))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sava", description="Sparse adversarial attacks on video classifiers.")
    parser.add_argument("--version", action="version", version=f"sava {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    attack = sub.add_parser("attack", help="run DeepSAVA on a model and a dataset, write a run folder",
                            formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    what = attack.add_argument_group("target and data")
    what.add_argument("--model", default="c3d-camera",
                      help="bundled model name, package.module:factory, or a TorchScript file")
    what.add_argument("--weights", help="weights for a package.module:factory model (.safetensors or .pt)")
    what.add_argument("--layout", default="BTCHW", choices=["BTCHW", "BCTHW"], help="input layout of a user model")
    what.add_argument("--mean", type=_floats, help="per-channel mean of a user model, e.g. 0.45,0.45,0.45")
    what.add_argument("--std", type=_floats, help="per-channel std of a user model")
    what.add_argument("--data", help="bundled set name, a folder of class sub-folders, or a CSV of path,label "
                                     "(default: the bundled model's own set)")
    what.add_argument("--split", default="test", choices=["test", "train"], help="split of a bundled set")
    what.add_argument("--num-videos", type=int, default=64, help="attack the first N videos (0: all)")
    what.add_argument("--clip-frames", type=int, default=16, help="frames sampled from each video file")
    what.add_argument("--size", type=int, nargs=2, default=(112, 112), metavar=("H", "W"),
                      help="frame size video files are resized to")

    how = attack.add_argument_group("attack")
    how.add_argument("--method", default="deepsava", choices=["deepsava", "sparse"],
                     help="deepsava (flow + noise, SSIM) or sparse (Wei et al. 2019: noise, l2,1; --lam is its "
                          "l2,1 weight, --noise-lr its step)")
    how.add_argument("--frames", "-k", type=int, default=1, help="number of perturbed frames per video")
    how.add_argument("--selector", default=DEFAULT_SELECTOR,
                     help="first, random, saliency (largest class-score gradient), bo (Bayesian optimisation), "
                          "brute (every frame), or frame indices such as 0,7")
    how.add_argument("--bo-evaluations", type=int, default=6, help="candidates each video scores under --selector bo")
    how.add_argument("--score-steps", type=int, default=10,
                     help="generator steps that score one candidate (bo, brute)")
    how.add_argument("--perturbation", default="combined", choices=["combined", "noise", "flow", "all"],
                     help="'all' runs combined, noise-only and flow-only side by side (paper Table 7)")
    how.add_argument("--lam", type=float, default=None,
                     help=f"deepsava: SSIM weight at a video's first iteration (default {DEFAULT_LAM:g}; the paper: "
                          f"1, 1.5 for CNN+LSTM); sparse: the l2,1 weight (default {SPARSE_DEFAULT_LAM:g})")
    how.add_argument("--lam-end", type=float, default=DEFAULT_LAM_END,
                     help="SSIM weight at the iteration cap, reached geometrically (set equal to --lam for a fixed "
                          "weight, as in the paper)")
    how.add_argument("--iters", type=int, default=100, help="iteration cap per video")
    how.add_argument("--flow-lr", type=float, default=DEFAULT_FLOW_LR, help="Adam learning rate of the flow (pixels)")
    how.add_argument("--noise-lr", type=float, default=DEFAULT_NOISE_LR, help="Adam learning rate of the noise")
    how.add_argument("--min-ssim", type=float, default=None, help="SSIM budget for every perturbed frame")
    how.add_argument("--max-l21", type=float, default=None, help="l2,1 budget (per-pixel) for each video")
    how.add_argument("--targeted", action="store_true", help="targeted attack (target: --target-class, "
                                                            "else the next class after the label)")
    how.add_argument("--target-class", type=int, default=None)
    how.add_argument("--adv-loss", default=DEFAULT_ADV_LOSS, choices=["ce", "log1mp"],
                     help="log1mp: -log(1 - p_y), whose gradient does not vanish on confident models; "
                          "ce: cross-entropy")

    run = attack.add_argument_group("run")
    run.add_argument("--batch-size", type=int, default=32)
    run.add_argument("--device", default="cpu")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--out", type=Path, default=None, help="run folder (default: runs/<time>-<model>)")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")

    repro = sub.add_parser("reproduce", help="regenerate the shape of a paper table on the bundled benchmark",
                           formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    repro.add_argument("table", choices=["table7", "table8"])
    repro.add_argument("--model", default="c3d-camera", help="a bundled model")
    repro.add_argument("--num-videos", type=int, default=32)
    repro.add_argument("--iters", type=int, default=100)
    repro.add_argument("--out", type=Path, default=Path("runs/reproduce"))

    sub.add_parser("models", help="list the bundled models with their test accuracy")
    sub.add_parser("data", help="list the bundled datasets")
    return parser


# ---------------------------------------------------------------------- attack
def cmd_attack(args) -> int:
    from .attacks import DeepSAVA, Sparse
    from .data import load_dataset
    from .models.loading import load_model
    from .outputs import RunWriter
    from .selection import check_k, make_selector

    torch.manual_seed(args.seed)
    if args.num_videos < 0:
        raise SavaError(f"--num-videos must be >= 0, got {args.num_videos}")
    model = load_model(args.model, args.weights, layout=args.layout, mean=args.mean, std=args.std,
                       device=args.device)
    data_spec = args.data or model.info.extra.get("dataset")
    if data_spec is None:
        raise SavaError("--data is needed for a model that is not bundled")
    dataset = load_dataset(data_spec, args.split, args.clip_frames, tuple(args.size))
    count = len(dataset) if args.num_videos == 0 else min(args.num_videos, len(dataset))
    check_k(args.frames, dataset.clip_shape[0])  # before any work or any file
    relabel = _label_map(dataset.classes, model.classes, data_spec, model.name)

    if args.method == "sparse":
        if args.perturbation not in ("combined", "noise"):
            raise SavaError("--method sparse perturbs with noise only; drop --perturbation")
        kinds = ["noise"]
    else:
        kinds = ["combined", "noise", "flow"] if args.perturbation == "all" else [args.perturbation]
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    base = args.out or Path("runs") / f"{stamp}-{Path(model.name).stem}"
    rows = []
    for kind in kinds:
        common = dict(frames=args.frames, selector=make_selector(args.selector, args.seed, args.bo_evaluations,
                                                                  args.score_steps),
                      max_iters=args.iters, min_ssim=args.min_ssim, max_l21=args.max_l21, targeted=args.targeted,
                      adv_loss=args.adv_loss, batch_size=args.batch_size, seed=args.seed)
        if args.method == "sparse":
            lam = SPARSE_DEFAULT_LAM if args.lam is None else args.lam
            attack = Sparse(model, lam=lam, lr=args.noise_lr, **common)
        else:
            lam = DEFAULT_LAM if args.lam is None else args.lam
            attack = DeepSAVA(model, perturbation=kind, lam=lam, lam_end=args.lam_end, flow_lr=args.flow_lr,
                              noise_lr=args.noise_lr, **common)
        folder = base / kind if len(kinds) > 1 else base
        meta = {"sava_version": __version__, "model": model.name, "data": data_spec, "split": args.split,
                "videos": count, "settings": attack.settings, "device": str(model.device)}
        title = f"{attack.method} {kind}"
        summary = _attack_dataset(attack, dataset, count, relabel, args, RunWriter(folder, meta), title)
        rows.append((kind, summary, folder))

    _print_table(model.name, data_spec, args, rows)
    return 0


def _label_map(data_classes: list[str], model_classes: list[str] | None, data_spec: str, model_name: str):
    """Dataset label -> model label. Folder datasets number their classes
    alphabetically; when every folder is named after a class of the model,
    follow the model's names instead."""
    if model_classes is None:
        return list(range(len(data_classes)))
    if set(data_classes) <= set(model_classes):
        return [model_classes.index(name) for name in data_classes]
    if len(data_classes) == len(model_classes):
        return list(range(len(data_classes)))
    raise SavaError(f"dataset {data_spec!r} has {len(data_classes)} classes ({', '.join(data_classes[:5])}...), "
                    f"model {model_name!r} has {len(model_classes)}; name the class folders after the model's classes")


def _dataset_items(dataset, count, relabel, num_classes, args, clips: dict, skipped: list):
    """``(video_id, clip, label, target)`` for the first ``count`` videos; a file
    that cannot be used is recorded in ``skipped`` and the run goes on."""
    from .errors import DataError

    for index in range(count):
        try:
            video_id, clip, label = dataset[index]
        except DataError as exc:
            skipped.append({"index": index, "reason": str(exc)})
            continue
        clips[video_id] = clip
        label = relabel[label]
        target = None
        if args.targeted:
            target = args.target_class if args.target_class is not None else (label + 1) % num_classes
        yield video_id, clip, label, target


def _attack_dataset(attack, dataset, count, relabel, args, writer, title):
    """Run one attack over the dataset, writing each video as it finishes."""
    from tqdm import tqdm

    from .metrics import summarise

    clips, skipped, results = {}, [], []
    started = time.perf_counter()
    bar = tqdm(total=count, desc=title, unit="video", disable=args.no_progress, file=sys.stderr)
    try:
        num_classes = len(attack.model.classes or relabel)
        for result in attack.stream(_dataset_items(dataset, count, relabel, num_classes, args, clips, skipped)):
            results.append(result)
            writer.add(result, clips.pop(result.video_id, None))
            bar.set_postfix_str(f"FR {sum(r.success for r in results)}/{sum(r.attacked for r in results)}")
            bar.update(1)
    finally:
        bar.close()
        summary = summarise(results, time.perf_counter() - started)
        completed = len(results) + len(skipped) == count
        writer.close(summary.as_dict(), {"skipped_files": skipped, "completed": completed})
    for item in skipped:
        print(f"skipped video {item['index']}: {item['reason']}", file=sys.stderr)
    return summary


def _print_table(model_name, data_spec, args, rows) -> None:
    print(f"\n{args.method} on {model_name} / {data_spec} ({args.split}), {args.frames} frame(s) per video, "
          f"selector {args.selector}, cap {args.iters} iterations")
    header = f"{'perturbation':<12} {'videos':>6} {'attacked':>8} {'FR':>7} {'ANI':>6} {'mean SSIM':>9} " \
             f"{'min SSIM':>8} {'time s':>7} {'videos/s':>8}"
    print(header)
    print("-" * len(header))
    for kind, s, _ in rows:
        ani = f"{s.ani:.1f}" if s.ani is not None else "-"
        mean_ssim = f"{s.mean_ssim:.4f}" if s.mean_ssim is not None else "-"
        min_ssim = f"{s.min_ssim:.4f}" if s.min_ssim is not None else "-"
        print(f"{kind:<12} {s.videos:>6} {s.attacked:>8} {s.fooling_rate:>7.1%} {ani:>6} {mean_ssim:>9} "
              f"{min_ssim:>8} {s.seconds:>7.1f} {s.videos_per_second:>8.2f}")
    for kind, _, folder in rows:
        print(f"run folder ({kind}): {folder}")


# ---------------------------------------------------------------------- listings
def cmd_models(args) -> int:
    from .models.bundled import describe

    print(f"{'model':<18} {'arch':<10} {'dataset':<8} {'classes':>7} {'clip (T,C,H,W)':<16} {'test acc':>8}")
    for row in describe():
        print(f"{row['name']:<18} {row['arch']:<10} {row['dataset']:<8} {row['classes']:>7} "
              f"{str(tuple(row['clip_shape'])):<16} {row['test_accuracy']:>8.2%}")
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
    from .reproduce import reproduce

    folder = args.out / args.model
    reproduce(args.table, args.model, folder, args.num_videos, args.iters,
              log=lambda line: print(line, file=sys.stderr))
    print((folder / f"{args.table}.md").read_text())
    print(f"written: {folder}/{args.table}.md, .json, .png")
    return 0


COMMANDS = {"attack": cmd_attack, "reproduce": cmd_reproduce, "models": cmd_models, "data": cmd_data}


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except SavaError as exc:
        print(f"sava {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"sava {args.command}: interrupted; finished videos are in the run folder", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
