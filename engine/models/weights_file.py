"""Reading a state dict from a user's weights file, whatever wrapper it was saved in. Nothing here unpickles
arbitrary data: ``.pt``/``.pth`` load with ``weights_only=True`` and safetensors hold no code."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file

from ..errors import ModelError

# Training scripts save {"state_dict": ...} or {"model": ...} as often as the bare dict.
WRAPPER_KEYS = ("state_dict", "model", "model_state", "model_state_dict")
# DataParallel, DistributedDataParallel and torch.compile put these in front of every key.
KEY_PREFIXES = ("module.", "_orig_mod.")


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of ``path`` keyed as the module names them, unwrapped and without training prefixes."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"weights file {path} does not exist")
    try:
        state = load_file(str(path)) if path.suffix == ".safetensors" else \
            torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 -- any reader failure means the same thing to the user
        raise ModelError(f"cannot read weights from {path}: {exc}") from exc
    if isinstance(state, dict):
        for key in WRAPPER_KEYS:
            if isinstance(state.get(key), dict) and not any(isinstance(v, torch.Tensor) for v in state.values()):
                state = state[key]
                break
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelError(f"{path} does not hold a state dict (a mapping of parameter names to tensors)")
    for prefix in KEY_PREFIXES:
        if all(key.startswith(prefix) for key in state):
            state = {key[len(prefix):]: value for key, value in state.items()}
    return state


def fill(module: torch.nn.Module, path: str | Path, state: dict[str, torch.Tensor] | None = None) -> None:
    """Load ``path`` (or ``state``, its tensors when already read) into ``module``, every key and shape
    matching, or an error naming what does not fit."""
    try:
        module.load_state_dict(read_state_dict(path) if state is None else state)
    except RuntimeError as exc:
        raise ModelError(f"weights in {path} do not fit the model: {exc}") from exc
