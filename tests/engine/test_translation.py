"""Temporal translation: the weights against their formulas, and the
augmented gradient against an explicit shift / gradient / shift-back loop."""

from __future__ import annotations

import math

import pytest
import torch

from sava import ConfigError, TemporalTranslation
from sava.attacks.translation import translation_weights


def test_weights_follow_their_formulas_and_sum_to_one():
    L = 7
    offsets = torch.arange(-L, L + 1, dtype=torch.float64)
    gaussian = torch.exp(-(offsets**2) / (2 * (L / math.sqrt(3)) ** 2))
    linear = 1 - offsets.abs() / (L + 1)
    for kind, raw in (("gaussian", gaussian), ("linear", linear), ("uniform", torch.ones_like(offsets))):
        weights = translation_weights(L, kind).double()
        assert torch.allclose(weights, raw / raw.sum(), atol=1e-7), kind
        assert torch.equal(weights, weights.flip(0))
    with pytest.raises(ConfigError, match="weighting"):
        translation_weights(3, "cosine")


class Recorder(torch.nn.Module):
    """A fixed random linear score over the clip, so the gradient of each shifted copy is known."""

    def __init__(self, shape):
        super().__init__()
        self.register_buffer("w", torch.randn(shape, generator=torch.Generator().manual_seed(1)))

    def forward(self, x):
        return ((x * self.w) ** 2).sum(dim=(1, 2, 3, 4))


def explicit_tt_gradient(loss_of, x, shift, weights, offsets):
    """sum_i W_i * roll(grad at roll(x, o_i), -o_i), one copy at a time."""
    total = torch.zeros_like(x)
    for weight, offset in zip(weights.tolist(), offsets):
        shifted = torch.roll(x, offset, dims=1).detach().requires_grad_()
        (grad,) = torch.autograd.grad(loss_of(shifted).sum(), shifted)
        total += weight * torch.roll(grad, -offset, dims=1)
    return total


@pytest.mark.parametrize("strategy", ["adjacent", "remote"])
def test_augmented_gradient_equals_the_explicit_loop(strategy):
    x = torch.rand(2, 9, 1, 4, 4)
    loss_of = Recorder(x.shape[1:])
    tt = TemporalTranslation(shift=3, strategy=strategy)
    leaf = x.clone().requires_grad_()
    (grad,) = torch.autograd.grad(tt.loss(loss_of, leaf).sum(), leaf)
    base = 9 // 2 if strategy == "remote" else 0
    offsets = [i + base for i in range(-3, 4)]
    assert torch.allclose(grad, explicit_tt_gradient(loss_of, x, 3, tt.weights, offsets), atol=1e-5)
    # The score weighs each position differently, so the gradient depends on the frame order: TT changes it.
    start = x.clone().requires_grad_()
    (plain,) = torch.autograd.grad(loss_of(start).sum(), start)
    assert not torch.allclose(grad, plain, atol=1e-3)


def test_random_shifting_puts_each_gradient_back_with_its_own_order():
    x = torch.rand(1, 6, 1, 3, 3)
    loss_of = Recorder(x.shape[1:])
    tt = TemporalTranslation(shift=2, strategy="random", seed=5)
    orders = tt.permutations(6)
    tt.generator.manual_seed(5)  # the call below draws the same orders
    leaf = x.clone().requires_grad_()
    (grad,) = torch.autograd.grad(tt.loss(loss_of, leaf).sum(), leaf)
    expected = torch.zeros_like(x)
    for weight, order in zip(tt.weights.tolist(), orders):
        copy = x[:, order].detach().requires_grad_()
        (g,) = torch.autograd.grad(loss_of(copy).sum(), copy)
        expected[:, order] += weight * g  # position t of the copy came from frame order[t]
    assert torch.allclose(grad, expected, atol=1e-5)
    assert torch.equal(orders[2], torch.arange(6)) and sorted(orders[0].tolist()) == list(range(6))


def test_bad_settings_are_refused():
    with pytest.raises(ConfigError, match="shift"):
        TemporalTranslation(shift=-1)
    with pytest.raises(ConfigError, match="strategy"):
        TemporalTranslation(strategy="far")
