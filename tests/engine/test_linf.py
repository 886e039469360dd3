"""The L-infinity family: steps checked against gradients taken directly from
the wrapped torch module (not through sava's adapter), the budget, and each
gradient transform against its definition."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from sava import ConfigError, LinfAttack, make_attack
from sava.attacks.linf import diverse_input, gaussian_kernel, smooth_frames
from sava.data import bundled
from sava.models import load_bundled
from tests.device import DEVICE

torch.set_num_threads(2)
EPS = 8 / 255


@pytest.fixture(scope="module")
def model():
    return load_bundled("tsn-digits", device=DEVICE)  # B x T x C x H x W: the direct gradient needs no transpose


@pytest.fixture(scope="module")
def batch():
    clips = bundled("digits", "test")
    return clips.float_videos(slice(0, 4)), clips.labels[:4]


def direct_gradient(model, x, labels):
    """d CE / d x through the raw module, normalising by hand."""
    mean = torch.tensor(model.info.mean).view(1, 1, -1, 1, 1)
    std = torch.tensor(model.info.std).view(1, 1, -1, 1, 1)
    x = x.clone().requires_grad_()
    loss = F.cross_entropy(model.module((x - mean) / std), labels, reduction="sum")
    (grad,) = torch.autograd.grad(loss, x)
    return grad


def adversarial(videos, run):
    return torch.stack([v + r.noise for v, r in zip(videos, run.results)])


def test_fgsm_is_one_signed_step_of_epsilon(model, batch):
    videos, labels = batch
    run = LinfAttack(model, method="fgsm", epsilon=EPS).run(videos, labels)
    expected = (videos + EPS * direct_gradient(model, videos, labels).sign()).clamp(0, 1)
    assert all(r.attacked for r in run.results)
    assert torch.allclose(adversarial(videos, run), expected, atol=1e-6)
    assert all(r.queries == 2 and r.frames == list(range(16)) for r in run.results)


def test_momentum_accumulates_normalised_gradients(model, batch):
    videos, labels = batch
    alpha = EPS / 2
    run = LinfAttack(model, method="mi", epsilon=EPS, steps=2).run(videos, labels)
    delta, velocity = torch.zeros_like(videos), torch.zeros_like(videos)
    for _ in range(2):
        grad = direct_gradient(model, videos + delta, labels)
        velocity = velocity + grad / grad.abs().mean(dim=(1, 2, 3, 4), keepdim=True)
        delta = (delta + alpha * velocity.sign()).clamp(-EPS, EPS)
        delta = torch.maximum(torch.minimum(delta, 1 - videos), -videos)
    assert torch.allclose(adversarial(videos, run), videos + delta, atol=1e-5)


@pytest.mark.parametrize("method", ["bim", "di", "ti"])
@pytest.mark.parametrize("translation", [False, True])
def test_every_variant_stays_in_the_budget_and_the_pixel_range(model, batch, method, translation):
    videos, labels = batch
    steps = 2
    run = make_attack(method, model, epsilon=EPS, steps=steps, translation=translation).run(videos, labels)
    adv = adversarial(videos, run)
    assert float((adv - videos).abs().max()) <= EPS + 1e-6
    assert float(adv.min()) >= 0 and float(adv.max()) <= 1
    copies = 15 if translation else 1
    assert all(r.queries == steps * copies + 1 for r in run.results)
    assert run.settings["method"] == ("tt-" if translation else "") + method
    for video, result in zip(adv, run.results):
        assert int(model.predict(video.unsqueeze(0))[0]) == result.final_pred


def test_bim_fools_the_white_box_model(model, batch):
    videos, labels = batch
    assert LinfAttack(model, method="bim").run(videos, labels).summary.fooling_rate == 1.0


def test_ti_kernel_is_a_normalised_gaussian_of_three_sigmas():
    size = 7
    kernel = gaussian_kernel(size)
    sigma = (size - 1) / 6
    assert float(kernel.sum()) == pytest.approx(1.0)
    assert float(kernel[3, 3] / kernel[3, 4]) == pytest.approx(math.exp(1 / (2 * sigma**2)), rel=1e-5)
    impulse = torch.zeros(1, 1, 1, 15, 15)
    impulse[..., 7, 7] = 1
    assert torch.allclose(smooth_frames(impulse, size)[0, 0, 0, 4:11, 4:11], kernel, atol=1e-7)


def test_diverse_input_shrinks_and_pads_or_leaves_alone():
    videos = torch.rand(3, 4, 3, 20, 20) * 0.5 + 0.5  # no zeros of its own
    generator = torch.Generator().manual_seed(0)
    assert torch.equal(diverse_input(videos, 0.0, generator), videos)
    changed = diverse_input(videos, 1.0, generator)
    assert changed.shape == videos.shape
    for video in changed:
        zero_rows = (video.abs().sum(dim=(0, 1, 3)) == 0).sum()
        zero_cols = (video.abs().sum(dim=(0, 1, 2)) == 0).sum()
        assert 1 <= zero_rows <= 2 and 1 <= zero_cols <= 2  # 18 or 19 of 20 rows and columns kept


def test_bad_settings_fail_before_any_work(model):
    with pytest.raises(ConfigError, match="epsilon"):
        LinfAttack(model, epsilon=-0.1)
    with pytest.raises(ConfigError, match="unknown L-infinity method"):
        LinfAttack(model, method="pgd2")
    with pytest.raises(ConfigError, match="odd"):
        LinfAttack(model, method="ti", smoothing=4)
    with pytest.raises(ConfigError, match="diversity"):
        LinfAttack(model, method="di", diversity=1.5)
    with pytest.raises(ConfigError, match="unknown attack method"):
        make_attack("cw", model)
