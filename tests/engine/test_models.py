"""Model adapter, bundled models, and loading user models."""

from __future__ import annotations

import sys
import textwrap

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from sava.data import bundled
from sava.errors import InputError, ModelError
from sava.models import ModelInfo, VideoModel, bundled_names, load_bundled, load_model


class Recorder(nn.Module):
    """Returns a fixed linear read-out and remembers the last input it saw."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(3, 4))
        self.dropout = nn.Dropout(0.5)

    def forward(self, x):
        self.seen = x.detach().clone()
        return x.mean(dim=(-2, -1)).flatten(1)[:, :4] @ self.weight.T


def test_adapter_layout_and_normalisation():
    module = Recorder()
    videos = torch.rand(2, 5, 3, 12, 13)
    mean, std = (0.1, 0.2, 0.3), (0.5, 0.25, 2.0)
    model = VideoModel(module, ModelInfo(layout="BCTHW", mean=mean, std=std))
    model.logits(videos)
    expected = ((videos - torch.tensor(mean).view(1, 1, 3, 1, 1)) / torch.tensor(std).view(1, 1, 3, 1, 1))
    torch.testing.assert_close(module.seen, expected.transpose(1, 2))
    VideoModel(module, ModelInfo(layout="BTCHW")).logits(videos)
    torch.testing.assert_close(module.seen, videos)


def test_adapter_gradients_reach_pixels():
    model = VideoModel(Recorder(), ModelInfo(mean=(0.5,) * 3, std=(0.5,) * 3))
    videos = torch.rand(1, 4, 3, 12, 12, requires_grad=True)
    model.logits(videos).sum().backward()
    assert videos.grad is not None and videos.grad.abs().sum() > 0


def test_bf16_precision_runs_the_module_under_autocast_and_returns_float32_logits():
    """bf16 is a speed lever: the logits stay within bfloat16 rounding of the fp32 model's (8 mantissa
    bits, errors compounding through the layers), the decisions on the bundled clips barely move, and the
    gradient still reaches the pixels in float32."""
    model = load_bundled("c3d-digits")
    videos = bundled("digits", "test").float_videos(slice(0, 16))
    with model.attack_mode():
        exact = model.logits(videos)
        model.precision = "bf16"
        pixels = videos.clone().requires_grad_()
        rounded = model.logits(pixels)
        rounded.sum().backward()
    assert rounded.dtype == torch.float32 and pixels.grad.dtype == torch.float32
    assert pixels.grad.abs().sum() > 0
    scale = exact.abs().max()
    gap = (rounded - exact).abs().max()
    assert 0 < gap < 0.05 * scale, (gap, scale)  # 0 would mean autocast did nothing
    assert (rounded.argmax(-1) == exact.argmax(-1)).float().mean() >= 0.9
    with pytest.raises(ModelError, match="precision must be one of fp32, bf16"):
        model.precision = "fp16"


@pytest.mark.parametrize("how", ["tuple", "dict", "output"])
def test_logits_wrapped_as_modules_return_them_are_unwrapped(how):
    """A module returning (logits, features), {"logits": ...} or a transformers output is attacked on its logits,
    gradients included: the same as the unwrapped module gives (an uncaught AttributeError before)."""
    from sava.models.adapter import outputs_on_clip
    from tests.engine.toy_models import Pooled3d, Wrapped

    wrapped = Wrapped(how)
    plain = Pooled3d()
    plain.load_state_dict(wrapped.state_dict())
    videos = torch.rand(2, 4, 3, 16, 16, requires_grad=True)
    model, reference = VideoModel(wrapped), VideoModel(plain)
    torch.testing.assert_close(model.logits(videos), reference.logits(videos))
    (gradient,) = torch.autograd.grad(model.logits(videos)[:, 1].sum(), videos)
    (expected,) = torch.autograd.grad(reference.logits(videos)[:, 1].sum(), videos)
    torch.testing.assert_close(gradient, expected)
    assert outputs_on_clip(model, (4, 3, 16, 16)) == 4


def test_a_model_with_one_output_or_no_tensor_is_refused_with_the_fix():
    from sava.models.adapter import outputs_on_clip
    from tests.engine.toy_models import single_logit

    with pytest.raises(ModelError, match=r"returns one output per clip.*torch.cat\(\[torch.zeros_like\(z\), z\]"):
        outputs_on_clip(VideoModel(single_logit()), (4, 3, 16, 16))

    class Words(nn.Module):
        def forward(self, x):
            return "a cat"

    with pytest.raises(ModelError, match="returns str, not a tensor of logits"):
        outputs_on_clip(VideoModel(Words()), (4, 3, 16, 16))


def test_attack_mode_saves_and_restores_training_state():
    module = Recorder().train()
    module.weight.requires_grad_(True)
    model = VideoModel(module)
    with model.attack_mode():
        assert not module.training and not module.weight.requires_grad
    assert module.training and module.weight.requires_grad
    with pytest.raises(RuntimeError):
        with model.attack_mode():
            raise RuntimeError("boom")
    assert module.training, "restored even when the attack fails"


@pytest.mark.parametrize(
    "videos, message",
    [
        (torch.rand(2, 3, 8, 12, 12), "look like B x C x T x H x W"),
        (torch.rand(2, 8, 12, 12), "must be 5-D"),
        (torch.rand(2, 8, 3, 12, 12) * 255, r"must lie in \[0, 1\]"),
        (torch.full((1, 8, 3, 12, 12), float("nan")), "NaN"),
        ((torch.rand(1, 8, 3, 12, 12) * 255).to(torch.uint8), "floating point"),
    ],
)
def test_bad_videos_get_named_errors(videos, message):
    model = load_bundled("c3d-digits")
    with pytest.raises(InputError, match=message):
        model.check_videos(videos)


def test_wrong_channel_count_is_named():
    with pytest.raises(InputError, match="3-channel frames"):
        load_bundled("c3d-digits").check_videos(torch.rand(1, 16, 1, 32, 32))


def test_every_bundled_model_reaches_90_percent_on_its_test_set():
    names = bundled_names()
    assert {"c3d-camera", "cnn_lstm-camera", "tsn-camera", "c3d-digits", "cnn_lstm-digits", "tsn-digits"} <= set(names)
    for name in names:
        model = load_bundled(name)
        clips = bundled(model.info.extra["dataset"], "test")
        pred, _ = model.predict(clips.float_videos())
        accuracy = float((pred == clips.labels).float().mean())
        assert accuracy >= 0.90, f"{name}: test accuracy {accuracy:.2%}"
        assert abs(accuracy - model.info.extra["test_accuracy"]) < 0.01, f"{name}: metadata disagrees"


def test_bundled_weights_are_small_safetensors():
    from sava.models.bundled import WEIGHTS_DIR

    for path in WEIGHTS_DIR.iterdir():
        assert path.suffix == ".safetensors", f"{path.name}: only safetensors ship"
        assert path.stat().st_size < 4 * 2**20, f"{path.name} is over 4 MB"


def test_unknown_model_lists_the_bundled_ones():
    with pytest.raises(ModelError, match="c3d-camera"):
        load_model("resnet-nope")


@pytest.fixture
def factory_module(tmp_path, monkeypatch):
    (tmp_path / "user_models_for_sava.py").write_text(textwrap.dedent("""
        import torch
        from torch import nn

        def tiny():
            return Tiny()

        class Tiny(nn.Module):
            def __init__(self):
                super().__init__()
                self.head = nn.Linear(3, 4)

            def forward(self, x):  # B x C x T x H x W
                return self.head(x.mean(dim=(2, 3, 4)))

        def not_a_module():
            return 42
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "user_models_for_sava"
    sys.modules.pop("user_models_for_sava", None)


