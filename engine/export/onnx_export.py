"""``sava export``: a target model to ONNX, checked before it is kept.

The exported graph takes what every sava attack produces, ``[0, 1]`` videos
in ``B x T x C x H x W``, and contains the model's normalisation and layout
change, so a runtime needs nothing but the file. The batch axis is dynamic;
the time axis too where the model allows it (tried, then verified). The
dynamo exporter is given ``dynamic_axes`` (with ``dynamic_shapes`` it
silently fixes T of an LSTM; the legacy exporter cannot export the adaptive
pooling of the per-frame models with a dynamic batch).

After export: the ONNX checker, then ONNX Runtime against torch on random
videos at batch sizes other than the export's (and another T when dynamic);
the largest difference is reported and a file beyond the tolerance is
removed and refused.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import warnings
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from .. import __version__
from ..errors import ModelError, first_line
from ..models.adapter import outputs_on_clip
from .black_box import METADATA_PREFIX

DEFAULT_TOLERANCE = 1e-4
OPSET = 18
EXPORT_BATCH = 2
CHECK_BATCHES = (1, 3)


class PixelSpaceModel(nn.Module):
    """The adapter's forward as a module: ``[0, 1]`` ``B x T x C x H x W`` in, logits out."""

    def __init__(self, model):
        super().__init__()
        self.net = model.module  # registered, so its weights are the graph's initialisers
        self.model = model

    def forward(self, videos: torch.Tensor) -> torch.Tensor:
        return self.model.logits(videos)


@dataclass
class ExportReport:
    path: str
    model: str
    dynamic_time: bool
    max_abs_difference: float
    tolerance: float
    checked_shapes: list[list[int]]
    opset: int
    fixed_time_reason: str | None = None  # why a dynamic time axis was not kept, when it was tried
    exporter: str = "dynamo"  # or "torchscript", torch's older exporter, when the dynamo exporter failed
    dynamo_failure: str | None = None  # why it failed

    def as_dict(self) -> dict:
        return asdict(self)


def _metadata(model, dynamic_time: bool, clip_shape, dynamo_failure: str | None) -> dict[str, str]:
    info = model.info
    values = {"version": __version__, "name": info.name, "input_layout": "BTCHW", "input_range": [0.0, 1.0],
              "source_layout": info.layout, "mean": info.mean, "std": info.std, "normalisation_in_graph": True,
              "clip_shape": list(clip_shape), "classes": info.classes,
              "dataset": info.extra.get("dataset"), "dynamic_time": dynamic_time,
              "exporter": "torchscript" if dynamo_failure else "dynamo", "dynamo_failure": dynamo_failure}
    return {METADATA_PREFIX + key: json.dumps(value) for key, value in values.items()}


