"""``sava train``: fine-tune (or train from scratch) a bundled model under one
defence, with a checkpoint you can stop and resume.

The run folder holds ``config.json`` (a resumed run must match it),
``checkpoint.safetensors`` (weights, optimiser moments, the epoch's order of
clips and the position in it, the defence's random state; written atomically
every ``checkpoint_every`` batches and at the end of every epoch),
``log.jsonl`` (per epoch: training loss, clean accuracy on the test split,
seconds) and, when done, ``model.safetensors`` (weights plus the metadata
``sava.load_model`` needs). A rerun continues from the checkpoint without
repeating a finished batch.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import safe_open

from .. import __version__
from ..data import bundled
from ..files import save_tensors_atomic
from ..models.bundled import build, load_bundled, read_metadata, weights_path
from ..runner.manifest import check_settings
from .defences import make_defence


@dataclass
class TrainConfig:
    model: str = "c3d-camera"  # a bundled model: its architecture, data and (unless from_scratch) its weights
    defence: str = "combined"
    epochs: int = 3
    lr: float = 1e-4  # fine-tuning: at 1e-3 the undefended control itself lost 12 points of accuracy in 3 epochs
    batch_size: int = 32
    steps: int = 5  # inner attack steps
    epsilon: float = 8 / 255
    alpha: float | None = None  # inner step; default 2.5 epsilon / steps
    frames: int | None = None  # pgd: None = all frames; combined: default 1
    max_flow: float = 1.0  # combined: flow budget in pixels
    inject: int = 300  # injected: adversarial clips generated and added to the training set
    limit: int | None = None  # use only the first clips of the training split (tiny runs)
    from_scratch: bool = False
    seed: int = 0
    checkpoint_every: int = 20  # batches


def _defence(config: TrainConfig):
    options = {"steps": config.steps, "epsilon": config.epsilon, "alpha": config.alpha, "frames": config.frames,
               "max_flow": config.max_flow, "seed": config.seed}
    return make_defence(config.defence, **options)


def _optimiser_tensors(optimiser: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    out = {}
    for index, state in optimiser.state_dict()["state"].items():
        for key, value in state.items():
            out[f"optimiser.{index}.{key}"] = torch.as_tensor(value).detach().cpu()
    return out


def _load_optimiser(optimiser: torch.optim.Optimizer, tensors: dict[str, torch.Tensor]) -> None:
    state = optimiser.state_dict()
    per_param: dict[int, dict] = {}
    for name, value in tensors.items():
        if name.startswith("optimiser."):
            _, index, key = name.split(".", 2)
            per_param.setdefault(int(index), {})[key] = value
    state["state"] = per_param
    optimiser.load_state_dict(state)


@torch.no_grad()
def clean_accuracy(model, clips, batch: int = 100) -> float:
    predictions = torch.cat([model.predict(clips.float_videos(slice(s, s + batch)))[0].cpu()
                             for s in range(0, len(clips), batch)])
    return float((predictions == clips.labels).float().mean())


def _injected_set(config: TrainConfig, model, train_set, folder: Path):
    """Adversarial training clips made once by DeepSAVA on the starting model (cached in the folder)."""
    from ..attacks import DeepSAVA
    from ..transfer import replay

    path = folder / "injected.safetensors"
    if path.is_file():
        with safe_open(str(path), framework="pt") as handle:
            return handle.get_tensor("videos"), handle.get_tensor("labels")
    generator = torch.Generator().manual_seed(config.seed)
    chosen = torch.randperm(len(train_set), generator=generator)[: config.inject]
    videos, labels = train_set.float_videos(chosen), train_set.labels[chosen]
    run = DeepSAVA(model, frames=1).run(videos, labels)
    adversarial = torch.stack([replay(v, r) for v, r in zip(videos, run.results) if r.success])
    kept = torch.tensor([r.success for r in run.results])
    save_tensors_atomic({"videos": adversarial, "labels": labels[kept]}, path)
    return adversarial, labels[kept]


def train(config: TrainConfig, folder: str | Path, log=print, progress: bool = True) -> dict:
    """Train (or resume) the run in ``folder``; returns the final log entry."""
    from tqdm import tqdm

    folder = Path(folder)
    settings = asdict(config)
    check_settings(folder, settings, tuple(settings), name="config.json")
    defence = _defence(config)
    torch.manual_seed(config.seed)
    meta = read_metadata(weights_path(config.model))
    model = load_bundled(config.model)
    if config.from_scratch:
        model.module.load_state_dict(build(meta["arch"], len(meta["classes"]), meta["clip_shape"][1]).state_dict())
    train_set, test_set = bundled(meta["dataset"], "train"), bundled(meta["dataset"], "test")
    videos, labels = train_set.float_videos(slice(0, config.limit)), train_set.labels[: config.limit]
    if config.defence == "injected":
        extra_videos, extra_labels = _injected_set(config, model, train_set, folder)
        videos, labels = torch.cat([videos, extra_videos]), torch.cat([labels, extra_labels])
    optimiser = torch.optim.AdamW(model.module.parameters(), lr=config.lr, weight_decay=1e-4)

    epoch, position, order = 0, 0, None
    checkpoint = folder / "checkpoint.safetensors"
    if checkpoint.is_file():
        with safe_open(str(checkpoint), framework="pt") as handle:
            tensors = {k: handle.get_tensor(k) for k in handle.keys()}
        model.module.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        _load_optimiser(optimiser, tensors)
        epoch, position = int(tensors["epoch"]), int(tensors["position"])
        order = tensors["order"] if tensors["order"].numel() else None  # empty: the epoch had finished
        defence.generator.set_state(tensors["defence_rng"])
        if epoch >= config.epochs:
            log(f"{folder}: already trained ({config.epochs} epochs)")
        else:
            log(f"resuming {folder}: epoch {epoch + 1}, batch {position // config.batch_size + 1}")
    order_generator = torch.Generator().manual_seed(config.seed + 7919 * epoch)

    def save(epoch_, position_, order_):
        tensors = {f"model.{k}": v.detach().cpu() for k, v in model.module.state_dict().items()}
        tensors |= _optimiser_tensors(optimiser) | {
            "epoch": torch.tensor(epoch_), "position": torch.tensor(position_), "order": order_,
            "defence_rng": defence.generator.get_state()}
        save_tensors_atomic(tensors, checkpoint)

    entry = {}
    while epoch < config.epochs:
        if order is None:
            order = torch.randperm(len(videos), generator=order_generator)
        started, total, seen = time.perf_counter(), 0.0, 0
        bar = tqdm(total=len(order), initial=position, desc=f"{config.defence} epoch {epoch + 1}/{config.epochs}",
                   unit="clip", disable=not progress)
        while position < len(order):
            batch = order[position: position + config.batch_size]
            inputs = defence.inputs(model, videos[batch].to(model.device), labels[batch].to(model.device))
            model.module.train()
            loss = F.cross_entropy(model.logits(inputs), labels[batch].to(model.device))
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += float(loss.detach()) * len(batch)
            seen += len(batch)
            position += len(batch)
            bar.update(len(batch))
            if (position // config.batch_size) % config.checkpoint_every == 0 and position < len(order):
                save(epoch, position, order)
        bar.close()
        model.module.eval()
        entry = {"epoch": epoch + 1, "loss": total / max(seen, 1), "test_accuracy": clean_accuracy(model, test_set),
                 "seconds": time.perf_counter() - started}
        with open(folder / "log.jsonl", "a") as handle:
            handle.write(json.dumps(entry) + "\n")
        log(f"{config.defence}: epoch {epoch + 1}: loss {entry['loss']:.4f}, clean test accuracy "
            f"{entry['test_accuracy']:.2%}")
        epoch, position, order = epoch + 1, 0, None
        order_generator = torch.Generator().manual_seed(config.seed + 7919 * epoch)
        save(epoch, position, torch.empty(0, dtype=torch.long))
    final = meta | {"name": f"{config.model}+{config.defence}", "defence": defence.settings(),
                    "test_accuracy": clean_accuracy(model, test_set), "sava_version": __version__,
                    "trained_from": "scratch" if config.from_scratch else config.model}
    weights = {k: v.detach().cpu() for k, v in model.module.state_dict().items()}
    save_tensors_atomic(weights, folder / "model.safetensors", {k: json.dumps(v) for k, v in final.items()})
    return entry | {"test_accuracy": final["test_accuracy"]}
