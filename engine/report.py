"""``report.html``: the run folder as a person reads it.

The attack writes, for a sample of the videos it attacked, the clean and the adversarial clip as animated
GIFs and a heatmap of the perturbation into ``report/`` (``SampleWriter``, as each video finishes), with one
JSON line per sample in ``report/samples.jsonl``. When the run's summary is written (``merge``), so is
``report.html`` beside it: the summary table, the samples side by side with each perturbed frame's SSIM,
and links to every file. The page is one file with its styles inline and no script or font from the
network; its images are the files in ``report/``. A small inline script marks ``data-images-loaded`` on
the page body once the browser has loaded them (the browser test reads it).
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from urllib.parse import quote

import numpy as np
import torch

from .files import read_records, write_atomic

REPORT_DIR = "report"
SAMPLES = "samples.jsonl"
SUCCESS_SAMPLES, FAILURE_SAMPLES = 4, 2  # shown per run: fooled videos first, then some that held
MIN_SIDE = 128  # GIF frames are upscaled (nearest) to at least this many pixels high
FRAME_MS = 125


def _scale(height: int) -> int:
    """The whole factor that brings ``height`` pixels to at least ``MIN_SIDE``."""
    return max(1, -(-MIN_SIDE // height))


def _frames_u8(clip: torch.Tensor) -> list[np.ndarray]:
    """``T x C x H x W`` in [0, 1] -> T RGB uint8 images, upscaled for a person to see."""
    clip = clip.detach().float().cpu().clamp(0, 1)
    if clip.shape[1] == 1:
        clip = clip.expand(-1, 3, -1, -1)
    scale = _scale(clip.shape[-2])
    clip = clip.repeat_interleave(scale, dim=-2).repeat_interleave(scale, dim=-1)
    return list((clip.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8))


def _save_gif(frames: list[np.ndarray], path: Path) -> None:
    from PIL import Image

    images = [Image.fromarray(frame) for frame in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=FRAME_MS, loop=0)


def _heat_colours(values: np.ndarray) -> np.ndarray:
    """[0, 1] -> RGB uint8 along black, red, yellow, white (a perceptual ramp without matplotlib)."""
    ramp = np.array([[0, 0, 0], [180, 20, 20], [250, 200, 40], [255, 255, 255]], dtype=np.float64)
    position = np.clip(values, 0, 1) * (len(ramp) - 1)
    low = np.minimum(position.astype(int), len(ramp) - 2)
    weight = (position - low)[..., None]
    return ((1 - weight) * ramp[low] + weight * ramp[low + 1]).round().astype(np.uint8)


def _save_heatmap(clean: torch.Tensor, adversarial: torch.Tensor, frames: list[int], path: Path) -> float:
    """Per pixel, the largest change over the perturbed frames (mean over channels), scaled to its own
    maximum; returns that maximum (in pixel values, 0..1) for the caption."""
    from PIL import Image

    change = (adversarial[frames] - clean[frames]).abs().mean(dim=1).amax(dim=0).float().cpu()
    peak = float(change.max())
    image = _heat_colours((change / peak).numpy() if peak > 0 else change.numpy())
    scale = _scale(image.shape[0])
    image = image.repeat(scale, axis=0).repeat(scale, axis=1)
    Image.fromarray(image).save(path)
    return peak


class SampleWriter:
    """Writes the report's media for the first fooled and the first unfooled videos of a run (a resumed
    run counts the samples already there)."""

    def __init__(self, folder: Path):
        self.folder = Path(folder) / REPORT_DIR
        self.folder.mkdir(parents=True, exist_ok=True)
        self.successes = self.failures = 0
        for sample in read_samples(folder):
            if sample["success"]:
                self.successes += 1
            else:
                self.failures += 1

    def wanted(self, success: bool) -> bool:
        return self.successes < SUCCESS_SAMPLES if success else self.failures < FAILURE_SAMPLES

    def add(self, result, clip: torch.Tensor, adversarial: torch.Tensor, name: str, files: dict) -> None:
        stem = self.folder / name
        _save_gif(_frames_u8(clip), stem.with_name(f"{name}-clean.gif"))
        _save_gif(_frames_u8(adversarial), stem.with_name(f"{name}-adversarial.gif"))
        peak = _save_heatmap(clip, adversarial, list(result.frames), stem.with_name(f"{name}-change.png"))
        sample = {"video_id": result.video_id, "label": result.label, "prediction": result.final_pred,
                  "success": result.success, "iterations": result.iterations, "frames": list(result.frames),
                  "ssim": list(result.ssim), "largest_change": peak, "files": files,
                  "images": {kind: f"{REPORT_DIR}/{name}-{kind}" for kind in
                             ("clean.gif", "adversarial.gif", "change.png")}}
        with open(self.folder / SAMPLES, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(sample) + "\n")
        if result.success:
            self.successes += 1
        else:
            self.failures += 1


def read_samples(folder: Path) -> list[dict]:
    """The samples written so far, read as the manifest is (one JSON record per video): a line cut by a crash
    is cut off the file, so the next sample appended starts a line of its own, and other damaged lines are
    left out."""
    return read_records(Path(folder) / REPORT_DIR / SAMPLES)


# --------------------------------------------------------------------------- the page
_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; max-width: 72em; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
td, th { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
.sample img { image-rendering: pixelated; display: block; }
.fooled { color: #0a6d2a; font-weight: 600; } .held { color: #a33; font-weight: 600; }
.note { color: #666; font-size: 0.9em; }
"""

