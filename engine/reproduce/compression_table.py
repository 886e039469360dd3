"""DeepSAVA section 4.2.3 on one bundled model: noise-only against combined
(flow + noise) perturbations, before and after H.264 compression at several
constant rate factors (see :mod:`sava.compression`). Both attacks perturb
the same number of frames (4) on the saliency frames with the default
settings; the table gives the share of successful adversarial videos that
still fool the model after compression."""

from __future__ import annotations

from ..attacks import DeepSAVA
from ..compression import DEFAULT_CRF, survival
from . import render
from .deepsava_tables import measure

FRAMES = 4


def compression(ctx) -> list[dict]:
    rows = []
    for name, kind in (("noise only (D)", "noise"), ("combined (D+S)", "combined")):
        row = measure(name, DeepSAVA(ctx.model, frames=FRAMES, perturbation=kind, max_iters=ctx.iters), ctx)
        for line in survival(ctx.model, ctx.videos, ctx.labels, row["_run"].results, DEFAULT_CRF):
            row[f"after_crf{line['crf']}"] = line["fooling_rate_after"]
            row[f"counted_crf{line['crf']}"] = line["counted"]
        rows.append(row)
        ctx.log(f"{ctx.model.name} compression {name}: done")
    return rows


def markdown(table: str, rows: list[dict]) -> str:
    columns = [("perturbation", "approach", ""), ("FR before", "fooling_rate", "%"), ("mean SSIM", "mean_ssim", ".3f")]
    columns += [(f"still fooled, CRF {crf}", f"after_crf{crf}", "%") for crf in DEFAULT_CRF]
    return render.markdown(rows, columns)


def plot(table: str, rows: list[dict], axes) -> None:
    axis = axes[0]
    for row, style in zip(rows, ("o--", "s-")):
        axis.plot(DEFAULT_CRF, [row[f"after_crf{crf}"] or 0 for crf in DEFAULT_CRF], style, label=row["approach"])
    axis.set(xlabel="H.264 CRF (higher: stronger compression)", ylabel="still fooled after compression",
             ylim=(0, 1.05), xticks=list(DEFAULT_CRF))
    axis.legend(fontsize=8)
