"""Retrain the bundled target models, deterministically, on the CPU.

    python -m sava.models.train_bundled            # all six, about 10 minutes on 2 cores
    python -m sava.models.train_bundled c3d-camera # one

Seeds, thread count and the data are fixed, so the same machine reproduces
the same weights. The test accuracy written into each file's metadata is
measured here on the held-out split.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn

from .. import __version__
from ..data import bundled
from .bundled import MEAN, STD, WEIGHTS_DIR, build

RECIPES = {
    # name: (architecture, dataset, epochs)
    "c3d-camera": ("c3d", "camera", 12),
    "cnn_lstm-camera": ("cnn_lstm", "camera", 16),
    "tsn-camera": ("tsn", "camera", 12),
    "c3d-digits": ("c3d", "digits", 8),
    "cnn_lstm-digits": ("cnn_lstm", "digits", 16),
    "tsn-digits": ("tsn", "digits", 10),
}
BATCH, LR, SEED, THREADS = 32, 3e-3, 0, 2


def _normalised(videos: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(MEAN).view(1, 1, -1, 1, 1)
    std = torch.tensor(STD).view(1, 1, -1, 1, 1)
    return (videos - mean) / std


def _to_layout(videos: torch.Tensor, layout: str) -> torch.Tensor:
    return videos.transpose(1, 2) if layout == "BCTHW" else videos


@torch.no_grad()
def accuracy(module: nn.Module, clips, layout: str) -> float:
    module.eval()
    correct = 0
    for start in range(0, len(clips), 100):
        videos = _to_layout(_normalised(clips.float_videos(slice(start, start + 100))), layout)
        correct += int((module(videos).argmax(-1) == clips.labels[start : start + 100]).sum())
    return correct / len(clips)


def train(name: str, out_dir: Path = WEIGHTS_DIR, log=print) -> dict:
    arch, dataset, epochs = RECIPES[name]
    torch.manual_seed(SEED)
    train_set, test_set = bundled(dataset, "train"), bundled(dataset, "test")
    module = build(arch, len(train_set.classes), train_set.clip_shape[1])
    layout = module.layout
    optimiser = torch.optim.AdamW(module.parameters(), lr=LR, weight_decay=1e-4)
    steps = epochs * ((len(train_set) + BATCH - 1) // BATCH)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=LR, total_steps=steps)
    order_gen = torch.Generator().manual_seed(SEED)
    started = time.time()
    for epoch in range(epochs):
        module.train()
        total = 0.0
        for batch in torch.randperm(len(train_set), generator=order_gen).split(BATCH):
            videos = _to_layout(_normalised(train_set.float_videos(batch)), layout)
            loss = nn.functional.cross_entropy(module(videos), train_set.labels[batch])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            total += float(loss.detach()) * len(batch)
        log(f"{name}: epoch {epoch + 1}/{epochs} loss {total / len(train_set):.4f}")
    test_accuracy = accuracy(module, test_set, layout)
    meta = {
        "name": name,
        "arch": arch,
        "dataset": dataset,
        "layout": layout,
        "mean": list(MEAN),
        "std": list(STD),
        "classes": train_set.classes,
        "clip_shape": list(train_set.clip_shape),
        "test_accuracy": round(test_accuracy, 4),
        "train_accuracy": round(accuracy(module, train_set, layout), 4),
        "epochs": epochs,
        "seed": SEED,
        "train_seconds": round(time.time() - started, 1),
        "sava_version": __version__,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    state = {k: v.contiguous() for k, v in module.state_dict().items()}
    save_file(state, str(out_dir / f"{name}.safetensors"), metadata={k: json.dumps(v) for k, v in meta.items()})
    log(f"{name}: test accuracy {test_accuracy:.2%} ({meta['train_seconds']} s)")
    return meta


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help=f"models to train (default: all of {', '.join(RECIPES)})")
    parser.add_argument("--out", type=Path, default=WEIGHTS_DIR, help="folder for the .safetensors files")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(RECIPES))
    if unknown:
        parser.error(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(RECIPES)}")
    torch.set_num_threads(THREADS)
    torch.use_deterministic_algorithms(True)
    for name in args.names or RECIPES:
        train(name, args.out)


if __name__ == "__main__":
    main()
