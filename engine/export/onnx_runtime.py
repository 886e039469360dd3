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

from ..classes import model_names
from ..errors import ModelError, first_line
from ..models.adapter import ModelInfo, check_videos
from .black_box import BlackBoxModel, info_from_metadata
from .onnx_foreign import ForeignInput, is_sava_export

PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider",
             "tensorrt": "TensorrtExecutionProvider"}


class OnnxModel(BlackBoxModel):
    """A ``sava export`` file, or anyone else's ONNX video classifier (:mod:`.onnx_foreign`): ``layout``,
    ``mean``, ``std`` and ``classes`` (as ``--classes`` takes them) describe the latter, never the former,
    which carries its own."""

    def __init__(self, path: str | Path, provider: str = "cpu", threads: int | None = None, max_batch: int = 32,
                 *, layout: str | None = None, mean=None, std=None, classes: str | None = None):
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
        metadata = self.session.get_modelmeta().custom_metadata_map
        outputs = [o.name for o in self.session.get_outputs()]
        self.output = "logits" if "logits" in outputs else outputs[0]  # a foreign file may return more
        self.foreign = None
        if is_sava_export(metadata, [i.name for i in self.session.get_inputs()]):
            given = [name for name, value in (("layout", layout), ("mean", mean), ("std", std),
                                              ("classes", classes)) if value is not None]
            if given:
                raise ModelError(f"{path} is a sava export: it carries its own layout, normalisation and class "
                                 f"names (drop {', '.join(given)} for it)")
            info, dynamic_time = info_from_metadata(metadata, path.stem)
        else:
            self.foreign = ForeignInput.read(self.session, path, layout, mean, std)
            info = ModelInfo(name=path.stem, layout=self.foreign.layout, mean=mean, std=std,
                             extra={"onnx_input": self.foreign.name, "onnx_output": self.output})
            info.classes = model_names(info, str(path), None, classes).names  # given, or a classes.txt beside
            dynamic_time = self.foreign.clip[0] is None
            max_batch = min(max_batch, self.foreign.batch or max_batch)
        super().__init__(info, dynamic_time, max_batch)

    def check_videos(self, videos: torch.Tensor) -> None:
        if self.foreign is None:
            return super().check_videos(videos)
        check_videos(videos)
        self.foreign.check(videos, self.name)

    def _logits(self, chunk: torch.Tensor) -> torch.Tensor:
        if self.foreign is None:
            return torch.from_numpy(self.session.run(["logits"], {"videos": chunk.cpu().numpy()})[0])
        array, rows = self.foreign.feed(chunk.cpu())
        return torch.from_numpy(self.session.run([self.output], {self.foreign.name: array})[0][:rows]).float()

    def __repr__(self) -> str:
        return f"OnnxModel({self.path.name}, {self.provider})"
