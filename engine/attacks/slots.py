"""The device-side state of the videos under attack, one *slot* per video.

Every per-video quantity lives in a tensor with one row per slot, so a step
works on a prefix ``[:width]`` of the rows under masks and never selects rows:
no host synchronisation, fixed shapes. Per slot:

* ``clip``: the adversarial clip the model sees (the clean clip, whose
  selected frames each step overwrites), and ``clean``, its clean selected
  frames (``k`` of them, never ``T``);
* the selection: ``frame_idx`` (padded to the slots' shared width ``k`` with
  frames the video does not perturb) and ``frame_valid``;
* the perturbation parameters and their Adam moments (``k`` frames);
* counters and flags kept on the device: ``iters`` (updates applied, also
  Adam's step count), ``running`` (still being attacked) and ``finished``;
* ``record``: the figures of the step at which the video finished (loss,
  success, logits, then the per-frame SSIM), frozen from then on, so a
  result is the same however late the host reads it;
* in refine mode, each video's best success so far (``best_*``).

A step reads the rows through :meth:`Slots.prefix`, views made once per width.

The host side (``jobs``) is bookkeeping only. ``generation`` changes whenever
the tensors themselves are replaced (a wider video, a new record size): what
holds their addresses (a captured CUDA graph) is stale from then on.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..errors import InputError
from ..metrics import VideoResult


@dataclass
class SlotViews:
    """Views of the first ``width`` rows of every per-slot tensor (see the module doc), plus ``rows``
    (``width x 1`` row numbers) and ``scale`` (the frame mask shaped to multiply parameters)."""

    clip: torch.Tensor
    clean: torch.Tensor
    frame_idx: torch.Tensor
    frame_valid: torch.Tensor
    frame_scale: torch.Tensor
    goal: torch.Tensor
    label: torch.Tensor
    iters: torch.Tensor
    running: torch.Tensor
    finished: torch.Tensor
    record: torch.Tensor
    rows: torch.Tensor
    scale: torch.Tensor
    params: dict[str, torch.Tensor]
    moments: dict[str, tuple[torch.Tensor, torch.Tensor]]
    best_params: dict[str, torch.Tensor] = field(default_factory=dict)  # refine mode only, as the three below
    first_success: torch.Tensor | None = None
    best_l21: torch.Tensor | None = None
    best_record: torch.Tensor | None = None


# Columns of ``record``: the loss, success (1.0 or 0.0), the logits (one per class), then one SSIM per frame.
LOSS, SUCCESS, LOGITS = range(3)


@dataclass
class Job:
    """One video waiting for a slot."""

    video: torch.Tensor  # T x C x H x W, [0, 1]
    frame_idx: torch.Tensor  # k, int64 (k may differ between jobs)
    goal: int  # true label (untargeted) or target label
    result: VideoResult  # filled in as the attack finishes
    seconds: float = 0.0  # its share of the steps it was in (see sava.attacks.clock)


def pad_frames(frame_idx: torch.Tensor, width: int, num_frames: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A video's ``k`` frames padded to ``width`` with frames it does not perturb (distinct, so writing the
    untouched padding frames back is a no-op), and the mask of the real ones."""
    chosen = [int(t) for t in frame_idx.tolist()]
    if any(not 0 <= t < num_frames for t in chosen) or len(set(chosen)) != len(chosen):
        raise InputError(f"frame indices must be distinct and lie in [0, {num_frames}), got {chosen}")
    spare = [t for t in range(num_frames) if t not in set(chosen)][: width - len(chosen)]
    valid = torch.arange(width) < len(chosen)
    return torch.tensor(chosen + spare, dtype=torch.long), valid


