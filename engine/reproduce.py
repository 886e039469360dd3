"""``sava reproduce TABLE``: the shape of a paper table, regenerated on the
bundled benchmark, as markdown, JSON and a plot in one folder.

* ``table7``: noise only (D), flow only (S) and combined (D+S) on the first
  frames, and combined with Bayesian-optimisation selection, for 1, 2 and 4
  perturbed frames (DeepSAVA Table 7; its columns also give Fig. 6, FR
  against the number of frames).
* ``table8``: Bayesian optimisation against brute force over every frame: FR,
  the mean of the best score found, time, and generator runs per video
  (DeepSAVA Table 8 and Fig. 7).

Every row is measured in the run that writes the table, on the same clips.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from . import __version__
from .attacks import DeepSAVA
from .data import bundled
from .models import load_bundled
from .selection.search import BayesOpt, BruteForce

TABLES = ("table7", "table8")


def _clips(model, count: int):
    clips = bundled(model.info.extra["dataset"], "test")
    count = min(count, len(clips))
    return clips.float_videos(slice(0, count)), clips.labels[:count]


def table7(model, videos, labels, iters: int, frames=(1, 2, 4), log=print) -> list[dict]:
    rows = []
    variants = [("D (noise)", "noise", "first"), ("S (flow)", "flow", "first"), ("D+S", "combined", "first"),
                ("D+S, BO", "combined", "bo")]
    for name, kind, selector in variants:
        for k in frames:
            started = time.perf_counter()
            summary = DeepSAVA(model, frames=k, perturbation=kind, selector=selector, max_iters=iters).run(
                videos, labels).summary
            rows.append({"approach": name, "frames": k, "fooling_rate": summary.fooling_rate, "ani": summary.ani,
                         "mean_ssim": summary.mean_ssim, "attacked": summary.attacked,
                         "seconds": time.perf_counter() - started})
            log(f"table7 {name:<10} k={k}: FR {summary.fooling_rate:.1%}")
    return rows


def table8(model, videos, labels, iters: int, log=print) -> list[dict]:
    rows = []
    for name, selector in (("BO selection", BayesOpt()), ("brute force", BruteForce())):
        started = time.perf_counter()
        run = DeepSAVA(model, frames=1, selector=selector, max_iters=iters).run(videos, labels)
        rows.append({"approach": name, "fooling_rate": run.summary.fooling_rate,
                     "mean_best_score": float(selector.losses.min(dim=1).values.mean()),
                     "generator_runs_per_video": selector.evaluations,
                     "seconds_per_video": (time.perf_counter() - started) / len(videos),
                     "mean_ssim": run.summary.mean_ssim})
        log(f"table8 {name}: FR {run.summary.fooling_rate:.1%}")
    return rows


def _markdown(table: str, model_name: str, rows: list[dict]) -> str:
    if table == "table7":
        frames = sorted({r["frames"] for r in rows})
        lines = [f"| approach | {' | '.join(f'{k} frame(s)' for k in frames)} |", "| --- |" + " --- |" * len(frames)]
        for approach in dict.fromkeys(r["approach"] for r in rows):
            cells = [next(f"{r['fooling_rate']:.1%} (SSIM {r['mean_ssim']:.3f})" for r in rows
                          if r["approach"] == approach and r["frames"] == k) for k in frames]
            lines.append(f"| {approach} | {' | '.join(cells)} |")
    else:
        lines = ["| approach | FR | mean best score | generator runs per video | s per video | mean SSIM |",
                 "| --- | --- | --- | --- | --- | --- |"]
        lines += [f"| {r['approach']} | {r['fooling_rate']:.1%} | {r['mean_best_score']:.3f} | "
                  f"{r['generator_runs_per_video']} | {r['seconds_per_video']:.2f} | {r['mean_ssim']:.3f} |"
                  for r in rows]
    return f"{table} on {model_name}\n\n" + "\n".join(lines) + "\n"


def _plot(table: str, rows: list[dict], path: Path, title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 4))
    if table == "table7":
        # Distinct markers and dashes: approaches with equal rates would otherwise hide one another.
        styles = zip("osD^", ["-", "--", ":", "-."], [9, 7, 5, 4])
        for approach, (marker, dash, size) in zip(dict.fromkeys(r["approach"] for r in rows), styles):
            points = [(r["frames"], r["fooling_rate"]) for r in rows if r["approach"] == approach]
            axis.plot(*zip(*points), marker=marker, linestyle=dash, markersize=size, label=approach)
        axis.set(xlabel="perturbed frames", ylabel="fooling rate", ylim=(0, 1.05),
                 xticks=sorted({r["frames"] for r in rows}))
        axis.legend()
    else:
        axis.bar([r["approach"] for r in rows], [r["fooling_rate"] for r in rows])
        axis.set(ylabel="fooling rate", ylim=(0, 1.05))
    axis.set_title(title)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def reproduce(table: str, model_name: str, out: Path, count: int = 32, iters: int = 100, log=print) -> dict:
    if table not in TABLES:
        from .errors import ConfigError

        raise ConfigError(f"unknown table {table!r}; choose from {', '.join(TABLES)}")
    torch.manual_seed(0)
    model = load_bundled(model_name)
    videos, labels = _clips(model, count)
    rows = (table7 if table == "table7" else table8)(model, videos, labels, iters, log=log)
    out.mkdir(parents=True, exist_ok=True)
    payload = {"table": table, "model": model_name, "videos": len(videos), "max_iters": iters,
               "sava_version": __version__, "command": f"sava reproduce {table} --model {model_name} "
                                                     f"--num-videos {count} --iters {iters}", "rows": rows}
    (out / f"{table}.json").write_text(json.dumps(payload, indent=2))
    (out / f"{table}.md").write_text(_markdown(table, model_name, rows))
    _plot(table, rows, out / f"{table}.png", f"{table} on {model_name}, {len(videos)} clips, cap {iters}")
    return payload
