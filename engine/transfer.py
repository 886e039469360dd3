"""Black-box transfer evaluation (DeepSAVA Table 12, the TT paper's attack
success rates): adversarial videos made on white-box source models are
classified by target models on any runtime.

A cell of the matrix is the fooling rate of one (source model, attack) on one
target: over the videos the source attacked (it classified them correctly)
and the target classifies correctly when clean, the share the target gets
wrong on the adversarial video. Videos are replayed from the results'
perturbations (``flow`` / ``noise`` on ``frames``), so run folders written by
``sava attack`` serve as sources as well as fresh runs. A target that numbers
its classes otherwise than the source has its decisions matched to the
videos' labels by class name.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch

from . import kernels
from .classes import spelling
from .errors import DataError, InputError, first_line
from .metrics import VideoResult
from .models.adapter import CLIP_MISMATCH, takes_one_clip


@dataclass
class SourceRun:
    source: str  # the white-box model the videos were made on
    attack: str
    videos: torch.Tensor  # clean, B x T x C x H x W
    labels: torch.Tensor
    results: list[VideoResult]
    dataset: str | None = None
    extra: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.attack} on {self.source}"


def replay(video: torch.Tensor, result: VideoResult) -> torch.Tensor:
    """The adversarial clip a result describes (the clean clip where nothing was perturbed)."""
    if not result.frames or (result.flow is None and result.noise is None):
        return video
    for name, value in (("flow", result.flow), ("noise", result.noise)):
        if value is not None and not bool(torch.isfinite(value).all()):
            raise InputError(f"the perturbation of video {result.video_id!r} holds NaN or infinite {name} values")
    frames = torch.tensor(result.frames, device=video.device)
    # A flicker's noise is k x C x 1 x 1: the same offset over the frame.
    noise = None if result.noise is None else result.noise.to(video.device).expand(len(frames), *video.shape[1:])
    flow = None if result.flow is None else result.flow.to(video.device)[None]
    return kernels.apply_perturbation(video[None], frames[None], flow, None if noise is None else noise[None],
                                      backend="reference")[0]


def generate(model, attack, videos: torch.Tensor, labels: torch.Tensor, name: str | None = None) -> SourceRun:
    run = attack.run(videos, labels)
    return SourceRun(model.name, name or run.settings["method"], videos, labels, run.results,
                     model.info.extra.get("dataset"), {"classes": model.classes})


def from_run_folder(folder: str | Path, log=print) -> SourceRun:
    """A ``sava attack`` run folder as a transfer source (clips are reloaded from its dataset; files the attack
    skipped are left out and listed; every perturbation file is checked before it is replayed)."""
    from .data import Sampling, load_dataset
    from .files import read_records
    from .perturbation_file import read_perturbation

    folder = Path(folder)
    problems: list[str] = []
    try:
        meta = json.loads((folder / "metrics.json").read_text())
        records = read_records(folder / "videos.jsonl", problems)
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"{folder} is not a readable sava run folder: {exc}") from exc
    for problem in problems:
        log(f"warning: {folder}: {problem}")
    dataset = load_dataset(meta["data"], meta.get("split", "test"), meta.get("clip_frames", 16),
                           tuple(meta.get("size", (112, 112))), Sampling.recorded(meta))
    index = {dataset.video_id(i): i for i in range(len(dataset))}
    videos, labels, results, skipped = [], [], [], []
    for record in records:
        if "skipped" in record:  # the attack could not use this file: nothing to replay
            skipped.append(record["video_id"])
            continue
        if record["video_id"] not in index:
            raise DataError(f"{folder}: video {record['video_id']!r} is not in dataset {meta['data']!r}")
        _, clip, _ = dataset[index[record["video_id"]]]
        result = VideoResult.from_record(record)
        if record.get("perturbation"):
            result.flow, result.noise = read_perturbation(folder / record["perturbation"], result.frames,
                                                          tuple(clip.shape))
        videos.append(clip)
        labels.append(record["label"])
        results.append(result)
    if skipped:
        log(f"{folder}: {len(skipped)} video(s) the attack skipped are left out: {', '.join(skipped[:5])}"
            + (" ..." if len(skipped) > 5 else ""))
    if not results:
        raise DataError(f"{folder}: the run holds no attacked or classified video to replay")
    settings = meta.get("settings", {})
    return SourceRun(meta["model"], settings.get("method", "attack"), torch.stack(videos), torch.tensor(labels),
                     results, meta["data"], {"run_folder": str(folder), "skipped": skipped,
                                             "classes": meta.get("classes")})


def check_targets_take(targets: dict[str, object], clip_shapes) -> None:
    """Every target classifies blank clips of each ``T x C x H x W`` it will be shown, two at once where it is
    handed several (``max_batch``), before any attack runs or any cell is computed: a target that cannot take
    the clips stops the transfer up front, and one that takes a single clip but not two is told
    ``--batch-size 1``."""
    for label, target in targets.items():
        batch = min(2, getattr(target, "max_batch", 1))
        for shape in dict.fromkeys(tuple(s) for s in clip_shapes):
            try:
                target.predict(torch.zeros(batch, *shape))
            except CLIP_MISMATCH as exc:
                if batch > 1 and takes_one_clip(target.predict, shape):
                    raise InputError(f"target {label} classifies one clip but not a batch of {batch} "
                                     f"({first_line(exc)}); it takes one video at a time: give --batch-size 1"
                                     ) from exc
                raise InputError(f"target {label} cannot classify clips of {' x '.join(map(str, shape))} "
                                 f"(B x T x C x H x W): {first_line(exc)}") from exc


def evaluate(sources: list[SourceRun], targets: dict[str, object], log=print) -> list[dict]:
    """One row per (source run, target): the fooling rate and every decision.
    ``targets`` maps a label (model name and runtime) to a model with ``predict``."""
    meanings = {}  # every pair checked before the first cell
    for index, run in enumerate(sources):
        for label, target in targets.items():
            meanings[index, label] = _outputs_as_labels(run, label, target)
            if meanings[index, label] is not None:
                log(f"{label} numbers its classes otherwise than {run.name}: its decisions are matched to the "
                    "videos' labels by class name")
    check_targets_take(targets, [run.videos.shape[1:] for run in sources])
    rows = []
    for index, run in enumerate(sources):
        attacked = torch.tensor([r.attacked for r in run.results])
        adversarial = torch.stack([replay(v, r) for v, r in zip(run.videos, run.results)])
        for label, target in targets.items():
            clean_pred = target.predict(run.videos)[0].cpu()
            adv_pred = target.predict(adversarial)[0].cpu()
            meaning = meanings[index, label]
            counted = attacked & (_as_labels(clean_pred, meaning) == run.labels)
            fooled = (_as_labels(adv_pred, meaning) != run.labels) & counted
            rate = float(fooled.sum()) / max(int(counted.sum()), 1)
            rows.append({"source": run.source, "attack": run.attack, "target": label,
                         "fooling_rate": rate if counted.any() else None, "videos": int(counted.sum()),
                         "source_fooling_rate": sum(r.success for r in run.results) / max(int(attacked.sum()), 1),
                         "adversarial_predictions": adv_pred.tolist(), "clean_predictions": clean_pred.tolist()})
            log(f"{run.name} -> {label}: FR {rate:.1%} over {int(counted.sum())} videos")
            if attacked.any() and not counted.any():
                log(f"warning: {label} classifies none of the {int(attacked.sum())} attacked clean videos of "
                    f"{run.name} correctly, so its cell is empty: does it number the classes as the source does "
                    "(see the run's classes and class_order)?")
    return rows


def _as_labels(predictions: torch.Tensor, meaning: torch.Tensor | None) -> torch.Tensor:
    """A target's decisions in the source's label numbering (see ``_outputs_as_labels``)."""
    return predictions if meaning is None else meaning[predictions]


def _outputs_as_labels(run: SourceRun, label: str, target) -> torch.Tensor | None:
    """Which of the source's labels each output of the target means: matched by class name (spelt as
    ``sava.classes.spelling`` compares them, so a Kinetics name reads the same from torchvision's list and a
    Hugging Face ``id2label``), -1 for a class the source does not know; None where the two number their
    classes alike (the same names, or names missing on one side). A target that cannot name every class the
    videos carry cannot be scored against their labels (every such clip would count as misclassified)."""
    classes = getattr(target, "classes", None)
    labels = run.labels.tolist()
    known = run.extra.get("classes")
    if classes and known and list(classes) != list(known):
        by_spelling = {spelling(name): index for index, name in enumerate(known)}
        mapping = torch.tensor([by_spelling.get(spelling(name), -1) for name in classes])
        named = set(mapping.tolist())
        missing = sorted({str(known[i]) if i < len(known) else str(i) for i in labels if i not in named})
        if missing:
            raise InputError(f"target {label} has {len(classes)} classes ({', '.join(map(str, classes[:4]))}, ...), "
                             f"the source {run.source} {len(known)} ({', '.join(map(str, known[:4]))}, ...), and "
                             f"the target names none of {', '.join(missing[:4])}: they classify different things")
        return mapping
    if classes and labels and max(labels) >= len(classes):
        raise InputError(f"target {label} knows {len(classes)} classes, but the videos of {run.name} carry labels "
                         f"up to {max(labels)}: it was trained for another label set")
    return None


def disagreements(rows: list[dict], first: str, second: str) -> int:
    """How many decisions (clean and adversarial) differ between two runtime labels of the same models,
    e.g. ``c3d-camera [torch]`` against ``c3d-camera [onnxruntime]``."""
    by_key = {(r["source"], r["attack"], r["target"]): r for r in rows}
    count = 0
    for (source, attack, target), row in by_key.items():
        if target.endswith(f"[{first}]"):
            other = by_key.get((source, attack, target.replace(f"[{first}]", f"[{second}]")))
            if other is not None:
                for key in ("adversarial_predictions", "clean_predictions"):
                    count += sum(a != b for a, b in zip(row[key], other[key]))
    return count


def matrix(rows: list[dict]) -> tuple[list[str], list[str], dict[tuple[str, str], float | None]]:
    """The rows as a matrix: source labels (in order), target labels, and each cell's fooling rate."""
    label = lambda r: f"{r['attack']} on {r['source']}"  # noqa: E731
    sources = list(dict.fromkeys(label(r) for r in rows))
    targets = list(dict.fromkeys(r["target"] for r in rows))
    return sources, targets, {(label(r), r["target"]): r["fooling_rate"] for r in rows}


