"""Small models whose gradients are known in closed form, for checking
selectors and analyses against hand-computed answers."""

from __future__ import annotations

import torch
from torch import nn

from sava.models import ModelInfo, VideoModel


class FrameWeighted(nn.Module):
    """Logit 0 = sum_t a_t * mean(x_t); logit 1 = 0. The gradient of logit 0
    over frame t sums (in absolute value) to |a_t|."""

    def __init__(self, weights):
        super().__init__()
        self.register_buffer("weights", torch.as_tensor(weights, dtype=torch.float32))

    def forward(self, x):
        score = (x.mean(dim=(2, 3, 4)) * self.weights).sum(dim=1)
        return torch.stack([score, torch.zeros_like(score)], dim=1)


def frame_weighted(weights) -> VideoModel:
    return VideoModel(FrameWeighted(weights), ModelInfo(name="frame-weighted", classes=["a", "b"]))


class Pooled3d(nn.Module):
    """A small (2+1)D-style network ending in ``AdaptiveAvgPool3d``, an operator the dynamo ONNX exporter has
    no function for (torch's TorchScript-based exporter has)."""

    def __init__(self, classes: int = 4):
        super().__init__()
        self.conv = nn.Conv3d(3, 6, kernel_size=3, padding=1)
        self.pool = nn.AdaptiveAvgPool3d((1, 2, 2))
        self.head = nn.Linear(24, classes)

    def forward(self, x):  # B x T x C x H x W
        return self.head(self.pool(torch.relu(self.conv(x.transpose(1, 2)))).flatten(1))


def pooled_3d() -> nn.Module:
    torch.manual_seed(0)
    return Pooled3d()


class ChannelsFirst(Pooled3d):
    """``Pooled3d`` taking ``B x C x T x H x W``, as torchvision's video models do."""

    def forward(self, x):
        return self.head(self.pool(torch.relu(self.conv(x))).flatten(1))


def channels_first_ten() -> nn.Module:
    torch.manual_seed(0)
    return ChannelsFirst(classes=10)


class Brightness(nn.Module):
    """Two classes by mean brightness, in the order ``dark``, ``bright``: the reverse of the alphabetical
    order a folder dataset numbers its class folders in. ``classes`` names them when given."""

    def __init__(self, classes: list[str] | None = None):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(20.0))
        if classes is not None:
            self.classes = classes

    def forward(self, x):  # B x T x C x H x W in [0, 1]
        brightness = x.mean(dim=(1, 2, 3, 4)) - 0.5
        return torch.stack([-brightness, brightness], dim=1) * self.scale


def brightness_named() -> nn.Module:
    return Brightness(["dark", "bright"])


def brightness_unnamed() -> nn.Module:
    return Brightness()


class BrightFirst(Brightness):
    """``Brightness`` with its two outputs swapped and named ``Bright``, ``DARK``: the same decisions, numbered
    and spelt otherwise."""

    def __init__(self):
        super().__init__(["Bright", "DARK"])

    def forward(self, x):
        return super().forward(x).flip(1)


def bright_first() -> nn.Module:
    return BrightFirst()


LOADS = {"pooled_3d_ten": 0}  # how often the factory below ran: a model loaded once per transfer, not per runtime


def pooled_3d_ten() -> nn.Module:
    LOADS["pooled_3d_ten"] += 1
    torch.manual_seed(0)
    return Pooled3d(classes=10)


class AlwaysLast(nn.Module):
    """Ten outputs, the last always highest: a target that is right on no video of a set of fewer classes."""

    def forward(self, x):
        return torch.zeros(x.shape[0], 10, device=x.device) + torch.arange(10.0, device=x.device) + 0 * x.mean()


def always_last() -> nn.Module:
    return AlwaysLast()


class Branchy(nn.Module):
    """A branch on the clip's brightness: torch.export refuses it, a trace records one side only."""

    def __init__(self):
        super().__init__()
        self.head = nn.Linear(3, 2)

    def forward(self, x):  # B x T x C x H x W
        colour = x.mean(dim=(1, 3, 4))
        return self.head(colour) if colour.mean() > 0.5 else -self.head(colour)


def branchy() -> nn.Module:
    torch.manual_seed(0)
    return Branchy()


class Wrapped(Pooled3d):
    """``Pooled3d`` whose logits come wrapped as many modules return them: ``tuple`` (logits, features),
    ``dict`` {"logits": ...}, ``output`` (a transformers output object), or ``single`` (one logit)."""

    def __init__(self, how: str):
        super().__init__(classes=1 if how == "single" else 4)
        self.how = how

    def forward(self, x):
        logits = super().forward(x)
        if self.how == "tuple":
            return logits, x.mean(dim=(2, 3, 4))
        if self.how == "dict":
            return {"logits": logits, "frames": x.shape[1]}
        if self.how == "output":
            from transformers.modeling_outputs import ImageClassifierOutput

            return ImageClassifierOutput(logits=logits)
        return logits


def single_logit() -> nn.Module:
    return Wrapped("single")


class Quantised(Brightness):
    """``Brightness`` on frames rounded to four grey levels, as an input-quantisation defence does: the same
    decisions, and a zero gradient everywhere (gradient masking)."""

    def __init__(self):
        super().__init__(["dark", "bright"])

    def forward(self, x):
        return super().forward(torch.round(x * 3) / 3)


def quantised() -> nn.Module:
    return Quantised()


class OneAtATime(nn.Module):
    """A model that takes one video at a time, as a trace or an export fixed at batch 1 does."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner
        self.classes = getattr(inner, "classes", None)

    def forward(self, x):
        if x.shape[0] != 1:
            raise RuntimeError(f"shape '[1, -1]' is invalid for input of size {x.numel()}")
        return self.inner(x)


def one_at_a_time() -> nn.Module:
    return OneAtATime(Brightness(["dark", "bright"]))


def one_at_a_time_ten() -> nn.Module:
    torch.manual_seed(0)
    return OneAtATime(Pooled3d(classes=10))


class Probabilities(Brightness):
    """``Brightness`` that ends in a softmax: the same decisions, probabilities instead of logits."""

    def __init__(self):
        super().__init__(["dark", "bright"])

    def forward(self, x):
        return super().forward(x).softmax(dim=1)


def probabilities() -> nn.Module:
    return Probabilities()


class Greedy(Pooled3d):
    """``Pooled3d`` that asks the allocator for 16 TiB on a batch of more than two clips: a real out-of-memory
    error, raised at once (nothing is allocated), past the two-clip probe that precedes an attack."""

    def forward(self, x):
        if x.shape[0] > 2:
            torch.empty(2 ** 42, device=x.device)
        return super().forward(x)


def greedy() -> nn.Module:
    torch.manual_seed(0)
    return Greedy(classes=2)


def broken_factory() -> nn.Module:
    """A factory whose own code fails, as a user's does when a file it reads is missing."""
    raise FileNotFoundError("[Errno 2] No such file or directory: 'backbone.pth'")
