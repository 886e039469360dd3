"""DeepSAVA Table 11 on one bundled model: fine-tune it under each defence
(none, PGD, combined perturbation, injected DeepSAVA examples) for the same
epochs from the same weights, then report clean test accuracy and the fooling
rate of DeepSAVA and of Sparse (one frame each, default settings) on held-out
test clips, at the iteration cap alone and under an SSIM budget of 0.95.
Training runs live in ``<out>/training/<defence>/`` and resume
when rerun."""

from __future__ import annotations

from pathlib import Path

from ..attacks import DeepSAVA, Sparse
from ..data import bundled
from ..models.bundled import load_weights_file
from ..train import DEFENCES, TrainConfig, clean_accuracy, train
from . import render

EPOCHS = 3
SSIM_BUDGET = 0.95


def table11(ctx) -> list[dict]:
    rows = []
    folder = Path(ctx.out) / "training"
    test_set = bundled(ctx.model.info.extra["dataset"], "test")
    for defence in DEFENCES:
        train(TrainConfig(model=ctx.model.name, defence=defence, epochs=EPOCHS), folder / defence,
              log=ctx.log, progress=False)
        model = load_weights_file(folder / defence / "model.safetensors")
        row = {"approach": defence, "clean_accuracy": clean_accuracy(model, test_set)}
        # At the iteration cap alone an attack may spend any distortion; under the SSIM budget only what a
        # person would not notice (0.95, the budget image studies use): robustness at equal perceptibility.
        for budget, suffix in ((None, ""), (SSIM_BUDGET, "_budget")):
            for name, attack in (("deepsava", DeepSAVA(model, frames=1, max_iters=ctx.iters, min_ssim=budget)),
                                 ("sparse", Sparse(model, frames=1, max_iters=ctx.iters, min_ssim=budget))):
                summary = attack.run(ctx.videos, ctx.labels).summary
                row[f"fr_{name}{suffix}"], row[f"ssim_{name}{suffix}"] = summary.fooling_rate, summary.mean_ssim
        ctx.log(f"{ctx.model.name} {defence}: clean {row['clean_accuracy']:.1%}, FR DeepSAVA {row['fr_deepsava']:.1%}, "
                f"Sparse {row['fr_sparse']:.1%}")
        rows.append(row)
    return rows


def markdown(table: str, rows: list[dict]) -> str:
    return render.markdown(rows, [("defence", "approach", ""), ("clean test accuracy", "clean_accuracy", "%"),
                                  ("FR DeepSAVA", "fr_deepsava", "%"), ("FR Sparse", "fr_sparse", "%"),
                                  ("SSIM DeepSAVA", "ssim_deepsava", ".3f"), ("SSIM Sparse", "ssim_sparse", ".3f"),
                                  ("FR DeepSAVA, SSIM >= 0.95", "fr_deepsava_budget", "%"),
                                  ("FR Sparse, SSIM >= 0.95", "fr_sparse_budget", "%")])


def plot(table: str, rows: list[dict], axes) -> None:
    render.grouped_bars(axes[0], [r["approach"] for r in rows],
                        {"clean accuracy": [r["clean_accuracy"] for r in rows],
                         "FR DeepSAVA": [r["fr_deepsava"] for r in rows],
                         "FR Sparse": [r["fr_sparse"] for r in rows],
                         "FR DeepSAVA, SSIM >= 0.95": [r["fr_deepsava_budget"] for r in rows]}, "rate", (0, 1.05))
