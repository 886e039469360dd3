"""``sava train``: a model fine-tuned under a defence (adversarial training), on a bundled set or the user's
video files."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from ..errors import SavaError
from .options import (
    HelpFormatter,
    device_argument,
    finite,
    model_arguments,
    model_description,
    refuse_user_model_options,
)


def add_parser(sub) -> None:
    training = sub.add_parser("train", help="fine-tune a model under a defence (adversarial training)",
                              formatter_class=HelpFormatter)
    what = training.add_argument_group("model and data")
    model_arguments(what)
    what.add_argument("--data", default=None,
                      help="training clips: a bundled set (its train split), a folder of class sub-folders, or a "
                           "CSV of path,label (default: the bundled model's own set)")
    what.add_argument("--test-data", default=None,
                      help="clips clean accuracy is measured on (default: a bundled set's test split; for video "
                           "files, a held-out share of --data)")
    what.add_argument("--holdout", type=finite, default=None,
                      help="share of --data's video files held out as the test set when --test-data is not given "
                           "(default 0.2)")
    how = training.add_argument_group("defence and training")
    how.add_argument("--defence", default="combined", choices=["none", "pgd", "combined", "injected"])
    how.add_argument("--epochs", type=int, default=3)
    how.add_argument("--lr", type=finite, default=1e-4)
    how.add_argument("--batch-size", type=int, default=32)
    how.add_argument("--steps", type=int, default=5, help="inner attack steps per batch (pgd, combined)")
    how.add_argument("--epsilon", type=finite, default=8 / 255, help="noise budget (L-infinity)")
    how.add_argument("--alpha", type=finite, default=None, help="inner step size (default 2.5 epsilon / steps)")
    how.add_argument("--frames", type=int, default=None,
                     help="perturbed frames per clip (pgd: default all; combined: default 1)")
    how.add_argument("--max-flow", type=finite, default=1.0, help="combined: flow budget in pixels")
    how.add_argument("--inject", type=int, default=300, help="injected: DeepSAVA clips added to the data")
    how.add_argument("--from-scratch", action="store_true", help="start from random weights")
    how.add_argument("--limit", type=int, default=None, help="train on the first N clips only")
    how.add_argument("--seed", type=int, default=0)
    run = training.add_argument_group("run")
    device_argument(run)
    run.add_argument("--workers", type=int, default=2, help="processes decoding video files")
    run.add_argument("--checkpoint-every", type=int, default=20, help="batches between checkpoints")
    run.add_argument("--out", type=Path, default=None,
                     help="run folder (default: runs/train-<model>-<defence>); an existing one is resumed")
    run.add_argument("--no-progress", action="store_true")
    run.add_argument("--keep-clips", action="store_true",
                     help="keep the decoded clips (the run folder's clips/) once training is done; an interrupted "
                          "run always keeps them for its resume")


def cmd_train(args) -> int:
    from ..files import file_stem, readable_size
    from ..models.bundled import bundled_names
    from ..runner.shard import resolve_device
    from ..train import TrainConfig, make_defence, train
    from ..train.data import check_data_settings
    from ..train.trainer import CLIPS

    refuse_user_model_options(args, bundled_names())
    for name in ("epochs", "batch_size", "checkpoint_every", "limit", "clip_frames"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise SavaError(f"--{name.replace('_', '-')} must be positive, got {value}")
    if args.defence == "injected" and args.inject < 1:
        raise SavaError(f"--inject must be positive under the injected defence, got {args.inject}")
    if args.size is not None and min(args.size) < 1:
        raise SavaError(f"--size must be positive, got {args.size[0]} {args.size[1]}")
    check_data_settings(args.model in bundled_names(), args.data, args.test_data, args.holdout)
    config = TrainConfig(model=args.model, defence=args.defence, epochs=args.epochs, lr=args.lr,
                         batch_size=args.batch_size, steps=args.steps, epsilon=args.epsilon, alpha=args.alpha,
                         frames=args.frames, max_flow=args.max_flow, inject=args.inject, limit=args.limit,
                         from_scratch=args.from_scratch, seed=args.seed, checkpoint_every=args.checkpoint_every,
                         data=args.data, test_data=args.test_data, holdout=args.holdout, **model_description(args))
    make_defence(args.defence, steps=args.steps, epsilon=args.epsilon, alpha=args.alpha, frames=args.frames,
                 max_flow=args.max_flow)  # bad settings fail before any work
    if args.test_data is not None and args.data is not None and Path(args.test_data) == Path(args.data):
        print("warning: --test-data is the training data: the clean accuracy reported is on the clips trained on",
              file=sys.stderr)
    folder = args.out or Path("runs") / f"train-{file_stem(args.model)}-{args.defence}"
    entry = train(config, folder, log=lambda line: print(line, file=sys.stderr), progress=not args.no_progress,
                  device=resolve_device(args.device), workers=args.workers)
    weights = folder / "model.safetensors"
    data = "" if args.model in bundled_names() and args.data is None else f" --data {args.test_data or args.data}"
    print(f"{args.model} under {args.defence}: clean test accuracy {entry['test_accuracy']:.2%}; "
          f"weights: {weights} (sava attack --model {weights}{data})")
    decoded = sum(path.stat().st_size for path in (folder / CLIPS).glob("*.u8"))
    if decoded and args.keep_clips:
        print(f"decoded clips kept: {folder / CLIPS} ({readable_size(decoded)})")
    elif decoded:  # only a resume reads them, and this run is finished: a rerun would decode the files again
        shutil.rmtree(folder / CLIPS, ignore_errors=True)
        print(f"removed the decoded clips ({readable_size(decoded)}; --keep-clips keeps them)")
    return 0
