"""The device every test runs on: CUDA when the machine has it, else the CPU.

``SAVA_TEST_DEVICE=cpu`` forces the CPU on a CUDA machine (the Triton kernels
then run through Triton's interpreter, as on a machine without a GPU).
"""

from __future__ import annotations

import os

import torch

ENVIRONMENT_VARIABLE = "SAVA_TEST_DEVICE"


def _choose() -> str:
    forced = os.environ.get(ENVIRONMENT_VARIABLE, "").strip().lower()
    if forced not in ("", "cpu", "cuda"):
        raise RuntimeError(f"{ENVIRONMENT_VARIABLE} must be 'cpu' or 'cuda', got {forced!r}")
    if forced == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"{ENVIRONMENT_VARIABLE}=cuda but torch sees no CUDA device")
    return forced or ("cuda" if torch.cuda.is_available() else "cpu")


DEVICE = _choose()
ON_CUDA = DEVICE == "cuda"
# Where the tests run on the CPU, the Triton kernels go through Triton's interpreter; on CUDA they run natively
# and tests about the interpreter have nothing to check.
INTERPRETER_ONLY = "the Triton kernels run natively on CUDA here; this checks the CPU interpreter path"
