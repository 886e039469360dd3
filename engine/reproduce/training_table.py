"""DeepSAVA Table 11 (and Table B.13, the inner step size) on one model: fine-tune it under each defence
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
from ..errors import ConfigError
from ..models.loading import load_model
from ..train import DEFENCES, TrainConfig, clean_accuracy, train
from . import render

EPOCHS = 3
SSIM_BUDGET = 0.95
STEP_SIZES = (0.01, 0.001)


def _trained_row(ctx, config: TrainConfig, folder: Path, name: str) -> dict:
    """Train (or reuse) one defended model and measure it: clean accuracy, FR at the cap and under the budget."""
    entry = train(config, folder, log=ctx.log, progress=False, device=ctx.model.device)
    model = load_model(str(folder / "model.safetensors"), device=ctx.model.device)
    # A bundled model's clean accuracy on its whole test split; a user model's on its test clips, as the
    # trainer measured it.
    accuracy = entry["test_accuracy"] if config.data or config.test_data else \
        clean_accuracy(model, bundled(ctx.model.info.extra["dataset"], "test"))
    row = {"approach": name, "clean_accuracy": accuracy}
    # At the iteration cap alone an attack may spend any distortion; under the SSIM budget only what a
    # person would not notice (0.95, the budget image studies use): robustness at equal perceptibility.
    for budget, suffix in ((None, ""), (SSIM_BUDGET, "_budget")):
        for attack_name, attack in (("deepsava", DeepSAVA(model, frames=1, max_iters=ctx.iters, min_ssim=budget)),
                                    ("sparse", Sparse(model, frames=1, max_iters=ctx.iters, min_ssim=budget))):
            summary = attack.run(ctx.videos, ctx.labels).summary
            row[f"fr_{attack_name}{suffix}"] = summary.fooling_rate
            row[f"ssim_{attack_name}{suffix}"] = summary.mean_ssim
    ctx.log(f"{ctx.model.name} {row['approach']}: clean {row['clean_accuracy']:.1%}, FR DeepSAVA "
            f"{row['fr_deepsava']:.1%}, at SSIM >= {SSIM_BUDGET} {row['fr_deepsava_budget']:.1%}")
    return row


def _training(ctx) -> dict:
    """What every defence's run is trained from: the context's model and clips, never a default model."""
    if "model" not in ctx.training:
        raise ConfigError(f"{ctx.model.name}: the training tables need the model's training clips (--train-data)")
    return ctx.training


def table11(ctx) -> list[dict]:
    folder = Path(ctx.out) / "training"
    return [_trained_row(ctx, TrainConfig(**_training(ctx), defence=defence, epochs=EPOCHS), folder / defence,
                         defence) for defence in DEFENCES]


def table_b13(ctx) -> list[dict]:
    """Table B.13: the inner attack's step size (0.01 and 0.001, the paper's values) for PGD and combined training."""
    folder = Path(ctx.out) / "training"
    rows = []
    for alpha in STEP_SIZES:
        for defence in ("pgd", "combined"):
            config = TrainConfig(**_training(ctx), defence=defence, epochs=EPOCHS, alpha=alpha)
            rows.append(_trained_row(ctx, config, folder / f"{defence}-alpha{alpha:g}", defence) | {"alpha": alpha})
    return rows


def markdown(table: str, rows: list[dict]) -> str:
    first = [("step size", "alpha", "g")] if table == "table-b13" else []
    return render.markdown(rows, first + [("defence", "approach", ""), ("clean test accuracy", "clean_accuracy", "%"),
                                  ("FR DeepSAVA", "fr_deepsava", "%"), ("FR Sparse", "fr_sparse", "%"),
                                  ("SSIM DeepSAVA", "ssim_deepsava", ".3f"), ("SSIM Sparse", "ssim_sparse", ".3f"),
                                  ("FR DeepSAVA, SSIM >= 0.95", "fr_deepsava_budget", "%"),
                                  ("FR Sparse, SSIM >= 0.95", "fr_sparse_budget", "%")])


def plot(table: str, rows: list[dict], axes) -> None:
    labels = [r["approach"] + (f", alpha {r['alpha']:g}" if "alpha" in r else "") for r in rows]
    render.grouped_bars(axes[0], labels,
                        {"clean accuracy": [r["clean_accuracy"] for r in rows],
                         "FR DeepSAVA": [r["fr_deepsava"] for r in rows],
                         "FR Sparse": [r["fr_sparse"] for r in rows],
                         "FR DeepSAVA, SSIM >= 0.95": [r["fr_deepsava_budget"] for r in rows]}, "rate", (0, 1.05))
