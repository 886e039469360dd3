"""``sava merge``: a run folder's manifests gathered (shards from several machines) and its summary written."""

from __future__ import annotations

import sys
from pathlib import Path

from ..errors import SavaError


def add_parser(sub) -> None:
    merge = sub.add_parser("merge", help="gather the manifests of a run folder (shards from several machines) and "
                                         "write its summary")
    merge.add_argument("folder", type=Path)


def cmd_merge(args) -> int:
    from ..runner import merge
    from ..runner.folder import is_run_folder, locked

    if not is_run_folder(args.folder) or not (args.folder / "run.json").is_file():
        raise SavaError(f"{args.folder} is not a sava run folder (sava writes .sava-run and run.json into its run "
                        "folders)")
    with locked(args.folder):  # never while a run is writing into the folder
        summary = merge(args.folder, log=lambda problem: print(f"sava merge: warning: {problem}", file=sys.stderr))
    print(f"{args.folder}: {summary.videos} videos, {summary.attacked} attacked, FR {summary.fooling_rate:.1%}; "
          f"written: metrics.json, videos.jsonl")
    return 0
