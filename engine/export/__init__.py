"""Exports of target models and the black-box runtimes that serve them.

* :func:`export_onnx` writes a checked ONNX file (``sava export``);
* :func:`load_runtime_model` opens it on a runtime: ``torch`` (the white-box
  model itself), ``onnxruntime`` (CPU, CUDA or ONNX Runtime's TensorRT
  provider) or ``tensorrt`` (a native engine, fp32 or fp16).
"""

from __future__ import annotations

from pathlib import Path

from ..errors import ModelError
from ..files import file_stem
from .black_box import BlackBoxModel
from .onnx_export import ExportReport, export_onnx
from .onnx_foreign import file_is_sava_export
from .onnx_runtime import PROVIDERS, OnnxModel
from .tensorrt_runtime import TensorRTModel

RUNTIMES = ("torch", "onnxruntime", "tensorrt")


def load_runtime_model(spec: str, runtime: str = "torch", *, provider: str = "cpu", precision: str = "fp32",
                       onnx_dir: str | Path | None = None, device=None, weights: str | Path | None = None,
                       clip_shape: tuple[int, int, int, int] | None = None, loaded: dict | None = None,
                       layout: str | None = None, mean=None, std=None, classes: str | None = None):
    """A model on a runtime. ``spec`` is an ``.onnx`` file (ONNX runtimes only) or anything ``load_model``
    takes, with its ``weights`` file (torch, or exported and checked in ``onnx_dir`` for an ONNX runtime: a
    bundled model's export is reused when present, a user model is exported afresh at ``clip_shape`` when its
    own is unknown). ``loaded``, one dict passed to every call, keeps each user model loaded once however many
    runtimes it is opened on (a large checkpoint or a slow factory costs its load once). ``layout``, ``mean``
    and ``std`` describe a user model as ``load_model`` takes them, ``classes`` as ``--classes`` does; they
    describe an ``.onnx`` file that ``sava export`` did not write too (a sava export carries its own)."""
    if runtime not in RUNTIMES:
        raise ModelError(f"unknown runtime {runtime!r}; choose from {', '.join(RUNTIMES)}")
    path = Path(spec)
    is_onnx = path.suffix == ".onnx"
    if is_onnx and runtime == "torch":
        raise ModelError(f"{spec} is an ONNX file: it runs on onnxruntime or tensorrt, not torch "
                         "(--runtime onnxruntime)")
    if is_onnx and not path.is_file():
        raise ModelError(f"ONNX file {spec} does not exist")
    if is_onnx and weights is not None:
        raise ModelError(f"{spec} is an ONNX file: it carries its own weights (drop @WEIGHTS for it)")
    if not is_onnx:
        from ..models.bundled import bundled_names, load_bundled
        from ..models.loading import load_named_model

        def user_model():
            key = (spec, None if weights is None else str(weights), layout,  # lists given in Python: hashable
                   None if mean is None else tuple(mean), None if std is None else tuple(std), classes)
            cache = loaded if loaded is not None else {}
            if key not in cache:
                # named as sava attack names a model (its module's classes, a classes.txt beside its weights),
                # so that a transfer matches its outputs to the source's labels
                cache[key] = load_named_model(spec, weights, layout=layout, mean=mean, std=std, classes=classes,
                                              device=device)
            return cache[key]

        if runtime == "torch":
            return user_model()
        if spec in bundled_names():
            path = Path(onnx_dir or "exports") / f"{spec}.onnx"
            if not path.is_file():
                export_onnx(load_bundled(spec), path)
        else:
            model = user_model()
            # one file per weights: two checkpoints of one factory are two exports
            stem = file_stem(spec) + (f"-{file_stem(Path(weights).stem)}" if weights is not None else "")
            path = Path(onnx_dir or "exports") / f"{stem}.onnx"
            export_onnx(model, path, clip_shape=model.info.clip_shape or clip_shape)
    if runtime == "onnxruntime":  # a file sava did not export is described by layout, mean, std and classes
        return OnnxModel(path, provider, **({"layout": layout, "mean": mean, "std": std, "classes": classes}
                                            if is_onnx else {}))
    if is_onnx and not file_is_sava_export(path):
        raise ModelError(f"{spec} was not made by sava export: the tensorrt runtime takes sava exports; run it on "
                         "onnxruntime (--runtime onnxruntime, --provider tensorrt for ONNX Runtime's TensorRT)")
    if is_onnx and any(value is not None for value in (layout, mean, std, classes)):
        raise ModelError(f"{spec} is a sava export: it carries its own layout, normalisation and class names")
    return TensorRTModel(path, precision)


__all__ = ["PROVIDERS", "RUNTIMES", "BlackBoxModel", "ExportReport", "OnnxModel", "TensorRTModel", "export_onnx",
           "load_runtime_model"]
