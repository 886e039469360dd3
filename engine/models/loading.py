"""Loading target models: bundled names, zoo presets (``torchvision:NAME``, ``hf:FOLDER``),
``package.module:factory`` plus a weights file, or TorchScript files. Nothing here unpickles arbitrary data:
state dicts load with ``weights_only=True`` and safetensors hold no code."""

from __future__ import annotations

import importlib
from pathlib import Path

import torch

from ..data.sampling import Sampling
from ..errors import ModelError, SavaError, first_line, is_out_of_memory
from .adapter import ModelInfo, VideoModel
from .bundled import bundled_names, load_bundled, load_weights_file, read_metadata
from .weights_file import fill
from .zoo import is_zoo

TORCHSCRIPT_SUFFIXES = {".ts", ".torchscript", ".jit"}
BASE_MODEL = "base_model"  # the metadata key of a trained user model's file: the --model it was trained from


def load_model(spec: str, weights: str | Path | None = None, *, layout: str | None = None, mean=None, std=None,
               classes: list[str] | None = None, device=None) -> VideoModel:
    """* a bundled model name (see ``sava models``);
    * ``torchvision:NAME`` -- one of torchvision's video classifiers, ``weights`` its state dict;
    * ``hf:FOLDER`` -- a Hugging Face video classifier saved with ``save_pretrained`` (or ``hf:ORG/NAME``, one
      in the local Hugging Face cache);
    * ``package.module:factory`` -- the factory builds the ``nn.Module``;
      ``weights`` (``.safetensors``, or a ``.pt``/``.pth`` state dict) fills it;
    * a TorchScript file (``.ts``, ``.torchscript``, ``.jit``, or ``.pt``
      saved by ``torch.jit.save``), ``weights`` a state dict that replaces its own;
    * a ``.safetensors`` file written by ``sava train``: it names the model it was trained from.
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
        meta = read_metadata(path)
        if BASE_MODEL in meta:
            return _trained_from(path, meta, layout=layout, mean=mean, std=std, device=device)
        return load_weights_file(path, device)
    if path.suffix in TORCHSCRIPT_SUFFIXES | {".pt"} and path.is_file():
        try:
            module = torch.jit.load(str(path), map_location="cpu")
        except RuntimeError as exc:
            raise ModelError(f"{spec}: not a TorchScript file ({first_line(exc)})") from exc
        if weights is not None:
            fill(module, weights)
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


def load_named_model(spec: str, weights=None, *, layout=None, mean=None, std=None, classes: str | None = None,
                     device=None) -> VideoModel:
    """``load_model``, the model's class names set from wherever ``sava.classes.model_names`` finds them
    (``classes`` is ``--classes``: names or a file); where they came from is ``info.extra["class_order"]``."""
    from ..classes import model_names

    model = load_model(spec, weights, layout=layout, mean=mean, std=std, device=device)
    names = model_names(model, spec, weights, classes)
    if names.names is not None:
        model.info.classes = names.names
    model.info.extra["class_order"] = names.source
    return model


def _trained_from(path: Path, meta: dict, *, layout, mean, std, device) -> VideoModel:
    """A user model as ``sava train`` left it: the model it started from, filled with the trained weights and
    described as it was trained (layout, normalisation, class names, clip); options given still win."""
    try:
        model = load_model(meta[BASE_MODEL], path, layout=layout or meta["layout"],
                           mean=mean or _tuple(meta["mean"]), std=std or _tuple(meta["std"]), device=device)
    except ModelError as exc:  # the model it came from has moved, or its factory no longer imports
        raise ModelError(f"{path} holds weights trained from {meta[BASE_MODEL]}, which cannot be loaded: "
                         f"{first_line(exc)}") from exc
    model.info.name = meta.get("name", model.info.name)
    model.info.classes = meta.get("classes") or model.info.classes
    model.info.clip_shape = tuple(meta["clip_shape"]) if meta.get("clip_shape") else model.info.clip_shape
    model.info.sampling = Sampling.recorded(meta) if "fit" in meta else model.info.sampling
    model.info.extra |= {key: meta[key] for key in (BASE_MODEL, "defence", "test_accuracy", "data") if key in meta}
    return model


def _tuple(values) -> tuple[float, ...] | None:
    return tuple(values) if values is not None else None


def trainable_module(model: VideoModel) -> torch.nn.Module:
    """The module whose state dict a user's own code knows: a Hugging Face classifier itself, not the wrapper
    that turns its output into logits; any other model's module."""
    from .huggingface import LogitsOf

    return model.module.classifier if isinstance(model.module, LogitsOf) else model.module


def _from_factory(spec: str) -> torch.nn.Module:
    module_name, _, attr = spec.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ModelError(f"cannot import the model factory {spec!r}: {exc}") from exc
    try:
        module = factory()
    except SavaError:
        raise
    except Exception as exc:  # the user's code: any failure is theirs to read, named as coming from it
        if is_out_of_memory(exc):  # the command's own handler says what to lower
            raise
        raise ModelError(f"the model factory {spec!r} raised {type(exc).__name__}: {first_line(exc)}") from exc
    if not isinstance(module, torch.nn.Module):
        raise ModelError(f"{spec} returned {type(module).__name__}, not a torch.nn.Module")
    return module
