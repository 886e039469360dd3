"""``sava train``: fine-tune (or train from scratch) a model under one defence, with a checkpoint you can stop
and resume. The model is any that ``sava attack`` takes (a bundled one, a zoo preset, a user factory with its
weights, a TorchScript file); the clips a bundled set or the user's video files (:mod:`.data`).

The run folder holds ``config.json`` and ``data.json`` (the settings and the clips; a resumed run must match
both), ``clips/`` (video files decoded once, as uint8, read through a memory map), ``checkpoint.safetensors``
(weights, optimiser moments, the epoch's order of clips and the position in it, the defence's random state;
written atomically every ``checkpoint_every`` batches and at the end of every epoch), ``log.jsonl`` (per
epoch: training loss, clean accuracy on the test set, seconds; drawn in ``training.png``) and, when done,
``model.safetensors``: the weights with the metadata ``sava.load_model`` needs (a bundled architecture's, or
for any other model the ``--model`` it started from, its input description, class names and clip), and
``classes.txt`` beside it. A rerun continues from the checkpoint without repeating a finished batch.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import safe_open

from ..errors import ConfigError
from ..files import save_tensors_atomic, write_atomic
from ..models.loading import load_named_model
from ..runner.manifest import check_settings
from .data import describe, training_data
from .defences import make_defence
from .weights import reinitialise, save_trained, separate

CONFIG = "config.json"
DATA = "data.json"  # what the run trains and tests on (train.data.describe), checked on every resume
CLIPS = "clips"  # video files decoded once (train.clip_cache), reused by a resume while the files are unchanged


@dataclass
class TrainConfig:
    model: str = "c3d-camera"  # a bundled model (its architecture, data, weights) or any model sava attack takes
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
    # A model sava does not bundle, and the clips (all None for a bundled model on its own set; a run folder
    # from before these existed records none of them and still resumes).
    weights: str | None = None
    layout: str | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    classes: str | None = None  # --classes: names in output order, or a file of them
    data: str | None = None  # a bundled set, a folder of class sub-folders or a CSV (default: the model's set)
    test_data: str | None = None  # default: a bundled set's test split, else a held-out share of data
    holdout: float | None = None  # that share (default data.HOLDOUT)
    clip_frames: int | None = None  # video files: frames per clip (default: the model's own clip, else 16)
    size: tuple[int, int] | None = None  # video files: frame size (default: the model's own, else 112 x 112)
    fit: str | None = None  # video files: stretch or crop (data.Sampling; default: the model's own)
    frame_stride: int | None = None  # video files: frames apart (0: spread over the file; default: the model's)
    frame_rate: float | None = None  # video files: frames per second, each file resampled to it (--frame-rate)
    resize: tuple[int, ...] | None = None  # video files: pixels scaled to before the centre crop (--resize)


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


def _injected_set(config: TrainConfig, model, train_set, folder: Path, log=print):
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
    log(f"injected: making {len(videos)} DeepSAVA clips on the starting model (once; kept in {path.name}) ...")
    run = DeepSAVA(model, frames=1).run(videos, labels)
    kept = torch.tensor([r.success for r in run.results], dtype=torch.bool)
    adversarial = torch.stack([replay(v, r) for v, r in zip(videos, run.results) if r.success]) if kept.any() \
        else videos[:0]  # none fooled the model: nothing to inject, and the run says so
    log(f"injected: {int(kept.sum())} of {len(videos)} DeepSAVA clips fooled the starting model and join the "
        "training set" + ("" if kept.any() else " (training goes on as under 'none')"))
    save_tensors_atomic({"videos": adversarial, "labels": labels[kept]}, path)
    return adversarial, labels[kept]


def train(config: TrainConfig, folder: str | Path, log=print, progress: bool = True, device=None,
          workers: int = 2) -> dict:
    """Train (or resume) the run in ``folder`` on ``device`` (default: where the model loads, the CPU);
    ``workers`` processes decode video files. Returns the final log entry."""
    from tqdm import tqdm

    folder = Path(folder)
    # Paths as text (the Python API takes Path objects), as every loader and config.json take them.
    config = replace(config, **{name: str(value) for name, value in asdict(config).items()
                                if isinstance(value, os.PathLike)})
    settings = json.loads(json.dumps(asdict(config)))  # as config.json holds them: tuples read back as lists
    if (folder / CONFIG).is_file():  # a resume with other settings stops before any model or file is read
        check_settings(folder, settings, tuple(settings), name=CONFIG)
    defence = _defence(config)
    torch.manual_seed(config.seed)
    model = load_named_model(config.model, config.weights, layout=config.layout, mean=config.mean, std=config.std,
                             classes=config.classes, device=device)
    if config.from_scratch:
        kept = reinitialise(model)
        if kept:
            log(f"note: --from-scratch reset every layer that can reset itself; {len(kept)} parameter(s) held "
                f"outside such layers keep their starting values: {', '.join(kept[:6])}"
                f"{', ...' if len(kept) > 6 else ''}")
    data = training_data(model, config, workers, progress, cache=folder / CLIPS)
    for line in data.notes:
        log(line)
    for video_id, why in data.skipped:
        log(f"skipped video {video_id}: {why}")
    model.info.classes = data.classes
    clips = describe(data, config.limit)
    _check_same_data(folder, clips)
    check_settings(folder, settings, tuple(settings), name=CONFIG)  # the folder is made once all is known good
    if not (folder / DATA).is_file():
        write_atomic(folder / DATA, json.dumps(clips, indent=2))
    train_set, test_set = data.train, data.test
    videos, labels = train_set.videos[: config.limit], train_set.labels[: config.limit]  # uint8 until batched
    if config.defence == "injected":
        extra_videos, extra_labels = _injected_set(config, model, train_set, folder, log)
        videos, labels = torch.cat([_as_float(videos), extra_videos]), torch.cat([labels, extra_labels])
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
        tensors = {f"model.{k}": v for k, v in separate(model.module.state_dict()).items()}
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
            end = position + config.batch_size
            if len(order) - end == 1:  # a last batch of one clip joins this one: BatchNorm cannot train on one
                end += 1
            batch = order[position:end]
            inputs = defence.inputs(model, _as_float(videos[batch]).to(model.device), labels[batch].to(model.device))
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
        entry = {"epoch": epoch + 1, "loss": total / max(seen, 1),
                 "test_accuracy": clean_accuracy(model, test_set, config.batch_size),
                 "seconds": time.perf_counter() - started}
        with open(folder / "log.jsonl", "a") as handle:
            handle.write(json.dumps(entry) + "\n")
        log(f"{config.defence}: epoch {epoch + 1}: loss {entry['loss']:.4f}, clean test accuracy "
            f"{entry['test_accuracy']:.2%}")
        epoch, position, order = epoch + 1, 0, None
        order_generator = torch.Generator().manual_seed(config.seed + 7919 * epoch)
        save(epoch, position, torch.empty(0, dtype=torch.long))
    accuracy = clean_accuracy(model, test_set, config.batch_size)
    save_trained(model, config, defence, accuracy, folder, tuple(train_set.clip_shape))
    _plot_log(folder, f"{model.name} under {config.defence}")
    return entry | {"test_accuracy": accuracy}


def _plot_log(folder: Path, title: str) -> None:
    """``training.png``: the training loss and the clean test accuracy of every epoch in ``log.jsonl``."""
    from ..reproduce import render  # here, not at the top: sava.reproduce itself imports sava.train

    by_epoch = {}  # the last line of each epoch: one cut between its log line and its checkpoint ran again
    for line in (folder / "log.jsonl").read_text().splitlines():
        try:
            entry = json.loads(line)
            by_epoch[int(entry["epoch"])] = entry
        except (ValueError, KeyError, TypeError):  # a torn or edited line is no point of the plot
            continue
    if not by_epoch:
        return
    epochs = sorted(by_epoch)
    entries = [by_epoch[epoch] for epoch in epochs]
    fig, (loss, accuracy) = render.figure(2, width=4.5, height=3.2)
    loss.plot(epochs, [entry["loss"] for entry in entries], marker="o")
    loss.set(xlabel="epoch", ylabel="training loss (under the defence)")
    accuracy.plot(epochs, [entry["test_accuracy"] for entry in entries], marker="o", color="tab:green")
    accuracy.set(xlabel="epoch", ylabel="clean test accuracy", ylim=(0, 1.05))
    for axis in (loss, accuracy):
        axis.set_xticks(epochs)
    render.save(fig, folder / "training.png", title)


def _check_same_data(folder: Path, now: dict) -> None:
    """A resumed run trains on the clips it began with: its checkpoint holds positions in their order, so
    other clips would silently train on a different set (or index past its end)."""
    path = folder / DATA
    if not path.is_file():  # a new run, or one begun before sava recorded its data
        return
    then = json.loads(path.read_text())
    if then != now:
        changed = [f"{key}: {then.get(key)!r} then, {now.get(key)!r} now" for key in now
                   if key != "classes" and then.get(key) != now.get(key)]
        if then.get("classes") != now.get("classes"):
            changed.append("the class names differ")
        raise ConfigError(f"{folder} was trained on other clips ({'; '.join(changed)}): files were added, removed, "
                          "relabelled or re-encoded since; resume with the same files or choose another --out")


def _as_float(videos: torch.Tensor) -> torch.Tensor:
    return videos.float() / 255.0 if videos.dtype == torch.uint8 else videos
