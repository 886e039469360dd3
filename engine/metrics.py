"""Per-video results and the run summary of the papers' metrics.

* FR: fooling rate over the videos the model classified correctly before the
  attack (that count is reported as ``attacked``).
* ANI: mean number of optimiser iterations to success, over successes.
* AAP(D) = mean D over successes * FR + D_max * (1 - FR), for D = 1 - SSIM
  (mean over the perturbed frames) and D = l2,1 (per-pixel, see
  ``sava.kernels.l21_norm``). D_max defaults to the paper's constraints
  (SSIM 0.92, so 0.08; l2,1 0.1) unless the run set a budget.
* ASP(SSIM): mean SSIM of the perturbed frames over successes.
* MQ, MAP, SR (Xu et al. 2022): mean queries of the target model (frame
  selection plus iterations) over successes; mean absolute perturbation per
  pixel of the whole clip over successes; sparse rate, the share of each
  clip's frames left *unperturbed*, over attacked videos. The paper words SR
  as the share perturbed, but its table (75% for 4 of 16 fixed frames, 82%
  for its fewer adaptive keyframes) only fits the share left clean, which is
  what sava reports; ``frames_per_video`` gives the count itself.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch

AAP_DMAX_SSIM = 0.08
AAP_DMAX_L21 = 0.1


@dataclass
class VideoResult:
    video_id: str
    label: int
    clean_pred: int
    attacked: bool  # False when the clean video was already misclassified (or already the target)
    success: bool = False
    iterations: int = 0
    frames: list[int] = field(default_factory=list)
    ssim: list[float] = field(default_factory=list)  # one per perturbed frame
    l21: float = 0.0
    linf: float = 0.0
    final_pred: int = -1
    final_prob: float = 0.0  # probability of final_pred
    label_prob: float = 0.0  # probability of the true label after the attack
    target: int | None = None
    seconds: float = 0.0
    loss: float | None = None  # the attack objective when the video finished
    queries: int = 0  # forward (and backward) passes of the target: frame selection plus iterations to the end
    num_frames: int = 0  # T of the clip
    mean_abs: float = 0.0  # mean absolute perturbation per pixel of the whole clip (MAP of Xu et al.)
    # Tensors of the final perturbation (not part of the JSON record).
    flow: torch.Tensor | None = field(default=None, repr=False)
    noise: torch.Tensor | None = field(default=None, repr=False)

    def record(self) -> dict:
        out = asdict(self)
        out.pop("flow")
        out.pop("noise")
        return out

    @classmethod
    def from_record(cls, record: dict) -> VideoResult:
        """A result read back from its JSON record (fields it does not know are left out)."""
        return cls(**{k: v for k, v in record.items() if k in cls.__dataclass_fields__})


@dataclass
class RunSummary:
    videos: int
    attacked: int
    successes: int
    fooling_rate: float
    ani: float | None
    aap_ssim: float
    aap_l21: float
    asp_ssim: float | None
    mean_ssim: float | None  # over every perturbed frame of every attacked video
    min_ssim: float | None
    seconds: float
    videos_per_second: float
    mq: float | None = None
    map: float | None = None
    sr: float | None = None
    frames_per_video: float | None = None
    # Over every perturbed frame of the successful videos only: the figure papers report. ``mean_ssim`` also
    # counts the failures, whose perturbations barely move, and so reads higher.
    mean_ssim_successes: float | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def summarise(results: list[VideoResult], seconds: float, dmax_ssim: float = AAP_DMAX_SSIM,
              dmax_l21: float = AAP_DMAX_L21) -> RunSummary:
    attacked = [r for r in results if r.attacked]
    wins = [r for r in attacked if r.success]
    fooling_rate = len(wins) / len(attacked) if attacked else 0.0

    def mean(values):
        values = list(values)
        return sum(values) / len(values) if values else None

    def aap(distance, dmax):
        mean_win = mean(distance(r) for r in wins)
        return (mean_win or 0.0) * fooling_rate + dmax * (1 - fooling_rate)

    frame_ssim = [s for r in attacked for s in r.ssim]
    return RunSummary(
        videos=len(results),
        attacked=len(attacked),
        successes=len(wins),
        fooling_rate=fooling_rate,
        ani=mean(r.iterations for r in wins),
        aap_ssim=aap(lambda r: 1 - mean(r.ssim), dmax_ssim),
        aap_l21=aap(lambda r: r.l21, dmax_l21),
        asp_ssim=mean(mean(r.ssim) for r in wins),
        mean_ssim=mean(frame_ssim),
        min_ssim=min(frame_ssim) if frame_ssim else None,
        seconds=seconds,
        videos_per_second=len(results) / seconds if seconds > 0 else 0.0,
        mq=mean(r.queries for r in wins),
        map=mean(r.mean_abs for r in wins),
        sr=mean(1 - len(r.frames) / r.num_frames for r in attacked if r.num_frames),
        frames_per_video=mean(len(r.frames) for r in attacked),
        mean_ssim_successes=mean(s for r in wins for s in r.ssim),
    )
