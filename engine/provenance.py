"""Where a result came from: device, commit and package versions, recorded
in every benchmark row and every reproduced table."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

import torch

from . import __version__


def _version(name: str) -> str | None:
    try:
        return __import__(name).__version__
    except Exception:  # noqa: BLE001 -- absent or broken: say so in the record
        return None


def git_commit() -> str | None:
    """The checkout's commit (short hash), or None outside a git checkout."""
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             cwd=Path(__file__).resolve().parent, check=False).stdout.strip()
    except OSError:
        return None
    return out or None


def environment(device: str = "cpu") -> dict:
    device = str(torch.device(device).type)
    name = torch.cuda.get_device_name() if device == "cuda" else (platform.processor() or platform.machine())
    return {"device": name, "device_kind": device, "commit": git_commit(), "sava": __version__,
            "torch": torch.__version__, "triton": _version("triton"), "python": platform.python_version(),
            "cuda": torch.version.cuda if device == "cuda" else None,
            # Triton's CPU interpreter proves the kernels run; its times are no speed figures.
            "triton_interpreter": os.environ.get("TRITON_INTERPRET") == "1"}