# Marks the body once every image has loaded (or failed): the browser test reads the attribute.
_SCRIPT = """
window.addEventListener("load", function () {
  var images = Array.prototype.slice.call(document.images);
  var loaded = images.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  document.body.setAttribute("data-images-loaded", loaded + "/" + images.length);
});
"""

_SUMMARY_ROWS = [
    ("videos", "videos decoded", "{}"),
    ("attacked", "attacked (clean video classified right)", "{}"),
    ("successes", "fooled", "{}"),
    ("fooling_rate", "fooling rate", "{:.1%}"),
    ("ani", "mean iterations of the fooled", "{:.1f}"),
    ("mean_ssim_successes", "mean SSIM of the perturbed frames, fooled videos", "{:.4f}"),
    ("mean_ssim", "mean SSIM of the perturbed frames, every attacked video", "{:.4f}"),
    ("min_ssim", "lowest SSIM of a perturbed frame", "{:.4f}"),
    ("frames_per_video", "perturbed frames per video", "{:.2f}"),
    ("seconds", "seconds", "{:.1f}"),
    ("videos_per_second", "videos per second", "{:.2f}"),
]


def _link(target: str, text: str | None = None) -> str:
    return f'<a href="{html.escape(quote(target))}">{html.escape(text or target)}</a>'


def _image(target: str, alt: str) -> str:
    return f'<img src="{html.escape(quote(target))}" alt="{html.escape(alt)}">'


def _summary_table(summary: dict) -> str:
    rows = []
    for key, label, form in _SUMMARY_ROWS:
        value = summary.get(key)
        shown = "-" if value is None else form.format(value)
        rows.append(f"<tr><th>{html.escape(label)}</th><td>{shown}</td></tr>")
    return "<table>" + "".join(rows) + "</table>"


def _sample_block(sample: dict, classes: list[str] | None) -> str:
    def name(label):
        if label is None:
            return "-"
        return html.escape(classes[label]) if classes and 0 <= label < len(classes) else str(label)

    outcome = ('<span class="fooled">fooled</span>' if sample["success"] else '<span class="held">held</span>')
    ssim = "".join(f"<tr><td>{frame}</td><td>{value:.4f}</td></tr>"
                   for frame, value in zip(sample["frames"], sample["ssim"]))
    links = " &middot; ".join(_link(path, kind) for kind, path in sample.get("files", {}).items())
    images = sample["images"]
    return (
        f'<h3>{html.escape(sample["video_id"])}: {outcome}</h3>'
        f'<p>label {name(sample["label"])}, adversarial prediction {name(sample.get("prediction"))}, '
        f'{sample["iterations"]} iterations. {links}</p>'
        '<table class="sample"><tr><th>clean</th><th>adversarial</th><th>change (largest over the perturbed '
        'frames, scaled to its maximum)</th><th>perturbed frame: SSIM</th></tr><tr>'
        f'<td>{_image(images["clean.gif"], "clean clip")}</td>'
        f'<td>{_image(images["adversarial.gif"], "adversarial clip")}</td>'
        f'<td>{_image(images["change.png"], "heatmap of the perturbation")}'
        f'<span class="note">maximum {sample["largest_change"]:.4f} of the pixel range</span></td>'
        f'<td><table><tr><th>frame</th><th>SSIM</th></tr>{ssim}</table></td></tr></table>'
    )


def write_report(folder: Path) -> Path:
    """``report.html`` from the folder's ``metrics.json`` and report samples; returns its path."""
    folder = Path(folder)
    metrics = json.loads((folder / "metrics.json").read_text())
    summary, settings = metrics.get("summary", {}), metrics.get("settings", {})
    samples = sorted(read_samples(folder), key=lambda s: not s["success"])
    title = f"sava run: {metrics.get('model', '?')} on {metrics.get('data', '?')}"
    skipped = metrics.get("skipped_files", [])
    parts = [
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">",
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style><script>{_SCRIPT}</script></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<p>method {html.escape(str(settings.get('method', '?')))}; "
        f"{'completed' if metrics.get('completed', True) else 'not completed (resume with the same command)'}; "
        f"files: {_link('metrics.json')} &middot; {_link('videos.jsonl')} &middot; {_link('run.json')}"
        + (f" &middot; {_link('preview.png')}" if (folder / 'preview.png').is_file() else "") + "</p>",
        "<h2>Summary</h2>", _summary_table(summary),
        "<h2>Settings</h2><table>" + "".join(
            f"<tr><th>{html.escape(str(key))}</th><td>{html.escape(json.dumps(value))}</td></tr>"
            for key, value in settings.items()) + "</table>",
    ]
    if skipped:
        parts.append("<h2>Skipped files</h2><table>" + "".join(
            f"<tr><td>{html.escape(item['video_id'])}</td><td>{html.escape(item['reason'])}</td></tr>"
            for item in skipped) + "</table>")
    parts.append(f"<h2>Sample videos ({len(samples)})</h2>")
    if not samples:
        parts.append("<p class=\"note\">No video was attacked.</p>")
    parts += [_sample_block(sample, metrics.get("classes")) for sample in samples]
    parts.append("</body></html>")
    path = folder / "report.html"
    write_atomic(path, "\n".join(parts))
    return path
