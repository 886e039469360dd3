"""An ONNX file that ``sava export`` did not write (a deployment stack's own export): how to feed it.

A sava export takes ``[0, 1]`` ``B x T x C x H x W`` clips named ``videos`` and holds its normalisation and
layout change in the graph. Anyone else's file takes one rank-5 input under any name, in either layout, often
normalised outside the graph and sometimes at a fixed batch size. What the graph says (the input's name,
element type and fixed dimensions) is read from the session; what it cannot say (normalisation, class names,
and the layout where its dimensions leave it open) the user gives, as for any user model.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from ..errors import InputError, ModelError
from ..models.adapter import LAYOUTS
from .black_box import METADATA_PREFIX

ELEMENT_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64}


def is_sava_export(metadata: dict[str, str], inputs: list[str]) -> bool:
    """Whether a file's metadata and input names are those ``sava export`` writes."""
    return inputs == ["videos"] and any(key.startswith(METADATA_PREFIX) for key in metadata)


@lru_cache(maxsize=32)  # asked several times per target by one command; reading a large file costs seconds
def file_is_sava_export(path) -> bool:
    """``is_sava_export`` for a file, read by onnx without a runtime session (external weights left unread)."""
    import onnx

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 -- onnx raises DecodeError and others for a file that is not ONNX
        raise ModelError(f"{path} is not an ONNX file onnx can read: {exc}") from exc
    weights = {initializer.name for initializer in proto.graph.initializer}
    inputs = [i.name for i in proto.graph.input if i.name not in weights]
    return is_sava_export({entry.key: entry.value for entry in proto.metadata_props}, inputs)


def _fixed(dim) -> int | None:
    """A dimension the graph fixes, or None for a named or unknown one."""
    return dim if isinstance(dim, int) and dim > 0 else None


def _layout_of(dims: list[int | None], given: str | None) -> str:
    """The given layout; else the one the fixed dimensions imply (3 colour channels after the batch axis is
    BCTHW, after the time axis BTCHW); else BTCHW, as for any user model."""
    if given is not None:
        if given not in LAYOUTS:
            raise ModelError(f"layout must be one of {', '.join(LAYOUTS)}, got {given!r}")
        return given
    channels_first, channels_second = dims[1] == 3, dims[2] == 3
    if channels_first and not channels_second:
        return "BCTHW"
    return "BTCHW"


@dataclass
class ForeignInput:
    """The one input of a foreign ONNX file and how ``[0, 1]`` ``B x T x C x H x W`` clips become it."""

    name: str
    dtype: type
    layout: str
    batch: int | None  # a batch size the graph fixes
    clip: tuple[int | None, int | None, int | None, int | None]  # T, C, H, W: fixed ones, None where free
    mean: torch.Tensor | None
    std: torch.Tensor | None

    @classmethod
    def read(cls, session, path, layout=None, mean=None, std=None) -> ForeignInput:
        inputs = session.get_inputs()
        if len(inputs) != 1:
            raise ModelError(f"{path} takes {len(inputs)} inputs ({', '.join(i.name for i in inputs)}); sava feeds "
                             "a video classifier one tensor of clips")
        (given,) = inputs
        if given.type not in ELEMENT_TYPES:
            raise ModelError(f"{path} takes {given.type} clips; sava feeds float32, float16 or float64")
        dims = [_fixed(dim) for dim in given.shape]
        if len(dims) != 5:
            raise ModelError(f"{path} takes a rank-{len(dims)} input {given.name!r} {given.shape}; a video "
                             "classifier takes B x T x C x H x W (or B x C x T x H x W)")
        order = _layout_of(dims, layout)
        t, c = (dims[1], dims[2]) if order == "BTCHW" else (dims[2], dims[1])
        return cls(given.name, ELEMENT_TYPES[given.type], order, dims[0], (t, c, dims[3], dims[4]),
                   _channel_values(mean, "mean"), _channel_values(std, "std"))

    def check(self, videos: torch.Tensor, name: str) -> None:
        """Clips whose fixed dimensions differ from the graph's are an error naming both."""
        got = tuple(videos.shape[1:])
        if any(want is not None and want != have for want, have in zip(self.clip, got)):
            wanted = " x ".join("any" if dim is None else str(dim) for dim in self.clip)
            raise InputError(f"{name} takes clips of T x C x H x W = {wanted} (its input {self.name!r}, "
                             f"{self.layout}); got {' x '.join(map(str, got))}")

    def feed(self, chunk: torch.Tensor) -> tuple[np.ndarray, int]:
        """The input array for ``chunk``, padded with blank clips to a fixed batch, and how many rows are real."""
        x = chunk
        if self.mean is not None:
            x = x - self.mean
        if self.std is not None:
            x = x / self.std
        if self.layout == "BCTHW":
            x = x.transpose(1, 2)
        rows = len(x)
        if self.batch is not None and rows < self.batch:
            x = torch.cat([x, x.new_zeros(self.batch - rows, *x.shape[1:])])
        return np.ascontiguousarray(x.numpy().astype(self.dtype, copy=False)), rows


def _channel_values(values, what: str) -> torch.Tensor | None:
    """``--mean``/``--std`` as a tensor broadcasting over ``B x T x C x H x W``."""
    if values is None:
        return None
    tensor = torch.tensor([float(v) for v in values], dtype=torch.float32)
    if not torch.isfinite(tensor).all() or (what == "std" and (tensor <= 0).any()):
        raise ModelError(f"{what} must be finite{' and positive' if what == 'std' else ''}, got {list(values)}")
    return tensor.view(1, 1, -1, 1, 1)
