"""Xu et al. 2022, Table 2, on one bundled model: the two-stage sparse attack
with its self-adaptive gradient keyframes ("ours") against the same attack on
fixed first-k frames (the SA baseline) and on the frames of largest
inter-frame difference (IFD), untargeted and targeted (target: the next
class). MQ, MAP, SR as :mod:`sava.metrics` defines them.
"""

from __future__ import annotations

from dataclasses import replace

from ..attacks import GradientKeyframe
from . import render
from .deepsava_tables import measure

BASELINE_FRAMES = 4  # SA and IFD perturb 4 of 16 frames in the paper (SR 75%)


def xu_table2(ctx) -> list[dict]:
    rows = []
    classes = len(ctx.model.classes)
    targets = (ctx.labels + 1) % classes
    for targeted in (False, True):
        goal = "targeted" if targeted else "untargeted"
        variants = [("ours (keyframes)", {}), ("SA (first frames)", {"selector": "first", "frames": BASELINE_FRAMES}),
                    ("IFD", {"selector": "ifd", "frames": BASELINE_FRAMES})]
        for name, options in variants:
            attack = GradientKeyframe(ctx.model, targeted=targeted, max_iters=ctx.iters, **options)
            rows.append(measure(name, attack, replace(ctx, targets=targets if targeted else None), goal=goal))
    return rows


def markdown(table: str, rows: list[dict]) -> str:
    return render.markdown(rows, [("goal", "goal", ""), ("method", "approach", ""), ("FR", "fooling_rate", "%"),
                                  ("MQ", "mq", ".1f"), ("MAP", "map", ".4f"), ("SR", "sr", "%"),
                                  ("frames/video", "frames_per_video", ".2f"), ("s/video", "seconds_per_video", ".2f")])


def plot(table: str, rows: list[dict], axes) -> None:
    goals = list(dict.fromkeys(r["goal"] for r in rows))
    methods = list(dict.fromkeys(r["approach"] for r in rows))
    for axis, key, label in zip(axes, ("mq", "map"), ("MQ (mean queries)", "MAP (mean absolute perturbation)")):
        series = {m: [next(r[key] for r in rows if r["goal"] == g and r["approach"] == m) for g in goals]
                  for m in methods}
        render.grouped_bars(axis, goals, series, label)
