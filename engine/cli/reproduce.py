"""``sava reproduce``: the shape of a paper's table regenerated on the bundled benchmark, or on the user's own
model and clips."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from ..errors import SavaError
from ..reproduce import TABLES as REPRODUCIBLE_TABLES
from .options import (
    HelpFormatter,
    device_argument,
    model_arguments,
    model_description,
    refuse_user_model_options,
)

REPRODUCIBLE = list(REPRODUCIBLE_TABLES)


def add_parser(sub) -> None:
    repro = sub.add_parser("reproduce", help="regenerate the shape of a paper table on the bundled benchmark or "
                                             "on your own model and clips",
                           formatter_class=HelpFormatter)
    repro.add_argument("tables", nargs="+", choices=REPRODUCIBLE + ["all"], metavar="TABLE",
                       help=f"one or more of {', '.join(REPRODUCIBLE)}, or all (runs shared between the tables of "
                            "one model are made once)")
    what = repro.add_argument_group("model and clips (default: a bundled model on its own test split)")
    model_arguments(what, all_models=True)
    what.add_argument("--data", default=None,
                      help="the clips the tables attack: a bundled set (its test split), a folder of class "
                           "sub-folders or a CSV of path,label (default: the bundled model's test split)")
    what.add_argument("--train-data", default=None,
                      help="table11, table-b13: the clips each defence trains on (default: the bundled model's "
                           "training split); clean accuracy is measured on --data")
    device_argument(repro)
    repro.add_argument("--num-videos", type=int, default=32)
    repro.add_argument("--iters", type=int, default=100)
    repro.add_argument("--out", type=Path, default=Path("runs/reproduce"))


def cmd_reproduce(args) -> int:
    from ..files import file_stem
    from ..models.bundled import bundled_names
    from ..reproduce import BUNDLED_PEERS, TABLES, TRAINING, context, models_for, reproduce
    from ..runner.shard import resolve_device

    bundled = bundled_names()
    refuse_user_model_options(args, bundled)
    if args.num_videos < 1 or args.iters < 1:
        raise SavaError("--num-videos and --iters must be positive")
    tables = list(TABLES) if "all" in args.tables else list(dict.fromkeys(args.tables))
    own = args.model != "all" and args.model not in bundled  # the user's model
    if args.model == "all" and (args.data or args.train_data):
        raise SavaError("--data and --train-data go with one model; --model all runs every bundled model on its "
                        "own clips")
    custom = own or bool(args.data or args.train_data)  # a context of the user's model or clips
    if custom:
        if own and args.data is None:
            raise SavaError("--data is needed for a model that is not bundled: the clips the tables attack")
        refused = [t for t in tables if t in BUNDLED_PEERS and own] + \
                  [t for t in tables if t in TRAINING and own and args.train_data is None]
        if refused and "all" not in args.tables:
            raise SavaError(f"{', '.join(refused)} cannot run here: tt and importance compare the bundled models "
                            "of one dataset (use sava transfer for your own), and the training tables need "
                            "--train-data for a model that is not bundled")
        if refused:  # "all": the tables that apply
            print(f"sava reproduce: {', '.join(refused)} skipped (they compare bundled models, or train without "
                  "--train-data)", file=sys.stderr)
        tables = [t for t in tables if t not in refused]
    device = resolve_device(args.device)
    log = lambda line: print(line, file=sys.stderr)  # noqa: E731
    if args.train_data is not None and args.data is not None and Path(args.train_data) == Path(args.data):
        log("warning: --train-data and --data are the same clips: clean accuracy and fooling rates are then "
            "measured on what each defence trained on")
    contexts = {}  # one per model: tables of the same model share their clips and common runs
    command = "sava " + shlex.join(args.argv) if hasattr(args, "argv") else None
    for table in tables:
        for name in models_for(table, args.model):
            if name not in contexts:
                contexts[name] = _user_context(args, log, device) if custom else \
                    context(name, args.num_videos, args.iters, log, device)
            folder = args.out / file_stem(name)
            reproduce(table, name, folder, args.num_videos, args.iters, log, ctx=contexts[name],
                      command=command if custom else None)
            print((folder / f"{table}.md").read_text())
            print(f"written: {folder}/{table}.md, .json, .png\n")
    return 0


def _user_context(args, log, device):
    """The context of ``--model`` on ``--data`` (the user's model, or a bundled one on other clips)."""
    from ..models.adapter import clip_for_files, sampling_for_files
    from ..reproduce import user_context
    from .options import load_model_from_args

    model = load_model_from_args(args, device)
    data = args.data or model.info.extra.get("dataset")
    frames, (height, width) = clip_for_files(model.info, args.clip_frames, args.size)
    sampling = sampling_for_files(model.info, args.fit, args.frame_stride, resize=args.resize, size=(height, width),
                                  rate=args.frame_rate)
    training = {"model": args.model, **model_description(args), "data": args.train_data, "test_data": args.data}
    return user_context(model, data, (frames, height, width), args.num_videos, args.iters, log, training, sampling)