def write(out: Path, rows: list[dict], meta: dict) -> None:
    """``transfer.json`` (every row and decision), ``transfer.csv`` (the matrix) and ``transfer.png``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "transfer.json").write_text(json.dumps(meta | {"rows": rows}, indent=2))
    sources, targets, cell = matrix(rows)
    with open(out / "transfer.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["source \\ target", *targets])
        for source in sources:
            writer.writerow([source, *["" if cell[source, t] is None else f"{cell[source, t]:.4f}"
                                       for t in targets]])
    _heatmap(out / "transfer.png", sources, targets, cell, meta.get("title", "transfer fooling rate"))


def _tick_labels(names: list[str]) -> list[str]:
    """Names for the heatmap's axes: a file or folder target by its last path component (``hf:/a/b/videomae
    [torch]`` as ``hf:videomae [torch]``), unless two would then read the same; the CSV and JSON keep the
    full names."""
    def short(name: str) -> str:
        head, bracket, runtime = name.partition(" [")
        scheme, colon, rest = head.rpartition(":") if ":" in head and "/" in head else ("", "", head)
        rest = re.split(r"[\\/]+", rest.strip("\\/"))[-1] or rest
        return f"{scheme}{colon}{rest}{bracket}{runtime}"

    shortened = [short(name) for name in names]
    return shortened if len(set(shortened)) == len(shortened) else list(names)


def _heatmap(path: Path, sources, targets, cell, title: str) -> None:
    from .reproduce import render

    columns, rows = _tick_labels(list(targets)), _tick_labels(list(sources))
    longest = max((len(label) for label in columns), default=0)
    # Room below the axes for the slanted column labels, beside them for the row labels.
    fig, (axis,) = render.figure(1, width=max(6.0, 1.3 * len(targets) + 3 + 0.06 * max(map(len, rows), default=0)),
                                 height=max(4.0, 2.5 + 0.05 * longest + 0.3 * len(sources)))
    grid = [[float("nan") if cell[s, t] is None else cell[s, t] for t in targets] for s in sources]
    image = axis.imshow(grid, vmin=0, vmax=1, cmap="viridis", aspect="auto")
    axis.set_xticks(range(len(targets)), columns, rotation=30, ha="right", fontsize=7)
    axis.set_yticks(range(len(sources)), rows, fontsize=7)
    for i, line in enumerate(grid):
        for j, value in enumerate(line):
            axis.text(j, i, "-" if value != value else f"{value:.0%}", ha="center", va="center", fontsize=8,
                      color="white" if value == value and value < 0.5 else "black")
    fig.colorbar(image, ax=axis)
    render.save(fig, path, title)
