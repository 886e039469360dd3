"""Loading target models: bundled names, ``package.module:factory`` plus a
weights file, or TorchScript files. Nothing here unpickles arbitrary data:
state dicts load with ``weights_only=True`` and safetensors hold no code."""

from __future__ import annotations

import importlib
from pathlib import Path

import torch
from safetensors.torch import load_file

from ..errors import ModelError
from .adapter import ModelInfo, VideoModel
from .bundled import bundled_names, load_bundled, load_weights_file

TORCHSCRIPT_SUFFIXES = {".ts", ".torchscript", ".jit"}


def load_model(spec: str, weights: str | Path | None = None, *, layout: str = "BTCHW", mean=None, std=None,
               classes: list[str] | None = None, device=None) -> VideoModel:
    """* a bundled model name (see ``sava models``);
    * ``package.module:factory`` -- the factory builds the ``nn.Module``;
      ``weights`` (``.safetensors``, or a ``.pt``/``.pth`` state dict) fills it;
    * a TorchScript file (``.ts``, ``.torchscript``, ``.jit``, or ``.pt``
      saved by ``torch.jit.save``).
    ``layout``, ``mean`` and ``std`` describe what the model expects.
    """
    if spec in bundled_names():
        return load_bundled(spec, device=device)
    info = ModelInfo(name=spec, layout=layout, mean=mean, std=std, classes=classes)
    path = Path(spec)
    if path.suffix == ".safetensors" and path.is_file() and weights is None:
        return load_weights_file(path, device)
    if path.suffix in TORCHSCRIPT_SUFFIXES | {".pt"} and path.is_file():
        try:
            module = torch.jit.load(str(path), map_location="cpu")
        except RuntimeError as exc:
            raise ModelError(f"{spec}: not a TorchScript file ({exc.args[0].splitlines()[0]})") from exc
        return VideoModel(module.eval(), info, device=device)
    if ":" in spec:
        module = _from_factory(spec)
        if weights is not None:
            _load_weights(module, Path(weights))
        return VideoModel(module.eval(), info, device=device)
    raise ModelError(
        f"unknown model {spec!r}: not a bundled model ({', '.join(bundled_names())}), "
        "a package.module:factory, or an existing TorchScript file"
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


def _load_weights(module: torch.nn.Module, path: Path) -> None:
    if not path.is_file():
        raise ModelError(f"weights file {path} does not exist")
    try:
        if path.suffix == ".safetensors":
            state = load_file(str(path))
        else:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 -- any reader failure means the same thing to the user
        raise ModelError(f"cannot read weights from {path}: {exc}") from exc
    if not isinstance(state, dict):
        raise ModelError(f"{path} does not hold a state dict")
    try:
        module.load_state_dict(state)
    except RuntimeError as exc:
        raise ModelError(f"weights in {path} do not fit the model: {exc}") from exc
