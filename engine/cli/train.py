"""``sava train``: a bundled model fine-tuned under a defence (adversarial training)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import SavaError
from .options import finite


def add_parser(sub) -> None:
    training = sub.add_parser("train", help="fine-tune a bundled model under a defence (adversarial training)",
                              formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    training.add_argument("--model", default="c3d-camera", help="a bundled model (its architecture, data, weights)")
    training.add_argument("--defence", default="combined", choices=["none", "pgd", "combined", "injected"])
    training.add_argument("--epochs", type=int, default=3)
    training.add_argument("--lr", type=finite, default=1e-4)
    training.add_argument("--batch-size", type=int, default=32)
    training.add_argument("--steps", type=int, default=5, help="inner attack steps per batch (pgd, combined)")
    training.add_argument("--epsilon", type=finite, default=8 / 255, help="noise budget (L-infinity)")
    training.add_argument("--alpha", type=finite, default=None, help="inner step size (default 2.5 epsilon / steps)")
    training.add_argument("--frames", type=int, default=None,
                          help="perturbed frames per clip (pgd: default all; combined: default 1)")
    training.add_argument("--max-flow", type=finite, default=1.0, help="combined: flow budget in pixels")
    training.add_argument("--inject", type=int, default=300, help="injected: DeepSAVA clips added to the data")
    training.add_argument("--from-scratch", action="store_true", help="start from random weights")
    training.add_argument("--limit", type=int, default=None, help="train on the first N clips only")
    training.add_argument("--seed", type=int, default=0)
    training.add_argument("--checkpoint-every", type=int, default=20, help="batches between checkpoints")
    training.add_argument("--out", type=Path, default=None,
                          help="run folder (default: runs/train-<model>-<defence>); an existing one is resumed")
    training.add_argument("--no-progress", action="store_true")


def cmd_train(args) -> int:
    from ..models.bundled import bundled_names
    from ..train import TrainConfig, make_defence, train

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