class Slots:
    # Per-slot tensors with a frame axis (dimension 1), grown when a wider video arrives.
    FRAME_WISE = ("clean", "frame_idx", "frame_valid", "frame_scale", "record", "best_record")

    def __init__(self, capacity: int, first: Job, parameter_shapes: dict[str, tuple[int, ...]], device,
                 refine: bool):
        t, c, h, w = first.video.shape
        self.capacity, self.num_frames, self.width, self.device, self.refine = capacity, t, 0, device, refine
        zeros = lambda *shape, dtype=torch.float32: torch.zeros(capacity, *shape, dtype=dtype, device=device)  # noqa: E731
        self.clip = zeros(t, c, h, w)
        self.clean = zeros(0, c, h, w)
        self.frame_idx = zeros(0, dtype=torch.long)
        self.frame_valid = zeros(0, dtype=torch.bool)
        self.frame_scale = zeros(0)  # frame_valid as 1.0 / 0.0: multiplies the parameters
        self.goal, self.label, self.iters = (zeros(dtype=torch.long) for _ in range(3))
        self.running, self.finished = zeros(dtype=torch.bool), zeros(dtype=torch.bool)
        self.classes = 0  # the record's logits columns, known once the model has answered (ensure_record)
        self.record = zeros(LOGITS)
        self.params = {name: zeros(0, *shape) for name, shape in parameter_shapes.items()}
        self.moments = {name: (zeros(0, *shape), zeros(0, *shape)) for name, shape in parameter_shapes.items()}
        if refine:
            self.first_success = zeros(dtype=torch.long)
            self.best_l21 = zeros()
            self.best_record = zeros(LOGITS)
            self.best_params = {name: zeros(0, *shape) for name, shape in parameter_shapes.items()}
        self.parameter_shapes = dict(parameter_shapes)
        self.generation = 0
        self.jobs: list[Job | None] = [None] * capacity
        self._prefixes: dict[int, SlotViews] = {}
        self.padded = False  # some loaded video perturbs fewer frames than the width (its parameters are masked)

    def ensure_record(self, classes: int) -> None:
        """Make room for ``classes`` logits in the records (at the first step: the model's output size)."""
        if classes == self.classes:
            return
        self.classes = classes
        self.generation += 1
        self._prefixes.clear()
        self.record = torch.zeros(self.capacity, LOGITS + classes + self.width, device=self.device)
        if self.refine:
            self.best_record = torch.zeros_like(self.record)

    def prefix(self, width: int) -> SlotViews:
        """The views of the first ``width`` rows. Made once per width: slicing is an operation of its own at
        every use."""
        if width not in self._prefixes:
            views = {name: value[:width] for name, value in self._tensors().items()}
            self._prefixes[width] = SlotViews(
                **{name: value for name, value in views.items() if ":" not in name},
                params={n: views[f"param:{n}"] for n in self.params},
                moments={n: (views[f"m:{n}"], views[f"v:{n}"]) for n in self.params},
                best_params={n: views[f"best:{n}"] for n in self.params} if self.refine else {},
                rows=torch.arange(width, device=self.device).unsqueeze(1),
                scale=views["frame_scale"].view(width, self.width, 1, 1, 1))
        return self._prefixes[width]

    # ------------------------------------------------------------------ shape
    def _tensors(self) -> dict[str, torch.Tensor]:
        """Every per-slot tensor by a name (parameters as ``param:``/``m:``/``v:``/``best:`` entries)."""
        named = {name: getattr(self, name) for name in ("clip", "clean", "frame_idx", "frame_valid", "frame_scale",
                                                         "goal", "label", "iters", "running", "finished",
                                                         "record")}
        for name, value in self.params.items():
            named[f"param:{name}"] = value
            named[f"m:{name}"], named[f"v:{name}"] = self.moments[name]
        if self.refine:
            named |= {"first_success": self.first_success, "best_l21": self.best_l21,
                      "best_record": self.best_record}
            named |= {f"best:{name}": value for name, value in self.best_params.items()}
        return named

    def _set(self, name: str, value: torch.Tensor) -> None:
        kind, _, param = name.partition(":")
        if not param:
            setattr(self, name, value)
        elif kind == "param":
            self.params[param] = value
        elif kind == "best":
            self.best_params[param] = value
        else:
            m, v = self.moments[param]
            self.moments[param] = (value, v) if kind == "m" else (m, value)

    def widen(self, width: int) -> None:
        """Grow every per-frame tensor to ``width`` frames; loaded videos pad with frames they do not perturb."""
        extra = width - self.width
        self.generation += 1
        self._prefixes.clear()  # the tensors are replaced
        for name, value in self._tensors().items():
            if name in self.FRAME_WISE or name.partition(":")[2]:
                self._set(name, torch.cat([value, value.new_zeros(value.shape[0], extra, *value.shape[2:])], 1))
        self.width = width
        self.padded = any(job is not None for job in self.jobs)  # every loaded video is now narrower
        for slot, job in enumerate(self.jobs):
            if job is not None:
                self._place_frames(slot, self.frame_idx[slot][self.frame_valid[slot]].cpu())

    def _place_frames(self, slot: int, frame_idx: torch.Tensor) -> None:
        idx, valid = pad_frames(frame_idx, self.width, self.num_frames)
        self.frame_idx[slot] = idx.to(self.device)
        self.frame_valid[slot] = valid.to(self.device)
        self.frame_scale[slot] = valid.to(self.device, torch.float32)
        self.clean[slot] = self.clip[slot, self.frame_idx[slot]]

    # ------------------------------------------------------------------ slots
    def load(self, slot: int, job: Job) -> None:
        """Put ``job`` in ``slot`` with the identity perturbation (all parameters zero)."""
        if job.video.shape[0] != self.num_frames or job.video.shape[1:] != self.clip.shape[2:]:
            raise InputError(f"video {job.result.video_id!r} is {tuple(job.video.shape)}; the attack's slots hold "
                             f"{(self.num_frames, *self.clip.shape[2:])} clips")
        if len(job.frame_idx) > self.width:
            self.widen(len(job.frame_idx))
        self.clip[slot] = job.video.to(self.device)
        self._place_frames(slot, job.frame_idx.cpu())
        self.goal[slot], self.label[slot] = job.goal, job.result.label
        for name, value in self._tensors().items():
            if name not in ("clip", "clean", "frame_idx", "frame_valid", "frame_scale", "goal", "label"):
                value[slot] = 0
        self.running[slot] = True
        if self.refine:
            self.first_success[slot] = -1
            self.best_l21[slot] = float("inf")
        self.jobs[slot] = job
        self.padded = self.padded or len(job.frame_idx) < self.width

    def move(self, source: int, target: int) -> None:
        """Move the video in ``source`` to the free ``target`` (keeps the occupied slots a prefix)."""
        for value in self._tensors().values():
            value[target] = value[source]
        self.running[source] = False
        self.finished[source] = False
        self.jobs[target], self.jobs[source] = self.jobs[source], None

    # ------------------------------------------------------------------ reuse
    def fits(self, capacity: int, first: Job, parameter_shapes: dict[str, tuple[int, ...]], refine: bool) -> bool:
        """Whether a new run of these jobs can reuse these slots (and so the graphs captured on them): same
        capacity, clip shape, parameters and mode, and a first video exactly as wide as the slots."""
        return (capacity == self.capacity and tuple(first.video.shape) == (self.num_frames, *self.clip.shape[2:])
                and dict(parameter_shapes) == self.parameter_shapes and refine == self.refine
                and len(first.frame_idx) == self.width)

    def reset(self) -> None:
        """Empty every slot for a new run; the tensors (and what holds their addresses) stay."""
        self.jobs = [None] * self.capacity
        self.running.zero_()
        self.finished.zero_()
        self.padded = False

