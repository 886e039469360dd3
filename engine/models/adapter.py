"""``VideoModel``: one interface to any video classifier.

Attacks hand it ``[0, 1]`` videos in ``B x T x C x H x W`` and get logits. The
adapter converts to the model's own layout, applies its mean/std
normalisation inside the forward (so gradients are taken in pixel space) and
moves data to the model's device.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn

from ..data.sampling import DEFAULT_SAMPLING, Sampling, zoom_for_resize
from ..errors import ConfigError, InputError, ModelError, first_line, is_out_of_memory

LAYOUTS = ("BTCHW", "BCTHW")
PRECISIONS = ("fp32", "bf16")
DEFAULT_FRAMES, DEFAULT_SIDE = 16, 112  # video files decoded for a model that knows no clip of its own


@dataclass
class ModelInfo:
    """What sava knows about a model besides its weights."""

    name: str = "model"
    layout: str = "BTCHW"
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    classes: list[str] | None = None
    clip_shape: tuple[int, int, int, int] | None = None  # T, C, H, W the model was trained on
    # How its clips are taken from video files: a zoo model's transforms keep the aspect ratio and crop
    sampling: Sampling = DEFAULT_SAMPLING
    extra: dict = field(default_factory=dict)


class DescribedModel:
    """What every model sava takes (white-box or a runtime's) reads from its ``ModelInfo``."""

    info: ModelInfo

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def classes(self) -> list[str] | None:
        return self.info.classes


class VideoModel(DescribedModel):
    """A white-box (differentiable) video classifier."""

    white_box = True
    max_batch = 64  # clips per forward in ``predict`` (``sava transfer --batch-size``)

    def __init__(self, module: nn.Module, info: ModelInfo | None = None, device: str | torch.device | None = None):
        info = info or ModelInfo()
        if info.layout not in LAYOUTS:
            raise ModelError(f"layout must be one of {LAYOUTS}, got {info.layout!r}")
        self.module = module
        self.info = info
        self.device = torch.device(device) if device is not None else _module_device(module)
        self.module.to(self.device)
        self.precision = "fp32"
        self._mean = self._std = None
        if info.mean is not None or info.std is not None:
            mean = torch.tensor(info.mean if info.mean is not None else (0.0,), dtype=torch.float32)
            std = torch.tensor(info.std if info.std is not None else (1.0,), dtype=torch.float32)
            if not (torch.isfinite(mean).all() and torch.isfinite(std).all()):
                raise ModelError(f"mean and std must be finite numbers, got mean {info.mean}, std {info.std}")
            if (std <= 0).any():
                raise ModelError(f"std must be positive, got {info.std}")
            self._mean = mean.view(1, 1, -1, 1, 1).to(self.device)
            self._std = std.view(1, 1, -1, 1, 1).to(self.device)

    static_batch = False  # True once compiled: attacks then always run the model on their full batch

    def compile(self, mode: str | None = None) -> VideoModel:
        """``torch.compile`` the module; ``reduce-overhead`` (the default on CUDA) records CUDA graphs. Attacks
        then run it on their whole batch every step, idle slots included, so one graph shape serves the run."""
        mode = mode or ("reduce-overhead" if self.device.type == "cuda" else "default")
        self.module = torch.compile(self.module, mode=mode, dynamic=False)
        self.static_batch = True
        return self

    @property
    def precision(self) -> str:
        """``fp32``, or ``bf16``: the module's forward and backward under bfloat16 autocast (float32 logits
        out). A lever for speed on GPUs; decisions are then the bf16 model's, so check the outcome in fp32."""
        return self._precision

    @precision.setter
    def precision(self, value: str) -> None:
        if value not in PRECISIONS:
            raise ModelError(f"precision must be one of {', '.join(PRECISIONS)}, got {value!r}")
        self._precision = value

    def logits(self, videos: torch.Tensor) -> torch.Tensor:
        """``B x T x C x H x W`` in [0, 1] -> ``B x classes`` logits; differentiable."""
        x = videos.to(self.device)
        if self._mean is not None:
            x = (x - self._mean) / self._std
        if self.info.layout == "BCTHW":
            x = x.transpose(1, 2)
        if self._precision == "bf16":
            with torch.autocast(self.device.type, dtype=torch.bfloat16):
                return as_logits(self.module(x)).float()
        return as_logits(self.module(x))

    __call__ = logits

    @torch.no_grad()
    def predict(self, videos: torch.Tensor, batch_size: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Labels and softmax probabilities, in eval mode, in chunks of ``batch_size`` (else ``max_batch``)."""
        with self.attack_mode():
            probs = torch.cat([self.logits(chunk).softmax(-1) for chunk in videos.split(batch_size or self.max_batch)])
        return probs.argmax(-1), probs

    @contextmanager
    def attack_mode(self):
        """Eval mode and frozen weights for the duration; the caller's training
        flag and ``requires_grad`` flags come back afterwards."""
        was_training = self.module.training
        flags = [p.requires_grad for p in self.module.parameters()]
        self.module.eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        try:
            yield self
        finally:
            self.module.train(was_training)
            for p, flag in zip(self.module.parameters(), flags):
                p.requires_grad_(flag)

    def check_videos(self, videos: torch.Tensor) -> None:
        """Worded errors for videos this model cannot take."""
        check_videos(videos)
        if self.info.clip_shape is not None:
            expected_c = self.info.clip_shape[1]
            if videos.shape[2] != expected_c:
                raise InputError(
                    f"model {self.name!r} takes {expected_c}-channel frames; the videos have {videos.shape[2]} "
                    f"(shape {tuple(videos.shape)}, expected B x T x C x H x W)"
                )


def check_videos(videos: torch.Tensor, labels: torch.Tensor | None = None) -> None:
    """Checks every attack makes on its input, with messages that name the fix."""
    if not isinstance(videos, torch.Tensor):
        raise InputError(f"videos must be a torch.Tensor, got {type(videos).__name__}")
    if videos.dim() != 5:
        raise InputError(f"videos must be 5-D, B x T x C x H x W; got shape {tuple(videos.shape)}")
    if not videos.is_floating_point():
        raise InputError(f"videos must be floating point in [0, 1], got {videos.dtype} (divide uint8 frames by 255)")
    b, t, c, h, w = videos.shape
    if c not in (1, 3) and t in (1, 3):
        raise InputError(
            f"videos of shape {tuple(videos.shape)} look like B x C x T x H x W; sava expects B x T x C x H x W "
            "(use videos.transpose(1, 2))"
        )
    if b == 0 or t == 0:
        raise InputError(f"videos must hold at least one frame of one video, got shape {tuple(videos.shape)}")
    if torch.isnan(videos).any():
        raise InputError("videos contain NaN values")
    low, high = float(videos.min()), float(videos.max())
    if low < 0.0 or high > 1.0:
        raise InputError(
            f"video values must lie in [0, 1]; found {low:.4g} .. {high:.4g} "
            "(pass raw pixels scaled to [0, 1]: the model's normalisation happens inside sava)"
        )
    if labels is not None:
        if labels.dim() != 1 or labels.shape[0] != b:
            raise InputError(f"labels must be a 1-D tensor of {b} class indices, got shape {tuple(labels.shape)}")


def as_logits(output):
    """The logits in what a module returns: the tensor itself; a ``.logits`` attribute or ``"logits"`` key (a
    Hugging Face output, a dict); else the first item of a tuple or list (``(logits, features)``, as models
    returning auxiliary outputs order them). Anything else is returned as it is, for the caller to refuse."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, dict) and "logits" in output:
        return output["logits"]
    if isinstance(getattr(output, "logits", None), torch.Tensor):
        return output.logits
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    return output


def clip_for_files(info: ModelInfo, frames: int | None = None, size=None,
                   recorded: dict | None = None) -> tuple[int, list[int]]:
    """Frames and frame size video files are decoded to for a model: those given; else what the run folder
    being resumed recorded (``recorded``: its ``clip_frames`` and ``size``), so that a folder begun under
    another default still resumes; else the clip the model was trained on, where it knows it (a bundled
    model, a zoo preset, a ``sava train`` file); else 16 x 112 x 112."""
    recorded = recorded or {}
    clip = info.clip_shape
    own_frames, own_size = (clip[0], list(clip[2:])) if clip else (DEFAULT_FRAMES, [DEFAULT_SIDE, DEFAULT_SIDE])
    return int(frames or recorded.get("clip_frames") or own_frames), list(size or recorded.get("size") or own_size)


def sampling_for_files(info: ModelInfo, fit: str | None = None, stride: int | None = None,
                       recorded: dict | None = None, resize: list[int] | None = None,
                       size: tuple[int, int] | None = None, rate: float | None = None) -> Sampling:
    """How video files are sampled for a model: the options given (``stride`` 0: spread over the file;
    ``rate``: frames per second; a stride or a rate given replaces the other's default;
    ``resize``: ``--resize``'s pixels for a clip of ``size``, whose one short side keeps the aspect ratio and
    whose height and width do not, as torchvision's resizes read them, unless ``fit`` says otherwise); else
    what the run folder being resumed recorded (``recorded``; a folder that records nothing was begun with the
    default); else the model's own (``info.sampling``)."""
    own = Sampling.recorded(recorded) if recorded is not None else info.sampling
    if resize:
        if size is None:
            raise ValueError("a --resize is read against the clip's size: give size")
        zoom, fit = zoom_for_resize(list(resize), tuple(size)), fit or ("crop" if len(resize) == 1 else "stretch")
    else:
        zoom = own.zoom
    if stride is not None and rate is not None:
        raise ConfigError(f"--frame-stride {stride} and --frame-rate {rate:g} both say which frames a clip takes: "
                          "give one")
    if stride is not None:
        stride, rate = stride or None, None
    elif rate is None:
        stride, rate = own.stride, own.rate
    return Sampling(fit or own.fit, stride, zoom, rate)


# What a user's module raises when the clip is not what it was built for: a wrong layout (channels met as
# frames), a clip too short for its kernels, a flattening sized for other frames.
CLIP_MISMATCH = (RuntimeError, ValueError, TypeError, IndexError, AssertionError)


def outputs_on_clip(model, clip_shape, batch: int = 1) -> int:
    """One forward on ``batch`` blank ``T x C x H x W`` clips, before any work: the model's number of outputs,
    or an error that says which clip in which layout the model refused, and what to change. A command that
    batches videos asks for 2, so that a model built for one video at a time (a trace or an export fixed at
    batch 1, an ``assert`` on the batch) is told apart from one that refuses the clip, and says so."""
    with torch.no_grad(), model.attack_mode():
        try:
            logits = model.logits(torch.zeros(batch, *clip_shape))
        except CLIP_MISMATCH as exc:
            if is_out_of_memory(exc):  # not the clip's shape: the command's own handler says what to lower
                raise
            if batch > 1 and takes_one_clip(model.logits, clip_shape):
                raise ModelError(
                    f"model {model.name!r} runs on one clip but fails on a batch of {batch} "
                    f"({type(exc).__name__}: {first_line(exc)}); it takes one video at a time: give --batch-size 1"
                ) from exc
            t, c, h, w = clip_shape
            layout = getattr(model.info, "layout", "BTCHW")
            other = "BCTHW" if layout == "BTCHW" else "BTCHW"
            raise ModelError(
                f"model {model.name!r} fails on a clip of {t} frames of {c} x {h} x {w}, passed as {layout} "
                f"({type(exc).__name__}: {first_line(exc)}); if it takes {other}, give --layout {other}; a model built "
                f"for other clips needs clips of its own (--clip-frames, --size)") from exc
    if not isinstance(logits, torch.Tensor):
        raise ModelError(f"model {model.name!r} returns {type(logits).__name__}, not a tensor of logits (nor a "
                         "dict or output with 'logits', nor a tuple starting with them); sava needs B x classes "
                         "logits")
    if logits.dim() != 2 or logits.shape[0] != batch:
        clips = "one clip" if batch == 1 else f"{batch} clips"
        raise ModelError(f"model {model.name!r} returns a tensor of shape {tuple(logits.shape)} for {clips}; "
                         "sava needs B x classes logits")
    if logits.shape[1] < 2:
        raise ModelError(f"model {model.name!r} returns one output per clip; sava attacks classifiers with a "
                         "logit per class. A binary classifier's single logit z can be returned as "
                         "torch.cat([torch.zeros_like(z), z], dim=1), whose softmax is (1 - sigmoid(z), sigmoid(z))")
    return int(logits.shape[1])


def takes_one_clip(forward, clip_shape) -> bool:
    """Whether ``forward`` (a model's ``logits`` or a target's ``predict``) takes one blank clip: told apart
    from a batch it refused, a model built for one video at a time from one that refuses the clip."""
    try:
        forward(torch.zeros(1, *clip_shape))
    except CLIP_MISMATCH:
        return False
    return True


def response_warnings(model, clip_shape) -> list[str]:
    """Warnings about how the model's outputs respond to a random clip, from one forward and backward:

    * a zero or non-finite gradient of the logits with respect to the input: rounding, quantisation,
      ``argmax``, ``.detach()`` or ``torch.no_grad`` in its forward mask the gradient that every white-box
      attack follows, so the attack could never move it, and a zero fooling rate would say nothing about its
      robustness;
    * outputs that are probabilities (rows of non-negative numbers summing to 1): the attacks' losses take
      a softmax of what the model returns, and the softmax of numbers between 0 and 1 is nearly uniform
      whatever the model thinks, so the attack's signal is all but gone (its log, or the logits before the
      softmax, serve: a log-softmax is a valid set of logits)."""
    generator = torch.Generator().manual_seed(0)
    clip = torch.rand(1, *clip_shape, generator=generator).to(model.device).requires_grad_(True)
    with model.attack_mode(), torch.enable_grad():
        logits = model.logits(clip)
        if not logits.requires_grad:
            gradient = torch.zeros_like(clip)
        else:
            weights = torch.randn(logits.shape, generator=generator).to(logits.device)  # no output sum cancels
            (gradient,) = torch.autograd.grad((logits.float() * weights).sum(), clip, allow_unused=True)
            gradient = torch.zeros_like(clip) if gradient is None else gradient
    warnings = []
    finite = bool(torch.isfinite(gradient).all())
    if not (finite and bool(gradient.abs().sum() > 0)):
        what = "zero" if finite else "not finite"
        warnings.append(
            f"warning: model {model.name!r} gives its logits a gradient with respect to its input that is {what} "
            "on a random clip: its forward masks gradients (rounding, quantisation, argmax, .detach() or no_grad), "
            "so gradient attacks cannot move it and a low fooling rate here says nothing about its robustness; "
            "attack a differentiable surrogate and measure transfer (sava transfer)")
    if looks_like_probabilities(logits.detach()):
        warnings.append(
            f"warning: model {model.name!r} returns probabilities (its outputs on a random clip are between 0 and "
            "1 and sum to 1), not logits: the attacks take a softmax of the outputs, which is then nearly "
            "uniform, so they can barely move it; return the logits before the softmax (or their log-softmax)")
    return warnings


def looks_like_probabilities(outputs: torch.Tensor) -> bool:
    """Rows of non-negative numbers at most 1 that sum to 1 (to float32 rounding of a softmax)."""
    outputs = outputs.float()
    sums = outputs.sum(dim=-1)
    return bool(((outputs >= 0) & (outputs <= 1)).all() and torch.allclose(sums, torch.ones_like(sums), atol=1e-4))


def check_output_count(model, outputs: int, names: list[str] | None, source: str) -> None:
    """An error when the model's number of outputs (``outputs_on_clip``) is not the number of class names it
    was given (``source`` says where they came from)."""
    if names is not None and outputs != len(names):
        raise ModelError(f"model {model.name!r} has {outputs} outputs, but {source} names {len(names)} classes; "
                         "give --classes in the order of the model's outputs, one name per output")


def check_finite_logits(model, values: torch.Tensor, video_ids, when: str) -> None:
    """NaN or infinite model outputs are an error that names the model and the videos, never a decision:
    ``argmax`` of NaN is class 0, which would count as a (mis)classification. ``video_ids`` is a list or a
    function returning it, called only when there is something to report."""
    finite = torch.isfinite(values).flatten(1).all(dim=1)
    if not bool(finite.all()):
        ids = video_ids() if callable(video_ids) else video_ids
        raise non_finite_logits(model, [video_id for video_id, ok in zip(ids, finite.tolist()) if not ok], when)


def non_finite_logits(model, video_ids: list[str], when: str) -> ModelError:
    """The error for NaN or infinite logits on the named videos."""
    shown = ", ".join(video_ids[:5]) + (f" and {len(video_ids) - 5} more" if len(video_ids) > 5 else "")
    return ModelError(f"model {getattr(model, 'name', 'model')!r} returned NaN or infinite logits on the {when} "
                      f"clip of video {shown}; check its weights and its --mean/--std")


def _module_device(module: nn.Module) -> torch.device:
    for tensor in list(module.parameters()) + list(module.buffers()):
        return tensor.device
    return torch.device("cpu")
