"""A black-box model served by ONNX Runtime.

Providers: ``cpu``, ``cuda`` (needs onnxruntime-gpu and a GPU), ``tensorrt``
(ONNX Runtime's TensorRT provider: needs onnxruntime-gpu and TensorRT).
The session is asked for the requested provider (with CPU behind it only for
the operators it cannot place); if the session did not get it, that is an
error, never a silent fall back -- onnxruntime-gpu lists CUDA and TensorRT
even on machines where they cannot run.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import ModelError, first_line
from .black_box import BlackBoxModel, info_from_metadata

PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider",
             "tensorrt": "TensorrtExecutionProvider"}


class OnnxModel(BlackBoxModel):
    def __init__(self, path: str | Path, provider: str = "cpu", threads: int | None = None, max_batch: int = 32):
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise ModelError("ONNX Runtime is not installed: pip install onnxruntime (or onnxruntime-gpu)") from exc
        if provider not in PROVIDERS:
            raise ModelError(f"unknown ONNX Runtime provider {provider!r}; choose from {', '.join(PROVIDERS)}")
        path = Path(path)
        if not path.is_file():
            raise ModelError(f"ONNX file {path} does not exist (make one with: sava export --model NAME)")
        wanted = PROVIDERS[provider]
        available = ort.get_available_providers()
        if wanted not in available:
            needs = "onnxruntime-gpu" + (" and TensorRT" if provider == "tensorrt" else "")
            raise ModelError(f"this ONNX Runtime build has no {wanted} (it has {', '.join(available)}); "
                             f"{provider} needs {needs}")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        chain = [wanted] if provider == "cpu" else [wanted, PROVIDERS["cpu"]]
        try:
            self.session = ort.InferenceSession(str(path), options, providers=chain)
        except Exception as exc:  # noqa: BLE001 -- ORT raises several types for a bad file
            raise ModelError(f"ONNX Runtime cannot load {path}: {first_line(exc)}") from exc
        got = self.session.get_providers()
        if got[0] != wanted:
            raise ModelError(f"asked ONNX Runtime for {wanted}, the session got {', '.join(got)}; refusing to "
                             "fall back silently")
        self.provider = provider
        self.providers = got
        self.path = path
        info, dynamic_time = info_from_metadata(self.session.get_modelmeta().custom_metadata_map, path.stem)
        inputs = [i.name for i in self.session.get_inputs()]
        if inputs != ["videos"]:
            raise ModelError(f"{path} is not a sava export (inputs {inputs}; expected one named 'videos')")
        super().__init__(info, dynamic_time, max_batch)

    def _logits(self, chunk: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.session.run(["logits"], {"videos": chunk.cpu().numpy()})[0])

    def __repr__(self) -> str:
        return f"OnnxModel({self.path.name}, {self.provider})"
