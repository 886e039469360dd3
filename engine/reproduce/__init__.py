"""``sava reproduce TABLE``: the shape of a paper table, regenerated on the
bundled benchmark or on the user's own model and clips, as markdown, JSON and
a plot in one folder per model.

Every row is measured in the run that writes the table, on the same clips
(the first ``count`` test clips of the model's dataset, or the first ``count``
usable clips of the user's ``--data``). ``tt`` and ``importance`` compare the
bundled models of one dataset and take bundled models only; ``table11`` and
``table-b13`` train, so a user model needs training clips. Tables:

=============  ==================================================================
``table3``     DeepSAVA Table 3: Sparse, Sparse Flickering, DeepSAVA without/with BO
``table5``     DeepSAVA Table 5: FR and time under fixed l2,1 and SSIM budgets
``table6``     DeepSAVA Table 6: FR, ANI, AAP(l2,1), AAP(SSIM)
``table7``     DeepSAVA Table 7 and Fig. 6: noise / flow / combined / +BO, 1, 2, 4 frames
``table8``     DeepSAVA Table 8 and Fig. 7: BO against brute force
``xu-table2``  Xu et al. Table 2: MQ, MAP, SR of keyframes / first-k / IFD
``tt``         TT paper: FGSM, BIM, MI, DI, TI without and with TT, transfer ASR
``importance`` TT paper Fig. 2: Spearman correlation of frame importance
``compression`` DeepSAVA 4.2.3: noise only vs combined, FR after H.264 at four CRFs
``table11``    DeepSAVA Table 11: defences (none, PGD, combined, injected) by clean accuracy and FR
``table-b13``  DeepSAVA Table B.13: the inner step size (0.01, 0.001) of PGD and combined training
=============  ==================================================================
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..data import bundled
from ..errors import ConfigError
from ..models import load_bundled
from ..models.bundled import bundled_names
from ..provenance import environment
from . import compression_table, deepsava_tables, keyframe_table, render, training_table, transfer_tables


@dataclass
class Context:
    model: object
    videos: torch.Tensor
    labels: torch.Tensor
    iters: int
    log: Callable[[str], None] = print
    out: Path = Path("runs/reproduce")  # where a table may keep what it trains
    targets: torch.Tensor | None = None
    cache: dict = field(default_factory=dict)  # runs shared between tables of one model
    # What the training tables pass to TrainConfig: a bundled model's name, or a user model's description
    # and its training and test clips.
    training: dict = field(default_factory=dict)


# name -> (run, module with markdown and plot, plot panels, one table per dataset rather than per model)
TABLES = {
    "table3": (deepsava_tables.table3, deepsava_tables, 1, False),
    "table5": (deepsava_tables.table5, deepsava_tables, 1, False),
    "table6": (deepsava_tables.table6, deepsava_tables, 1, False),
    "table7": (deepsava_tables.table7, deepsava_tables, 1, False),
    "table8": (deepsava_tables.table8, deepsava_tables, 1, False),
    "xu-table2": (keyframe_table.xu_table2, keyframe_table, 2, False),
    "tt": (transfer_tables.tt, transfer_tables, 2, False),
    "importance": (transfer_tables.importance, transfer_tables, 3, True),
    "compression": (compression_table.compression, compression_table, 1, False),
    "table11": (training_table.table11, training_table, 1, False),
    "table-b13": (training_table.table_b13, training_table, 1, False),
}


BUNDLED_PEERS = {"tt", "importance"}  # tables that compare the bundled models of one dataset
TRAINING = {"table11", "table-b13"}  # tables that fine-tune the model


def context(model_name: str, count: int, iters: int, log=print, device=None) -> Context:
    model = load_bundled(model_name, device=device)
    clips = bundled(model.info.extra["dataset"], "test")
    count = min(count, len(clips))
    return Context(model, clips.float_videos(slice(0, count)), clips.labels[:count], iters, log,
                   training={"model": model_name})


def user_context(model, data_spec: str, clip: tuple[int, int, int], count: int, iters: int, log=print,
                 training: dict | None = None, sampling=None) -> Context:
    """The first ``count`` usable clips of ``data_spec`` (a bundled set's test split, a folder or a CSV,
    decoded at ``clip``: frames, height, width, sampled as ``sampling`` says, default the model's own),
    labelled as ``model`` numbers its outputs; files that cannot be used are skipped and said. A model that
    names no classes takes the dataset's sorted names."""
    from ..classes import ClassNames, label_map
    from ..data import load_dataset
    from ..errors import DataError
    from ..models.adapter import check_output_count, outputs_on_clip
    from ..runner.decode import decoded

    dataset = load_dataset(data_spec, "test", clip[0], tuple(clip[1:]), sampling or model.info.sampling)
    names = ClassNames(model.classes, model.info.extra.get("class_order", "the model's metadata"))
    outputs = outputs_on_clip(model, dataset.clip_shape)
    check_output_count(model, outputs, names.names, names.source)
    mapping, notice = label_map(dataset, names, model.name, data_spec, outputs)
    if notice:
        log(notice)
    if names.names is None:  # the tables name classes (keyframe's targets): those its labels follow
        model.info.classes = list(dataset.classes) if outputs == len(dataset.classes) else \
            [str(i) for i in range(outputs)]
    videos, labels = [], []
    for item in decoded(dataset, range(len(dataset)), workers=0):
        if len(videos) == count:
            break
        if item.clip is None:
            log(f"skipped video {item.video_id}: {item.error}")
            continue
        videos.append(item.clip)
        labels.append(mapping[item.label])
    if not videos:
        raise DataError(f"{data_spec}: no usable clip to measure the tables on")
    return Context(model, torch.stack(videos), torch.tensor(labels, dtype=torch.long), iters, log,
                   training=training or {})


def reproduce(table: str, model_name: str, out: Path, count: int = 32, iters: int = 100, log=print,
              ctx: Context | None = None, command: str | None = None) -> dict:
    """Run ``table`` on one model (a bundled one, or the user's in ``ctx``) and write
    ``out/TABLE.{md,json,png}``; ``command`` is what the JSON records as the command that made it."""
    if table not in TABLES:
        raise ConfigError(f"unknown table {table!r}; choose from {', '.join(TABLES)}")
    run, module, panels, _ = TABLES[table]
    torch.manual_seed(0)
    ctx = ctx or context(model_name, count, iters, log)
    ctx.out = out
    rows = run(ctx)
    for row in rows:
        row.pop("_run", None)
    out.mkdir(parents=True, exist_ok=True)
    command = command or f"sava reproduce {table} --model {model_name} --num-videos {count} --iters {iters}"
    payload = {"table": table, "model": model_name, "videos": len(ctx.videos), "max_iters": iters,
               "environment": environment(str(ctx.model.device)), "command": command, "rows": rows}
    (out / f"{table}.json").write_text(json.dumps(payload, indent=2))
    (out / f"{table}.md").write_text(f"{table} on {model_name}, {len(ctx.videos)} test clips, cap {iters}\n\n"
                                     + module.markdown(table, rows))
    fig, axes = render.figure(panels)
    module.plot(table, rows, axes)
    render.save(fig, out / f"{table}.png", f"{table} on {model_name}, {len(ctx.videos)} clips, cap {iters}")
    return payload


def models_for(table: str, spec: str) -> list[str]:
    """The bundled models ``--model`` names: one, or ``all`` (one per dataset for per-dataset tables)."""
    if spec != "all":
        return [spec]
    names = bundled_names()
    if TABLES[table][3]:
        seen, chosen = set(), []
        for name in names:
            dataset = name.rsplit("-", 1)[1]
            if dataset not in seen:
                seen.add(dataset)
                chosen.append(name)
        return chosen
    return names
