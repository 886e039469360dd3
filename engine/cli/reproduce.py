"""``sava reproduce``: the shape of a paper's table regenerated on the bundled benchmark."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import SavaError
from ..reproduce import TABLES as REPRODUCIBLE_TABLES

REPRODUCIBLE = list(REPRODUCIBLE_TABLES)


def add_parser(sub) -> None:
    repro = sub.add_parser("reproduce", help="regenerate the shape of a paper table on the bundled benchmark",
                           formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    repro.add_argument("tables", nargs="+", choices=REPRODUCIBLE + ["all"], metavar="TABLE",
                       help=f"one or more of {', '.join(REPRODUCIBLE)}, or all (runs shared between the tables of "
                            "one model are made once)")
    repro.add_argument("--model", default="c3d-camera", help="a bundled model, or all")
    repro.add_argument("--num-videos", type=int, default=32)
    repro.add_argument("--iters", type=int, default=100)
    repro.add_argument("--out", type=Path, default=Path("runs/reproduce"))


def cmd_reproduce(args) -> int:
    from ..models.bundled import bundled_names
    from ..reproduce import TABLES, context, models_for, reproduce

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
