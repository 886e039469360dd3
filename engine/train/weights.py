"""What a training run reads and writes of the model's weights besides its checkpoint: a start from random
weights, state dicts as safetensors can hold them, and the finished model's file, which ``sava.load_model``
loads as trained (a bundled architecture's metadata, or for any other model the ``--model`` it started from,
its input description, class names and clip)."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from .. import __version__
from ..classes import CLASSES_FILE
from ..errors import ConfigError
from ..files import save_tensors_atomic, write_atomic
from ..models.bundled import build
from ..models.loading import BASE_MODEL, trainable_module
from ..models.zoo import is_zoo
from .data import sampling_of


def separate(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A state dict on the CPU with its own storage per tensor: safetensors refuses tensors that share memory
    (tied weights, as some Hugging Face models have)."""
    return {key: value.detach().to("cpu", copy=True) for key, value in state.items()}


def reinitialise(model) -> list[str]:
    """Random weights: a bundled architecture rebuilt as ``train_bundled`` builds it; any other module through
    its layers' own ``reset_parameters``. Returns the names of the parameters no such layer holds (a
    transformer's position embeddings, a class token), which keep their starting values: no rule for them
    is general."""
    if "arch" in model.info.extra:
        channels = model.info.clip_shape[1]
        model.module.load_state_dict(build(model.info.extra["arch"], len(model.classes), channels).state_dict())
        return []
    layers = [m for m in model.module.modules() if callable(getattr(m, "reset_parameters", None))]
    if not layers:
        raise ConfigError(f"--from-scratch: no layer of {model.name!r} can reset its parameters "
                          "(reset_parameters); start from its weights instead")
    reset = set()
    for layer in layers:
        layer.reset_parameters()
        reset |= {id(parameter) for parameter in layer.parameters(recurse=False)}
    return [name for name, parameter in model.module.named_parameters() if id(parameter) not in reset]


def save_trained(model, config, defence, accuracy: float, folder: Path, clip_shape: tuple) -> None:
    """``model.safetensors`` for the run of ``config`` (a ``TrainConfig``), trained on clips of ``clip_shape``:
    a bundled architecture's file (what ``train_bundled`` writes) or, for any other model, the state dict its
    own code knows (a Hugging Face classifier's, not sava's wrapper's) with the ``--model`` it came from, so
    that ``sava attack --model FILE`` and ``--model SPEC --weights FILE`` both load it; ``classes.txt`` beside
    it names its outputs."""
    info = model.info
    base_name = Path(info.name).name if Path(info.name).is_file() else info.name  # a file by its name alone
    sampling = sampling_of(model, config)  # how its video files were sampled: an attack on it samples alike
    trained = {"name": f"{base_name}+{config.defence}",
               "defence": defence.settings(), "test_accuracy": accuracy, "sava_version": __version__,
               "trained_from": "scratch" if config.from_scratch else config.weights or config.model,
               "layout": info.layout, "mean": info.mean, "std": info.std, "classes": info.classes} \
        | sampling.record()
    if "arch" in info.extra:
        described = {key: value for key, value in info.extra.items() if key != "class_order"}
        metadata = described | {"clip_shape": list(clip_shape)} | trained  # the clip it was trained on
    else:
        metadata = trained | {BASE_MODEL: info.extra.get(BASE_MODEL) or _portable(config.model),
                              "clip_shape": list(clip_shape), "data": config.data}
    save_tensors_atomic(separate(trainable_module(model).state_dict()), folder / "model.safetensors",
                        {k: json.dumps(v) for k, v in metadata.items()})
    write_atomic(folder / CLASSES_FILE, "\n".join(info.classes) + "\n")


def _portable(spec: str) -> str:
    """``spec`` as it loads from any working folder: a file or an ``hf:`` folder by its absolute path (a Hub id,
    read from the Hugging Face cache, is the same anywhere)."""
    if is_zoo(spec):
        family, _, rest = spec.partition(":")
        return f"{family}:{Path(rest).resolve()}" if family == "hf" and Path(rest).exists() else spec
    return str(Path(spec).resolve()) if Path(spec).exists() else spec
