"""``sava transfer --targets``: which models classify the adversarial videos, and how each takes its clips.

Given on the command line, targets are comma-separated ``SPEC[@WEIGHTS]`` and share one description
(``--layout``, ``--mean``, ``--std``). A ``.json`` file describes each on its own: a list whose items are such
strings or objects ``{"model": SPEC, "weights": FILE, "layout": "BCTHW", "mean": [..], "std": [..],
"classes": [..] or FILE}``; paths in it are relative to the file's folder, and what an item leaves out the
command line's options fill in.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from pathlib import Path

from ..errors import SavaError

FIELDS = ("model", "weights", "layout", "mean", "std", "classes")
DESCRIPTION = ("layout", "mean", "std", "classes")  # what a bundled model or a sava export carries itself
MODEL_FILE_SUFFIXES = {".onnx", ".ts", ".torchscript", ".jit", ".pt", ".safetensors"}


@dataclass(frozen=True)
class Target:
    model: str
    weights: str | None = None
    layout: str | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    classes: str | None = None  # as --classes takes them: a,b,c or a file of one name per line

    @property
    def label(self) -> str:
        """How rows and the matrix name it: as typed, with its weights file (two weights of one factory are two
        targets)."""
        return self.model + (f"@{self.weights}" if self.weights else "")

    def description(self, shared: dict | None = None) -> dict:
        """How it takes its clips: its own settings, the command line's (``shared``) where it has none."""
        own = {name: getattr(self, name) for name in DESCRIPTION if getattr(self, name) is not None}
        return (shared or {}) | own


def parse_targets(text: str) -> list[Target]:
    """``--targets`` as typed: a ``.json`` file, or comma-separated ``SPEC[@WEIGHTS]``."""
    text = text.strip()
    if text.endswith(".json") and "," not in text:
        targets = read_targets_file(Path(text))
    else:
        targets = [_from_string(item) for item in text.split(",") if item.strip()]
    seen = set()
    for target in targets:
        if target.label in seen:
            raise SavaError(f"target {target.label} is listed twice")
        seen.add(target.label)
    return targets


def _from_string(item: str) -> Target:
    spec, _, weights = item.strip().partition("@")
    return Target(spec, weights or None)


def read_targets_file(path: Path) -> list[Target]:
    """The targets a ``.json`` file lists (see the module's docstring), or an error naming the item at fault."""
    if not path.is_file():
        raise SavaError(f"targets file {path} does not exist")
    try:
        items = json.loads(path.read_text(encoding="utf-8-sig"))  # a byte-order mark is not JSON
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise SavaError(f"targets file {path} is not readable JSON: {exc}") from exc
    if not isinstance(items, list) or not items:
        raise SavaError(f"targets file {path} must hold a non-empty list of targets")
    return [_from_item(item, number, path) for number, item in enumerate(items, 1)]


def _from_item(item, number: int, path: Path) -> Target:
    where = f"{path}: target {number}"
    if isinstance(item, str):
        target = _from_string(item)
        return replace(target, model=_beside(target.model, path, model=True), weights=_beside(target.weights, path))
    if not isinstance(item, dict):
        raise SavaError(f"{where} must be a string (SPEC[@WEIGHTS]) or an object, got {type(item).__name__}")
    unknown = sorted(set(item) - set(FIELDS))
    if unknown:
        raise SavaError(f"{where}: unknown key(s) {', '.join(unknown)}; a target takes {', '.join(FIELDS)}")
    if not isinstance(item.get("model"), str) or not item["model"].strip():
        raise SavaError(f"{where} needs \"model\": a model spec as --model takes it")
    for name in ("weights", "layout"):
        if item.get(name) is not None and not isinstance(item[name], str):
            raise SavaError(f"{where}: \"{name}\" must be a string, got {item[name]!r}")
    if item.get("layout") not in (None, "BTCHW", "BCTHW"):
        raise SavaError(f"{where}: \"layout\" must be BTCHW or BCTHW, got {item['layout']!r}")
    return Target(_beside(item["model"].strip(), path, model=True), _beside(item.get("weights"), path),
                  item.get("layout"), _channels(item.get("mean"), "mean", where),
                  _channels(item.get("std"), "std", where), _classes(item.get("classes"), path, where))


def _channels(value, name: str, where: str) -> tuple[float, ...] | None:
    if value is None:
        return None
    values = value if isinstance(value, list) else [value]
    if len(values) not in (1, 3) or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                            and math.isfinite(v) for v in values):
        raise SavaError(f"{where}: \"{name}\" must be one finite number or three (R, G, B), got {value!r}")
    return tuple(float(v) for v in values)


def _classes(value, path: Path, where: str) -> str | None:
    """``classes`` as ``--classes`` takes them: a list of names (joined), or a file beside the targets file."""
    if value is None:
        return None
    if isinstance(value, list) and value and all(isinstance(name, str) and "," not in name for name in value):
        return ",".join(value)
    if isinstance(value, str) and value.strip():
        beside = path.parent / value
        return str(beside) if beside.is_file() else value
    raise SavaError(f"{where}: \"classes\" must be a list of names (without commas) or a file, got {value!r}")


def _beside(value: str | None, path: Path, model: bool = False) -> str | None:
    """A path in the targets file, read from the file's folder; a model spec that names no file (a bundled
    name, ``package.module:factory``, ``torchvision:NAME``) as it is."""
    if value is None:
        return None
    if model:
        family, _, rest = value.partition(":")
        if family == "hf" and rest:
            return f"hf:{path.parent / rest}" if not Path(rest).is_absolute() else value
        if Path(value).suffix not in MODEL_FILE_SUFFIXES:
            return value
    return value if Path(value).is_absolute() else str(path.parent / value)
