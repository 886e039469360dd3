"""Class order: which model output each dataset label means.

A model's outputs are numbered; a dataset's labels are names (folder names, CSV names) or numbers. The
names of the model's outputs come, first found first, from ``--classes`` (a comma-separated list or a
text file of one name per line), the model itself (a bundled model's metadata, an ONNX file's ``classes``
metadata, a ``classes`` attribute of the module or of the factory's Python module) or a ``classes.txt``
beside the model or weights file. Dataset names are then matched to them by name (exactly, else ignoring
case, underscores and hyphens, as Kinetics' folders spell them); a name the model does not have is an error.
With no names for the model, labels follow the dataset's own order (sorted folder
names), and the run says so.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from pathlib import Path

from .errors import SavaError

CLASSES_FILE = "classes.txt"
LOW_ACCURACY = 0.6  # clean accuracy under this on an untargeted run prints a warning


@dataclass
class ClassNames:
    names: list[str] | None
    source: str  # where they came from, for messages and the run's metadata


def read_names(value: str) -> list[str]:
    """``--classes``: a file of one name per line (blank lines and ``#`` comments skipped), or a
    comma-separated list."""
    path = Path(value)
    if path.is_file():
        try:
            text = path.read_text(encoding="utf-8-sig")  # a byte-order mark is not part of the first name
        except UnicodeDecodeError as exc:
            raise SavaError(f"--classes {path} is not UTF-8 text ({exc}); save it as UTF-8") from exc
        names = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
        where = str(path)
    else:
        if "," not in value and (path.suffix or "/" in value):
            raise SavaError(f"--classes {value}: no such file (give a file of one name per line, or a,b,c)")
        names = [name.strip() for name in value.split(",")]
        where = "--classes"
    if not names or any(not name for name in names):
        raise SavaError(f"{where}: class names must be non-empty, got {names}")
    if len(set(names)) != len(names):
        twice = sorted({name for name in names if names.count(name) > 1})
        raise SavaError(f"{where}: class names must be distinct; listed twice: {', '.join(twice)}")
    return names


def _names_from(obj) -> list[str] | None:
    for attribute in ("classes", "CLASSES", "class_names"):
        value = getattr(obj, attribute, None)
        if isinstance(value, (list, tuple)) and value and all(isinstance(name, str) for name in value):
            return list(value)
    return None


def model_names(model, spec: str, weights: str | None, given: str | None) -> ClassNames:
    """The names of the model's outputs, and where they came from (see the module's docstring)."""
    if given is not None:
        return ClassNames(read_names(given), "--classes")
    if model.classes:
        return ClassNames(list(model.classes), "the model's metadata")
    module = getattr(model, "module", None)
    if module is not None and (names := _names_from(module)):
        return ClassNames(names, f"the module's {type(module).__name__}.classes")
    if ":" in spec and not Path(spec).exists():
        try:
            factory_module = importlib.import_module(spec.partition(":")[0])
        except ImportError:
            factory_module = None
        if factory_module is not None and (names := _names_from(factory_module)):
            return ClassNames(names, f"{spec.partition(':')[0]}.classes")
    for file in (weights, spec):
        if file and Path(file).is_file() and (Path(file).parent / CLASSES_FILE).is_file():
            beside = Path(file).parent / CLASSES_FILE
            return ClassNames(read_names(str(beside)), str(beside))
    return ClassNames(None, "none")


def spelling(name: str) -> str:
    """A class name with case, underscores, hyphens and repeated spaces left out of the comparison."""
    return " ".join(re.sub(r"[_\-]+", " ", name).lower().split())


def label_map(dataset, names: ClassNames, model_name: str, data_spec: str,
              outputs: int | None = None) -> tuple[list[int], str | None]:
    """Dataset label -> model output, and a notice to print (or None).

    Named dataset classes are matched to the model's names; any that the model lacks is an error. A
    dataset of class indices, or a model without names, keeps the dataset's numbering, and the notice
    says which order that is; ``outputs``, the model's number of outputs, must then hold that numbering
    (a model without names must have one output per dataset class)."""
    data_classes = list(dataset.classes)
    count = len(names.names) if names.names is not None else outputs
    if getattr(dataset, "labels_are_indices", False):
        if count is not None and len(data_classes) > count:
            source = f" ({names.source})" if names.names is not None else ""
            raise SavaError(f"dataset {data_spec!r} uses class index {len(data_classes) - 1}, but model "
                            f"{model_name!r} has {count} classes{source}")
        return list(range(len(data_classes))), None
    if names.names is None and outputs is not None and outputs != len(data_classes):
        raise SavaError(f"model {model_name!r} names no classes and has {outputs} outputs, but {data_spec} has "
                        f"{len(data_classes)} classes ({', '.join(data_classes[:6])}"
                        f"{', ...' if len(data_classes) > 6 else ''}); give the model's class names in its output "
                        "order with --classes, so that the folders are matched to them by name")
    if names.names is None:
        shown = ", ".join(f"{name} = {i}" for i, name in enumerate(data_classes[:6]))
        more = ", ..." if len(data_classes) > 6 else ""
        return list(range(len(data_classes))), (
            f"no class names for model {model_name!r}: dataset labels follow {data_spec}'s sorted class names "
            f"({shown}{more}); if the model numbers its classes otherwise, give --classes in its order")
    model_index = {name: i for i, name in enumerate(names.names)}
    by_spelling = {}  # Kinetics folders spell "air drumming" as air_drumming, Air-Drumming, ...
    for i, name in enumerate(names.names):
        by_spelling.setdefault(spelling(name), i)
    found = {name: model_index.get(name, by_spelling.get(spelling(name))) for name in data_classes}
    missing = [name for name, index in found.items() if index is None]
    if missing:
        raise SavaError(
            f"dataset {data_spec!r} has classes the model {model_name!r} does not name: {', '.join(missing[:8])}"
            f"{', ...' if len(missing) > 8 else ''}; the model's classes ({names.source}): "
            f"{', '.join(names.names[:8])}{', ...' if len(names.names) > 8 else ''}. Rename the class folders, "
            "or give the model's names in its order with --classes")
    mapping = [found[name] for name in data_classes]
    if mapping == list(range(len(data_classes))):
        return mapping, None
    return mapping, f"class order from {names.source}; dataset classes matched to it by name"


def accuracy_warning(summary, targeted: bool, names: ClassNames) -> str | None:
    """A warning when the model gets far fewer clean videos right than any usable classifier would."""
    if targeted or not summary.videos:
        return None
    accuracy = summary.attacked / summary.videos  # untargeted: a video is attacked iff classified right
    if accuracy >= LOW_ACCURACY:
        return None
    order = ("the class order: no names were known, so labels followed the dataset's sorted names; give "
             "--classes in the model's order" if names.names is None else
             f"the class order taken from {names.source}")
    return (f"warning: the model classified only {accuracy:.0%} of the clean videos correctly "
            f"({summary.attacked} of {summary.videos}). Likely causes: {order}; the input layout, mean and std "
            "(--layout, --mean, --std); or clips unlike those of the model's training: frames, size, framing "
            "and spacing (--clip-frames, --size, --fit, --resize, --frame-stride). Misclassified videos are not "
            "attacked (--iters 0 measures the clean accuracy alone, to try these quickly).")
