"""A black-box model served by a native TensorRT engine built from a sava
ONNX export (TensorRT 10 Python API: named tensors, ``execute_async_v3``).

Engines are built once per (ONNX file hash, batch profile, precision,
TensorRT version) and cached as files, so a second run starts in seconds.
TensorRT cannot be installed everywhere; without it (or without a GPU) this
model refuses with a message that names what is missing.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch

from ..errors import ModelError
from .black_box import BlackBoxModel, info_from_metadata

PRECISIONS = ("fp32", "fp16")


def default_cache_dir() -> Path:
    return Path(os.environ.get("SAVA_CACHE", Path.home() / ".cache" / "sava")) / "tensorrt"


def engine_key(onnx_bytes: bytes, profile: tuple, precision: str, trt_version: str) -> str:
    digest = hashlib.sha256(onnx_bytes)
    digest.update(repr((profile, precision, trt_version)).encode())
    return digest.hexdigest()[:32]


class TensorRTModel(BlackBoxModel):
    def __init__(self, path: str | Path, precision: str = "fp32", max_batch: int = 32, opt_batch: int = 8,
                 cache_dir: str | Path | None = None):
        if precision not in PRECISIONS:
            raise ModelError(f"unknown TensorRT precision {precision!r}; choose from {', '.join(PRECISIONS)}")
        try:
            import tensorrt as trt
        except ImportError as exc:
            raise ModelError("the TensorRT runtime needs the tensorrt package (NVIDIA's wheels: pip install "
                             "tensorrt) and an NVIDIA GPU; use runtime 'onnxruntime' otherwise") from exc
        if not torch.cuda.is_available():
            raise ModelError("the TensorRT runtime needs an NVIDIA GPU; torch sees none")
        path = Path(path)
        if not path.is_file():
            raise ModelError(f"ONNX file {path} does not exist (make one with: sava export --model NAME)")
        import onnx

        proto = onnx.load(str(path))
        metadata = {p.key: p.value for p in proto.metadata_props}
        info, dynamic_time = info_from_metadata(metadata, path.stem)
        if info.clip_shape is None:
            raise ModelError(f"{path} has no sava metadata (clip shape); export it with sava export")
        super().__init__(info, dynamic_time=False, max_batch=max_batch)  # the engine's profile fixes T
        self.trt, self.precision = trt, precision
        self.logger = trt.Logger(trt.Logger.WARNING)
        shape = tuple(info.clip_shape)
        profile = ((1, *shape), (min(opt_batch, max_batch), *shape), (max_batch, *shape))
        onnx_bytes = path.read_bytes()
        cache = Path(cache_dir) if cache_dir else default_cache_dir()
        engine_path = cache / f"{engine_key(onnx_bytes, profile, precision, trt.__version__)}.engine"
        if engine_path.is_file():
            serialized = engine_path.read_bytes()
        else:
            serialized = self._build(onnx_bytes, profile)
            cache.mkdir(parents=True, exist_ok=True)
            engine_path.write_bytes(serialized)
        self.engine_path = engine_path
        self.engine = trt.Runtime(self.logger).deserialize_cuda_engine(serialized)
        if self.engine is None:
            raise ModelError(f"TensorRT could not load the engine {engine_path}; delete it to rebuild")
        self.context = self.engine.create_execution_context()
        self.num_classes = len(info.classes) if info.classes else None

    def _build(self, onnx_bytes: bytes, profile: tuple) -> bytes:
        trt = self.trt
        builder = trt.Builder(self.logger)
        network = builder.create_network(0)  # TensorRT 10: explicit batch is the only mode
        parser = trt.OnnxParser(network, self.logger)
        if not parser.parse(onnx_bytes):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise ModelError(f"TensorRT cannot parse the ONNX file: {errors}")
        config = builder.create_builder_config()
        if self.precision == "fp16":
            config.set_flag(trt.BuilderFlag.FP16)
        shapes = builder.create_optimization_profile()
        shapes.set_shape("videos", *profile)
        config.add_optimization_profile(shapes)
        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise ModelError("TensorRT failed to build an engine (see its log above)")
        return bytes(serialized)

    def _logits(self, chunk: torch.Tensor) -> torch.Tensor:
        videos = chunk.cuda().contiguous()
        self.context.set_input_shape("videos", tuple(videos.shape))
        out_shape = tuple(self.context.get_tensor_shape("logits"))
        logits = torch.empty(out_shape, dtype=torch.float32, device=videos.device)
        self.context.set_tensor_address("videos", videos.data_ptr())
        self.context.set_tensor_address("logits", logits.data_ptr())
        stream = torch.cuda.current_stream()
        if not self.context.execute_async_v3(stream.cuda_stream):
            raise ModelError("TensorRT execution failed")
        stream.synchronize()
        return logits.cpu()

    def __repr__(self) -> str:
        return f"TensorRTModel({self.engine_path.name}, {self.precision})"
