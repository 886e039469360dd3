"""Test-session set-up shared by every test."""

import os

import torch

# Without a GPU the Triton kernels run through Triton's CPU interpreter. The
# variable must be set before any module with @triton.jit kernels is imported.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
