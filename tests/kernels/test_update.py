"""The fused masked updates against the reference (whose Adam is itself checked
against torch.optim.Adam in test_reference.py) and against explicit torch."""

from __future__ import annotations

import os

import pytest
import torch

from sava.kernels import dispatch
from sava.kernels import reference as ref
from tests.device import DEVICE

from .tolerances import assert_close

pytest.importorskip("triton")
if DEVICE == "cpu" and os.environ.get("TRITON_INTERPRET") != "1":
    pytest.skip("no GPU and the Triton interpreter is off", allow_module_level=True)

from sava.kernels.fused import update  # noqa: E402  (after TRITON_INTERPRET is set)

SHAPES = [(1, 1, 2, 11, 11), (5, 2, 3, 13, 7), (3, 4, 1, 17, 19)]


def tensors(shape, seed):
    gen = torch.Generator().manual_seed(seed)
    return lambda scale=1.0: (torch.randn(shape, generator=gen) * scale).to(DEVICE)


@pytest.mark.parametrize("shape", SHAPES)
def test_adam_matches_reference_and_skips_inactive_rows(shape):
    draw = tensors(shape, sum(shape))
    rows = shape[0]
    ours = [draw(), torch.zeros(shape, device=DEVICE), torch.zeros(shape, device=DEVICE)]
    theirs = [t.clone() for t in ours]
    steps = [torch.zeros(rows, dtype=torch.int64, device=DEVICE) for _ in range(2)]
    gen = torch.Generator().manual_seed(1)
    for _ in range(4):
        grad = draw()
        active = (torch.rand(rows, generator=gen) > 0.4).to(DEVICE)
        frozen = ours[0][~active].clone()
        update.masked_adam_step_(ours[0], grad, ours[1], ours[2], steps[0], active, 0.05)
        ref.masked_adam_step_(theirs[0], grad, theirs[1], theirs[2], steps[1], active, 0.05)
        assert torch.equal(ours[0][~active], frozen), "an inactive row changed"
    for name, a, b in zip(("param", "exp_avg", "exp_avg_sq"), ours, theirs):
        assert_close(a, b, f"adam {name}")
    assert torch.equal(steps[0], steps[1])


@pytest.mark.parametrize("shape", SHAPES[1:])
def test_adam_on_a_pair_in_one_launch_matches_two_reference_steps(shape):
    """Flow and noise of a perturbation: two tensors of different sizes and learning rates, one shared step
    count advanced once per active row."""
    draw_flow, draw_noise = tensors((*shape[:2], 2, *shape[3:]), 7), tensors(shape, 8)
    rows = shape[0]
    ours = [[draw_flow(), draw_noise()], *[[torch.zeros_like(t) for t in (draw_flow(), draw_noise())]
                                           for _ in range(2)]]
    theirs = [[t.clone() for t in group] for group in ours]
    steps = [torch.zeros(rows, dtype=torch.int64, device=DEVICE) for _ in range(2)]
    gen = torch.Generator().manual_seed(2)
    for _ in range(3):
        grads = [draw_flow(), draw_noise()]
        active = (torch.rand(rows, generator=gen) > 0.3).to(DEVICE)
        update.masked_adam_multi_(ours[0], grads, ours[1], ours[2], steps[0], active, [0.1, 0.01])
        for i, lr in enumerate((0.1, 0.01)):  # the reference, one tensor at a time on a copy of the count
            ref.masked_adam_step_(theirs[0][i], grads[i], theirs[1][i], theirs[2][i], steps[1].clone(), active, lr)
        steps[1] += active.long()
    for name, a, b in zip(("param", "exp_avg", "exp_avg_sq"), ours, theirs):
        for part, x, y in zip(("flow", "noise"), a, b):
            assert_close(x, y, f"adam pair {name} {part}")
    assert torch.equal(steps[0], steps[1])


@pytest.mark.parametrize("epsilon", [None, 0.03])
@pytest.mark.parametrize("with_clean", [False, True])
def test_sign_step_projects(epsilon, with_clean):
    shape = (4, 2, 3, 12, 11)
    draw = tensors(shape, 9)
    delta, grad = draw(0.05), draw()
    grad[0, 0, 0, 0, :4] = 0  # sign(0) = 0: those entries must not move
    clean = torch.rand(shape, device=DEVICE) if with_clean else None
    active = torch.tensor([True, False, True, True], device=DEVICE)
    expected = delta + 0.02 * grad.sign()
    if epsilon is not None:
        expected = expected.clamp(-epsilon, epsilon)
    if clean is not None:
        expected = torch.maximum(torch.minimum(expected, 1 - clean), -clean)
    expected[~active] = delta[~active]
    update.masked_sign_step_(delta, grad, active, 0.02, epsilon, clean)
    assert_close(delta, expected, "sign step")


def test_custom_ops_and_errors():
    shape = (2, 1, 1, 11, 11)
    draw = tensors(shape, 3)
    param, grad = draw(), draw()
    state = [torch.zeros(shape, device=DEVICE), torch.zeros(shape, device=DEVICE)]
    step = torch.zeros(2, dtype=torch.int64, device=DEVICE)
    active = torch.tensor([True, False], device=DEVICE)
    torch.library.opcheck(update._adam_op, (param, grad, *state, step, active, 0.1, 0.9, 0.999, 1e-8))
    torch.library.opcheck(update._sign_op, (param, grad, active, 0.1, 0.2, True, None))
    with pytest.raises(ValueError, match="active must be a bool"):
        update.masked_adam_step_(param, grad, *state, step, active.int(), 0.1)
    with pytest.raises(ValueError, match="must be contiguous"):
        update.masked_sign_step_(param.transpose(3, 4), grad, active, 0.1)
    with pytest.raises(ValueError, match="epsilon must be >= 0"):
        update.masked_sign_step_(param, grad, active, 0.1, epsilon=-1.0)


def test_dispatch_reaches_the_kernel():
    shape = (2, 1, 1, 11, 11)
    draw = tensors(shape, 4)
    delta, grad = draw(), draw()
    expected = delta.clone()
    ref.masked_sign_step_(expected, grad, torch.tensor([True, True], device=DEVICE), 0.01)
    dispatch.masked_sign_step_(delta, grad, torch.tensor([True, True], device=DEVICE), 0.01, backend="triton")
    assert_close(delta, expected, "dispatched sign step")
