"""``python -m sava.aot_report``: the ahead-of-time compile report of every Triton kernel variant
(:mod:`sava.kernels.aot`), with this checkout's commit in every row. Needs TRITON_INTERPRET unset."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .files import write_atomic
from .kernels import aot
from .provenance import git_commit


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sava.aot_report", description=aot.__doc__.split("\n\n")[0])
    parser.add_argument("--arch", type=int, action="append", help="compute capability x10 (default: 80 and 90)")
    parser.add_argument("--out", help="write the JSON lines here as well as to stdout")
    args = parser.parse_args(argv)
    rows = list(aot.report(args.arch or [80, 90], commit=git_commit()))
    lines = "".join(json.dumps(row) + "\n" for row in rows)
    sys.stdout.write(lines)
    if args.out:
        write_atomic(Path(args.out), lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