def test_factory_with_safetensors_and_state_dict(factory_module, tmp_path):
    reference = __import__(factory_module).tiny()
    state = reference.state_dict()
    save_file(state, str(tmp_path / "w.safetensors"))
    torch.save(state, tmp_path / "w.pt")
    videos = torch.rand(2, 4, 3, 12, 12)
    expected = reference(videos.transpose(1, 2))
    for weights in ("w.safetensors", "w.pt"):
        model = load_model(f"{factory_module}:tiny", tmp_path / weights, layout="BCTHW")
        torch.testing.assert_close(model.logits(videos), expected)


def test_state_dict_with_pickled_code_is_refused(factory_module, tmp_path):
    torch.save({"head.weight": torch.zeros(4, 3), "evil": Recorder}, tmp_path / "evil.pt")
    with pytest.raises(ModelError, match="cannot read weights"):
        load_model(f"{factory_module}:tiny", tmp_path / "evil.pt")


def test_factory_errors_are_named(factory_module, tmp_path):
    with pytest.raises(ModelError, match="cannot import"):
        load_model("no_such_pkg_for_sava:make")
    with pytest.raises(ModelError, match="not a torch.nn.Module"):
        load_model(f"{factory_module}:not_a_module")
    with pytest.raises(ModelError, match="does not exist"):
        load_model(f"{factory_module}:tiny", tmp_path / "missing.safetensors")


def test_torchscript_file(factory_module, tmp_path):
    module = __import__(factory_module).tiny().eval()
    torch.jit.save(torch.jit.script(module), str(tmp_path / "tiny.ts"))
    model = load_model(str(tmp_path / "tiny.ts"), layout="BCTHW")
    videos = torch.rand(1, 4, 3, 12, 12)
    torch.testing.assert_close(model.logits(videos), module(videos.transpose(1, 2)))
