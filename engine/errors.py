"""The errors sava raises for bad input. Each message names the problem and, where
possible, the fix. All derive from ``SavaError`` (a ``ValueError``)."""


class SavaError(ValueError):
    """Base class of every error sava raises on purpose."""


class InputError(SavaError):
    """A video tensor (or label tensor) sava was handed is malformed."""


class ConfigError(SavaError):
    """An attack, selector or run setting is out of range or unknown."""


class ModelError(SavaError):
    """A model could not be found, loaded, or does not fit the data."""


class DataError(SavaError):
    """A dataset is empty, unknown, or a video file could not be used."""


def first_line(exc: BaseException) -> str:
    """An exception's message as its first non-blank line (multi-line messages from torch and ONNX Runtime
    go on for pages; an empty one gives "")."""
    return next((line.strip() for line in str(exc).splitlines() if line.strip()), "")


def is_out_of_memory(exc: BaseException) -> bool:
    """A GPU's out-of-memory error, or the CPU allocator's (a ``RuntimeError`` that only its text tells apart)."""
    import torch

    return isinstance(exc, torch.OutOfMemoryError) or (
        isinstance(exc, RuntimeError) and "can't allocate memory" in str(exc))