@contextmanager
def _exporter_output_discarded():
    """Standard output and error, descriptors and Python streams alike, sent to the null device for the
    duration. torch's TorchScript exporter prints the whole IR graph from C++ when one of its passes fails
    (in torch 2.13 whether or not verbose is asked for), and torch.export prints graphs and warnings of its
    own failures: they bury the one line sava reports about the failure."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    try:
        with open(os.devnull, "w") as sink:
            os.dup2(sink.fileno(), 1)
            os.dup2(sink.fileno(), 2)
            try:  # Python's streams need not write through those descriptors (pytest's capture does not)
                with redirect_stdout(sink), redirect_stderr(sink):
                    yield
            finally:
                os.dup2(saved[0], 1)
                os.dup2(saved[1], 2)
    finally:
        for fd in saved:
            os.close(fd)


def _export(wrapper: nn.Module, example: torch.Tensor, path: Path, dynamic_time: bool) -> str | None:
    """Export with the dynamo exporter, or, when it fails (an operator it has no ONNX function for, such as
    ``aten._adaptive_avg_pool3d``), with torch's TorchScript-based exporter. Returns why dynamo failed, or
    None; when both fail the error names both reasons."""
    axes = {0: "batch", 1: "frames"} if dynamic_time else {0: "batch"}
    # torch.onnx lists the torchvision operators it skips; torch.export logs each failure as an error before
    # raising it, and sava reports that failure itself, in one line.
    loggers = {logging.getLogger("torch.onnx"): logging.ERROR, logging.getLogger("torch.export"): logging.CRITICAL}
    levels = {log: log.level for log in loggers}
    for log, quiet in loggers.items():
        log.setLevel(quiet)

    def export(dynamo: bool) -> None:
        torch.onnx.export(wrapper, (example,), str(path), input_names=["videos"], output_names=["logits"],
                          dynamic_axes={"videos": axes, "logits": {0: "batch"}}, opset_version=OPSET,
                          dynamo=dynamo, verbose=False)

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                with _exporter_output_discarded():  # torch.export prints graphs and logs of its failures
                    export(dynamo=True)
                return None
            except Exception as exc:  # noqa: BLE001  (the dynamo exporter's failures have many types)
                failure = _first_line(exc)
            try:
                with _exporter_output_discarded():
                    export(dynamo=False)
            except Exception as exc:  # noqa: BLE001
                raise ModelError(f"ONNX export failed with the dynamo exporter ({failure}) and with the TorchScript "
                                 f"exporter ({_first_line(exc)})") from exc
            return failure
    finally:
        for log, level in levels.items():
            log.setLevel(level)


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _first_line(exc: BaseException) -> str:
    """An exception as one short line: its type, the first line of its message and, when a later line names
    an ATen operator (the dynamo exporter's usual cause), that line too."""
    lines = [line.strip() for line in _ANSI.sub("", str(exc)).strip().splitlines() if line.strip()]
    text = lines[0][:300] if lines else ""
    operator = next((line for line in lines[1:] if "aten." in line or "aten::" in line), None)
    if operator:
        text += f" ... {operator[:200]}"
    elif exc.__cause__ is not None:  # torch.export wraps the reason: name it (one level, no chain walk)
        text += f" ... caused by {type(exc.__cause__).__name__}: {_ANSI.sub('', first_line(exc.__cause__))[:200]}"
    return f"{type(exc).__name__}: {text}".rstrip(": ")


def _stamp(path: Path, metadata: dict[str, str]) -> None:
    import onnx

    proto = onnx.load(str(path))
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(proto, full_check=True)
    onnx.save(proto, str(path))


def _largest_difference(model, path: Path, shapes: list[tuple[int, ...]]) -> float:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    generator = torch.Generator().manual_seed(0)
    worst = 0.0
    for shape in shapes:
        videos = torch.rand(shape, generator=generator)
        with torch.no_grad(), model.attack_mode():
            expected = model.logits(videos.to(model.device)).cpu()
        got = torch.from_numpy(session.run(["logits"], {"videos": videos.numpy()})[0])
        worst = max(worst, float((got - expected).abs().max()))
    return worst


def export_onnx(model, path: str | Path, *, tolerance: float = DEFAULT_TOLERANCE, dynamic_time: bool = True,
                clip_shape: tuple[int, int, int, int] | None = None) -> ExportReport:
    """Export a white-box ``VideoModel`` to ``path`` and verify it (see the module doc)."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError as exc:
        raise ModelError(f"exporting needs the onnx extra ({exc.name} is missing): pip install 'sava[onnx]'") from exc
    shape = clip_shape or model.info.clip_shape
    if shape is None:
        raise ModelError(f"{model.name}: the clip shape (T, C, H, W) is unknown; pass clip_shape=")
    outputs_on_clip(model, shape)  # a model that refuses the clip says so, not each exporter in turn
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model.module.eval()
    wrapper = PixelSpaceModel(model).eval()
    example = torch.rand(EXPORT_BATCH, *shape).to(model.device)
    t = shape[0]
    checks = [(b, *shape) for b in CHECK_BATCHES]
    fixed_time_reason = dynamo_failure = None
    if dynamic_time:
        longer = (CHECK_BATCHES[-1], t + 4, *shape[1:])
        try:  # export with a free time axis and verify it really moves: some graphs pin T
            dynamo_failure = _export(wrapper, example, path, dynamic_time=True)
            _largest_difference(model, path, [longer])
            checks.append(longer)
        except Exception as exc:  # noqa: BLE001 -- then try a fixed T; its own failure is raised, not hidden
            dynamic_time = False
            fixed_time_reason = _first_line(exc)
    if not dynamic_time:
        dynamo_failure = _export(wrapper, example, path, dynamic_time=False)
    _stamp(path, _metadata(model, dynamic_time, shape, dynamo_failure))
    difference = _largest_difference(model, path, checks)
    if not difference <= tolerance:
        path.unlink(missing_ok=True)
        why = "" if not dynamo_failure else (
            f" (the dynamo exporter failed: {dynamo_failure}; the file is the TorchScript exporter's trace, which "
            "records one path through any data-dependent branch of the model)")
        raise ModelError(f"{model.name}: ONNX Runtime differs from torch by {difference:.3g} (tolerance "
                         f"{tolerance:g}){why}; the export was removed")
    return ExportReport(str(path), model.name, dynamic_time, difference, tolerance, [list(s) for s in checks], OPSET,
                        fixed_time_reason, "torchscript" if dynamo_failure else "dynamo", dynamo_failure)
