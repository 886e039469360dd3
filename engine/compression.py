"""Do adversarial videos survive video compression? (DeepSAVA, section 4.2.3:
the paper reports that additive perturbations can vanish in transmission
while spatial ones are kept.)

Each adversarial clip is encoded with H.264 (libx264, yuv420p) at a
constant rate factor, decoded with PyAV, and classified again. The fooling
rate after compression is counted over the videos that fooled the model
before it and that the model still gets right when the *clean* clip goes
through the same codec, so codec damage alone does not count as a success.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch

from .data.video_io import decode_frames, write_video
from .transfer import replay

DEFAULT_CRF = (18, 23, 28, 35)  # visually lossless ... clearly lossy


def h264_roundtrip(video: torch.Tensor, crf: int) -> torch.Tensor:
    """``T x 3 x H x W`` in [0, 1] through an H.264 encode and decode (even H and W)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "clip.mp4"
        write_video(path, video, codec="libx264", crf=crf)
        frames = np.stack(decode_frames(path))
    return torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255.0


def survival(model, videos: torch.Tensor, labels: torch.Tensor, results, crfs=DEFAULT_CRF) -> list[dict]:
    """Per CRF: how many successful adversarial videos still fool the model after compression."""
    fooled = [i for i, r in enumerate(results) if r.success]
    adversarial = torch.stack([replay(videos[i], results[i]) for i in fooled]) if fooled else None
    rows = []
    for crf in crfs:
        if adversarial is None:
            rows.append({"crf": crf, "fooled_before": 0, "counted": 0, "fooled_after": 0, "fooling_rate_after": None})
            continue
        clean = torch.stack([h264_roundtrip(videos[i], crf) for i in fooled])
        attacked = torch.stack([h264_roundtrip(v, crf) for v in adversarial])
        goal = labels[fooled]
        clean_ok = model.predict(clean)[0].cpu() == goal
        still = (model.predict(attacked)[0].cpu() != goal) & clean_ok
        rows.append({"crf": crf, "fooled_before": len(fooled), "counted": int(clean_ok.sum()),
                     "fooled_after": int(still.sum()),
                     "fooling_rate_after": float(still.sum()) / int(clean_ok.sum()) if clean_ok.any() else None})
    return rows
