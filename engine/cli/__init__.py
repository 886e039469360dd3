"""The ``sava`` command line: one module per command, each holding its arguments and its handler.

    sava attack                 # DeepSAVA, one frame, on the bundled 3D CNN and its test clips
    sava attack --perturbation all --num-videos 60
    sava models                 # bundled models, zoo presets
    sava data                   # bundled datasets
"""

from __future__ import annotations

import argparse
import sys

from .. import __version__
from ..errors import SavaError, first_line, is_out_of_memory
from . import attack, export, listings, merge, reproduce, train, transfer

# In ``sava --help`` order; each module adds its sub-commands and names their handlers.
COMMAND_MODULES = (attack, reproduce, export, transfer, train, merge, listings)
COMMANDS = {"attack": attack.cmd_attack, "reproduce": reproduce.cmd_reproduce, "export": export.cmd_export,
            "transfer": transfer.cmd_transfer, "train": train.cmd_train, "merge": merge.cmd_merge,
            "models": listings.cmd_models, "data": listings.cmd_data}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sava", description="Sparse adversarial attacks on video classifiers.")
    parser.add_argument("--version", action="version", version=f"sava {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an unexpected error")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMAND_MODULES:
        command.add_parser(sub)
    return parser


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
        if is_out_of_memory(exc):
            print(f"sava {args.command}: error: out of memory ({first_line(exc)}); lower --batch-size or use smaller "
                  "clips (--clip-frames, --size); what finished is in the run folder, and the same command resumes",
                  file=sys.stderr)
            return 1
        print(f"sava {args.command}: error: unexpected {type(exc).__name__}: {exc} (sava --debug {args.command} "
              "... shows the traceback; what finished is in the run folder)", file=sys.stderr)
        return 1


__all__ = ["build_parser", "main"]
