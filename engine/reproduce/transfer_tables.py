"""The temporal-translation paper's comparisons (Wei et al. 2022), with one
bundled model as the white box and the other bundled models of its dataset
as the black boxes.

* ``tt``: FGSM, BIM, MI, DI and TI, each without and with TT (L = 7,
  Gaussian weights, adjacent shifting), epsilon 16/255: the attack success
  rate (ASR) on every black-box model, over the clips every model involved
  classifies correctly (as the paper samples its clips).
* ``importance``: the mean Spearman correlation of frame importance between
  every pair of the dataset's models, by Grad-CAM, zero-padding and
  mean-padding (the paper's Fig. 2).
"""

from __future__ import annotations

import time

import torch

from ..attacks import LINF_METHODS, LinfAttack
from ..importance import MEASURES, correlation_matrix
from ..models import load_bundled
from ..models.bundled import bundled_names
from ..transfer import replay
from . import render


def dataset_models(model) -> list:
    """The bundled models trained on ``model``'s dataset, ``model`` first."""
    dataset = model.info.extra["dataset"]
    names = [n for n in bundled_names() if n != model.name and n.endswith(f"-{dataset}")]
    return [model] + [load_bundled(n, device=model.device) for n in names]


def tt(ctx) -> list[dict]:
    models = dataset_models(ctx.model)
    correct = torch.stack([m.predict(ctx.videos)[0].cpu() == ctx.labels for m in models]).all(dim=0)
    videos, labels = ctx.videos[correct], ctx.labels[correct]
    rows = []
    for method in LINF_METHODS:
        for translated in (False, True):
            started = time.perf_counter()
            run = LinfAttack(ctx.model, method=method, translation=translated, seed=0).run(videos, labels)
            adversarial = torch.stack([replay(v, r) for v, r in zip(videos, run.results)])
            row = {"approach": run.settings["method"], "method": method, "tt": translated, "clips": len(videos),
                   "white_box_fr": run.summary.fooling_rate, "mean_ssim": run.summary.mean_ssim,
                   "seconds_per_video": (time.perf_counter() - started) / max(len(videos), 1)}
            for black_box in models[1:]:
                row[f"asr:{black_box.name}"] = float((black_box.predict(adversarial)[0].cpu() != labels)
                                                     .float().mean())
            ctx.log(f"{ctx.model.name} {row['approach']}: white-box FR {row['white_box_fr']:.1%}")
            rows.append(row)
    return rows


def importance(ctx) -> list[dict]:
    models = dataset_models(ctx.model)
    rows = []
    for measure in MEASURES:
        matrix = correlation_matrix(models, ctx.videos, ctx.labels, measure)
        for i, a in enumerate(models):
            for j, b in enumerate(models):
                rows.append({"measure": measure, "model_a": a.name, "model_b": b.name,
                             "spearman": float(matrix[i, j])})
        ctx.log(f"importance {measure}: done")
    return rows


def markdown(table: str, rows: list[dict]) -> str:
    if table == "importance":
        parts = []
        for measure in dict.fromkeys(r["measure"] for r in rows):
            names = list(dict.fromkeys(r["model_a"] for r in rows))
            sub = [{"model": a} | {b: next(r["spearman"] for r in rows if r["measure"] == measure
                                           and r["model_a"] == a and r["model_b"] == b) for b in names}
                   for a in names]
            parts.append(f"{measure}\n\n" + render.markdown(sub, [("model", "model", "")] +
                                                            [(b, b, ".2f") for b in names]))
        return "\n".join(parts)
    black_boxes = [key for key in rows[0] if key.startswith("asr:")]
    return render.markdown(rows, [("attack", "approach", ""), ("white-box FR", "white_box_fr", "%")] +
                           [(f"ASR {key[4:]}", key, "%") for key in black_boxes] +
                           [("mean SSIM", "mean_ssim", ".3f"), ("s/video", "seconds_per_video", ".2f")])


def plot(table: str, rows: list[dict], axes) -> None:
    if table == "importance":
        for axis, measure in zip(axes, dict.fromkeys(r["measure"] for r in rows)):
            names = list(dict.fromkeys(r["model_a"] for r in rows))
            grid = [[next(r["spearman"] for r in rows if r["measure"] == measure and r["model_a"] == a
                          and r["model_b"] == b) for b in names] for a in names]
            image = axis.imshow(grid, vmin=-1, vmax=1, cmap="coolwarm")
            axis.set_xticks(range(len(names)), names, rotation=30, fontsize=7)
            axis.set_yticks(range(len(names)), names, fontsize=7)
            for i, line in enumerate(grid):
                for j, value in enumerate(line):
                    axis.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=8)
            axis.set_title(measure, fontsize=9)
        axes[-1].figure.colorbar(image, ax=axes[-1])
        return
    black_boxes = [key for key in rows[0] if key.startswith("asr:")]
    for axis, key in zip(axes, black_boxes):
        methods = list(dict.fromkeys(r["method"] for r in rows))
        series = {label: [next(r[key] for r in rows if r["method"] == m and r["tt"] == flag) for m in methods]
                  for label, flag in (("without TT", False), ("with TT", True))}
        render.grouped_bars(axis, methods, series, f"ASR on {key[4:]}", (0, 1.05))
