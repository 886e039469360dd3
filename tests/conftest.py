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


LIVE_REPORT = os.environ.get("SAVA_LIVE_REPORT")


def pytest_runtest_logreport(report):
    """With ``SAVA_LIVE_REPORT=path``, each test's outcome (and a failure's traceback) is appended the moment it
    is known: a run cut short by a time budget (benchmarks/gpu_run.py) still says what failed and why."""
    if not LIVE_REPORT or (report.when != "call" and report.passed):
        return
    with open(LIVE_REPORT, "a", encoding="utf-8") as live:
        live.write(f"{report.outcome:<8} {report.when:<8} {report.duration:8.2f} s  {report.nodeid}\n")
        if report.failed:
            live.write(report.longreprtext[-6000:] + "\n\n")
