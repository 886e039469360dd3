"""Exports of target models and the black-box runtimes that serve them.

* :func:`export_onnx` writes a checked ONNX file (``sava export``);
* :func:`load_runtime_model` opens it on a runtime: ``torch`` (the white-box
  model itself), ``onnxruntime`` (CPU, CUDA or ONNX Runtime's TensorRT
  provider) or ``tensorrt`` (a native engine, fp32 or fp16).
"""

from __future__ import annotations

from pathlib import Path

from ..errors import ModelError
from .black_box import BlackBoxModel
from .onnx_export import ExportReport, export_onnx
from .onnx_runtime import PROVIDERS, OnnxModel
from .tensorrt_runtime import TensorRTModel

RUNTIMES = ("torch", "onnxruntime", "tensorrt")


def load_runtime_model(spec: str, runtime: str = "torch", *, provider: str = "cpu", precision: str = "fp32",
                       onnx_dir: str | Path | None = None, device=None):
    """A model by name on a runtime. ``spec`` is a bundled name or a model spec
    (torch), or an ``.onnx`` file; for a bundled name on an ONNX runtime the
    export is made (and checked) in ``onnx_dir`` when missing."""
    if runtime not in RUNTIMES:
        raise ModelError(f"unknown runtime {runtime!r}; choose from {', '.join(RUNTIMES)}")
    if runtime == "torch":
        from ..models.loading import load_model

        return load_model(spec, device=device)
    path = Path(spec)
    if path.suffix != ".onnx":
        from ..models.bundled import bundled_names, load_bundled

        if spec not in bundled_names():
            raise ModelError(f"{spec!r} is neither an .onnx file nor a bundled model")
        path = Path(onnx_dir or "exports") / f"{spec}.onnx"
        if not path.is_file():
            export_onnx(load_bundled(spec), path)
    if runtime == "onnxruntime":
        return OnnxModel(path, provider)
    return TensorRTModel(path, precision)


__all__ = ["PROVIDERS", "RUNTIMES", "BlackBoxModel", "ExportReport", "OnnxModel", "TensorRTModel", "export_onnx",
           "load_runtime_model"]
