"""The budget projection on the fused kernels: the bisection asks for the distances of the videos outside
their budget only (a row mask the kernels honour), and scales every video exactly as the reference does."""

from __future__ import annotations

import os

import pytest
import torch

from sava.attacks.budget import Budget, project_
from sava.attacks.perturbations import FlowNoise
from sava.attacks.step import StepSettings, _distances
from tests.device import DEVICE

pytest.importorskip("triton")
if DEVICE == "cpu" and os.environ.get("TRITON_INTERPRET") != "1":
    pytest.skip("no GPU and the Triton interpreter is off", allow_module_level=True)


def settings(budget: Budget) -> StepSettings:
    return StepSettings(model=None, perturbation=FlowNoise(), objective=None, targeted=False, max_iters=1,
                        budget=budget, stop_on_success=True, refine=False, margin=0.0, host_reads_are_free=False)


def test_masked_bisection_on_the_kernels_scales_as_the_reference(monkeypatch):
    # Both bounds at once; four bisection rounds instead of twelve keep the interpreter's cost down while still
    # bisecting under a mask that changes between rounds.
    budget = Budget(min_ssim=0.8, max_l21=0.05)
    monkeypatch.setattr("sava.attacks.budget.BISECTION_STEPS", 4)
    gen = torch.Generator().manual_seed(3)
    clean = torch.rand(4, 2, 3, 16, 16, generator=gen).to(DEVICE)
    # Video 0 barely perturbed (inside), 1 and 3 far outside, 2 not running.
    size = torch.tensor([0.001, 0.3, 0.3, 0.2]).view(4, 1, 1, 1, 1)
    start = {"flow": (torch.randn(4, 2, 2, 16, 16, generator=gen) * size * 10).to(DEVICE),
             "noise": (torch.randn(4, 2, 3, 16, 16, generator=gen) * size).to(DEVICE)}
    running = torch.tensor([True, True, False, True], device=DEVICE)
    s = settings(budget)
    projected = {}
    for backend in ("reference", "triton"):
        monkeypatch.setenv("SAVA_BACKEND", backend)
        params = {name: value.clone() for name, value in start.items()}
        project_(budget, params, running, lambda p, rows: _distances(s, clean, p, rows), skip_when_inside=False)
        projected[backend] = params
    monkeypatch.setenv("SAVA_BACKEND", "reference")
    ssim, l21 = _distances(s, clean, projected["triton"], None)
    inside = budget.satisfied(ssim, l21)
    assert inside[running].all()
    for name in start:
        fused, reference = projected["triton"][name], projected["reference"][name]
        torch.testing.assert_close(fused, reference, rtol=1e-5, atol=1e-6)
        assert torch.equal(fused[[0, 2]], start[name][[0, 2]])  # inside or not running: untouched
        assert not torch.equal(fused[1], start[name][1])  # outside: scaled down
