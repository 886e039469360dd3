"""The run folder ``sava attack`` writes.

    run/
      metrics.json          settings, model (and how it was fed: layout, mean, std, weights), data, summary
                            (and skipped files)
      run.json              the settings (a resumed run must match them)
      videos.jsonl          one JSON line per video, written as each finishes (the manifest)
      perturbations/ID.safetensors   flow (k x 2 x H x W), noise (k x C x H x W),
                            frames (k, int64); metadata: model, clip shape, settings
      adversarial/ID.mkv    with --save-videos: the adversarial clip, lossless 8-bit RGB
      preview.png           clean frame | adversarial frame | amplified difference
      report.html           summary, sample videos side by side (report/: their GIFs and heatmaps)
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch

from . import __version__
from .files import safe_name, save_tensors_atomic, write_atomic
from .metrics import VideoResult
from .report import SampleWriter

PREVIEW_ROWS = 6
DIFF_GAIN = 10.0


class RunWriter:
    """Writes one process's videos into a run folder; ``manifest`` names its
    manifest file (processes of a sharded run each have their own)."""

    def __init__(self, folder: str | Path, meta: dict, manifest: str = "videos.jsonl", preview: bool = True,
                 save_videos: bool = False):
        self.folder = Path(folder)
        (self.folder / "perturbations").mkdir(parents=True, exist_ok=True)
        if save_videos:
            (self.folder / "adversarial").mkdir(exist_ok=True)
        self.meta = meta
        self.lines = open(self.folder / manifest, "a", encoding="utf-8")
        self.previews: list[np.ndarray] = []
        self.preview, self.save_videos = preview, save_videos
        # The report's samples come from the first process only (one writer for report/samples.jsonl).
        self.samples = SampleWriter(self.folder) if preview else None

    def add(self, result: VideoResult, clip: torch.Tensor | None = None, extra: dict | None = None) -> None:
        """Write the video's files, then its manifest line (so a line always points at complete files)."""
        record = result.record() | (extra or {})
        if result.attacked:
            path = self.folder / "perturbations" / f"{safe_name(result.video_id)}.safetensors"
            record["perturbation"] = str(path.relative_to(self.folder))
            self._save_perturbation(path, result, clip)
            preview = self.preview and len(self.previews) < PREVIEW_ROWS and result.success
            sample = self.samples is not None and self.samples.wanted(result.success)
            if clip is not None and (self.save_videos or preview or sample):
                from .transfer import replay  # transfer reads run folders through this module

                adversarial = replay(clip, result)  # once, for every output below that shows it
                if self.save_videos:
                    record["adversarial_video"] = self._save_video(result, adversarial)
                if preview:
                    self.previews.append(_preview_row(clip, adversarial, result))
                if sample:
                    files = {"perturbation": record["perturbation"]} | (
                        {"adversarial video": record["adversarial_video"]} if self.save_videos else {})
                    self.samples.add(result, clip, adversarial, safe_name(result.video_id), files)
        self.write_record(record)

    def write_record(self, record: dict) -> None:
        self.lines.write(json.dumps(record) + "\n")
        self.lines.flush()

    def _save_video(self, result: VideoResult, adversarial: torch.Tensor) -> str:
        from .data.video_io import write_video

        path = self.folder / "adversarial" / f"{safe_name(result.video_id)}.mkv"
        tmp = path.with_name("tmp-" + path.name)
        write_video(tmp, adversarial, lossless=True)
        os.replace(tmp, path)
        return str(path.relative_to(self.folder))

    def _save_perturbation(self, path: Path, result: VideoResult, clip: torch.Tensor | None) -> None:
        k = len(result.frames)
        tensors = {"frames": torch.tensor(result.frames, dtype=torch.int64)}
        if result.flow is not None:
            tensors["flow"] = result.flow.contiguous()
        if result.noise is not None:
            tensors["noise"] = result.noise.contiguous()
        metadata = {
            "sava_version": __version__,
            "video_id": result.video_id,
            "model": self.meta.get("model", ""),
            "clip_shape": json.dumps(list(clip.shape) if clip is not None else None),
            "perturbed_frames": str(k),
            "label": str(result.label),
            "success": json.dumps(result.success),
            "settings": json.dumps(self.meta.get("settings", {})),
        }
        save_tensors_atomic(tensors, path, metadata)

    def close(self, summary: dict | None = None, extra: dict | None = None) -> None:
        """Close the manifest, write the previews and, when given, the run's summary (``metrics.json``)."""
        self.lines.close()
        if summary is not None:
            payload = dict(self.meta) | {"summary": summary} | (extra or {})
            write_atomic(self.folder / "metrics.json", json.dumps(payload, indent=2))
        if self.previews:
            from PIL import Image

            Image.fromarray(np.concatenate(self.previews, axis=0)).save(self.folder / "preview.png")


def _preview_row(clip: torch.Tensor, adversarial: torch.Tensor, result: VideoResult) -> np.ndarray:
    """Clean frame, adversarial frame and the difference amplified, side by
    side, for the first perturbed frame, upscaled so a person can see it."""
    t = result.frames[0]
    clean, adv = clip[t], adversarial[t]
    diff = (0.5 + DIFF_GAIN * (adv - clean)).clamp(0, 1)
    row = torch.cat([clean, adv, diff], dim=-1)
    if row.shape[0] == 1:
        row = row.expand(3, -1, -1)
    scale = max(1, 192 // clip.shape[-2])
    row = row.repeat_interleave(scale, dim=-2).repeat_interleave(scale, dim=-1)
    return (row.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
