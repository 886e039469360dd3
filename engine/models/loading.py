"""Loading target models: bundled names, zoo presets (``torchvision:NAME``, ``hf:FOLDER``),
``package.module:factory`` plus a weights file, or TorchScript files. Nothing here unpickles arbitrary data:
state dicts load with ``weights_only=True`` and safetensors hold no code."""

from __future__ import annotations

import importlib
from pathlib import Path

import torch

from ..errors import ModelError, first_line
from .adapter import ModelInfo, VideoModel
from .bundled import bundled_names, load_bundled, load_weights_file
from .weights_file import fill
from .zoo import is_zoo

TORCHSCRIPT_SUFFIXES = {".ts", ".torchscript", ".jit"}


def load_model(spec: str, weights: str | Path | None = None, *, layout: str | None = None, mean=None, std=None,
               classes: list[str] | None = None, device=None) -> VideoModel:
    """* a bundled model name (see ``sava models``);
    * ``torchvision:NAME`` -- one of torchvision's video classifiers, ``weights`` its state dict;
    * ``hf:FOLDER`` -- a Hugging Face video classifier saved with ``save_pretrained``;
    * ``package.module:factory`` -- the factory builds the ``nn.Module``;
      ``weights`` (``.safetensors``, or a ``.pt``/``.pth`` state dict) fills it;
    * a TorchScript file (``.ts``, ``.torchscript``, ``.jit``, or ``.pt``
      saved by ``torch.jit.save``).
    ``layout`` (default BTCHW), ``mean`` and ``std`` describe what the model expects; given for a preset,
    they win over the preset's own.
    """
    if spec in bundled_names():
        return load_bundled(spec, device=device)
    if is_zoo(spec):
        family, _, rest = spec.partition(":")
        if family == "torchvision":
            from .torchvision_models import load_torchvision

            return load_torchvision(rest, weights, layout=layout, mean=mean, std=std, device=device)
        from .huggingface import load_huggingface

        return load_huggingface(rest, weights, layout=layout, mean=mean, std=std, device=device)
    info = ModelInfo(name=spec, layout=layout or "BTCHW", mean=mean, std=std, classes=classes)
    path = Path(spec)
    if path.suffix == ".safetensors" and path.is_file() and weights is None:
        return load_weights_file(path, device)
    if path.suffix in TORCHSCRIPT_SUFFIXES | {".pt"} and path.is_file():
        try:
            module = torch.jit.load(str(path), map_location="cpu")
        except RuntimeError as exc:
            raise ModelError(f"{spec}: not a TorchScript file ({first_line(exc)})") from exc
        return VideoModel(module.eval(), info, device=device)
    if ":" in spec:
        module = _from_factory(spec)
        if weights is not None:
            fill(module, weights)
        return VideoModel(module.eval(), info, device=device)
    raise ModelError(
        f"unknown model {spec!r}: not a bundled model ({', '.join(bundled_names())}), "
        "torchvision:NAME, hf:FOLDER, a package.module:factory, or an existing TorchScript file"
    )


def _from_factory(spec: str) -> torch.nn.Module:
    module_name, _, attr = spec.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ModelError(f"cannot import the model factory {spec!r}: {exc}") from exc
    module = factory()
    if not isinstance(module, torch.nn.Module):
        raise ModelError(f"{spec} returned {type(module).__name__}, not a torch.nn.Module")
    return module
