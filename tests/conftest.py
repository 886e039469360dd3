"""Test-session set-up shared by every test."""

import os

import torch

from tests.device import DEVICE

# On the CPU the Triton kernels run through Triton's interpreter. The
# variable must be set before any module with @triton.jit kernels is imported.
if DEVICE == "cpu":
    os.environ.setdefault("TRITON_INTERPRET", "1")
else:
    # Tests compare attacks run in other batch shapes and against float32 references: TF32 convolutions and
    # matmuls (on by default for cuDNN) and shape-dependent algorithm choice would blur those comparisons.
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
