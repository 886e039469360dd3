"""Files every part of sava writes through, and the reader of its JSON-lines records: a leaf module that
imports nothing of the engine, so that outputs, the report, the runner and transfer all depend on it and
never on each other for these."""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

import torch
from safetensors.torch import save_file


def write_atomic(path: Path, data: str | bytes) -> None:
    """Write a whole file so that readers see the old one or the new one, never a part."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data.encode() if isinstance(data, str) else data)
    os.replace(tmp, path)


def save_tensors_atomic(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str] | None = None) -> None:
    """A safetensors file written whole or not at all (as ``write_atomic``)."""
    tmp = path.with_name(path.name + ".tmp")
    save_file({name: value.contiguous() for name, value in tensors.items()}, str(tmp), metadata=metadata)
    os.replace(tmp, path)


def safe_name(video_id: str) -> str:
    """A file name for a video's outputs: a readable part plus a hash of the whole id, so that two ids never
    share a name (``a b.mp4`` and ``a_b.mp4`` read alike but hash apart)."""
    readable = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in video_id)[-80:].lstrip(".")
    return f"{readable}-{hashlib.sha256(video_id.encode()).hexdigest()[:10]}"


def readable_size(count: float) -> str:
    """A byte count as a person reads it: MiB below a GiB, GiB above."""
    return f"{count / 2**30:.1f} GiB" if count >= 2**30 else f"{count / 2**20:.1f} MiB"


def file_stem(spec: str) -> str:
    """A model spec (``hf:some/folder``, ``pkg.mod:factory``) as a readable file stem."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", spec).strip("._") or "model"


def read_records(path: Path, problems: list[str] | None = None, rejected: list[bytes] | None = None) -> list[dict]:
    """The complete records of one manifest. A torn last line (a crash mid-write) is cut off the file; any
    other line that is not a record (corrupted on disk, edited by hand) is skipped, described in ``problems``
    and kept as it was in ``rejected``, so its video counts as not done and is attacked again."""
    if not path.is_file():
        return []
    data = path.read_bytes()
    complete = data[: data.rfind(b"\n") + 1]
    if len(complete) != len(data):
        with open(path, "r+b") as handle:
            handle.truncate(len(complete))
    records = []
    for number, raw in enumerate(complete.split(b"\n"), 1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            record, reason = None, f"not JSON ({exc.__class__.__name__})"
        else:
            reason = "not a video record"
        if isinstance(record, dict) and isinstance(record.get("video_id"), str):
            records.append(record)
            continue
        if problems is not None:
            problems.append(f"{path.name} line {number}: {reason}; skipped, its video will be attacked again")
        if rejected is not None:
            rejected.append(raw)
    return records
