"""``report.html``: written with the run's summary, every image and link it names present, the samples'
GIFs animated and their heatmaps where the perturbation is; and, where Debian's Chromium is installed,
rendered by a real browser with every image loaded."""

from __future__ import annotations

import json
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pytest
from PIL import Image

from sava.cli import main
from sava.report import FRAME_MS, write_report


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.images, self.links, self.text, self.scripts = [], [], [], []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(unquote(attrs["src"]))
        elif tag == "a":
            self.links.append(unquote(attrs["href"]))
        elif tag == "script":
            self._in_script = True
            assert "src" not in attrs, "the page loads no script from elsewhere"

    def handle_endtag(self, tag):
        self._in_script = self._in_script and tag != "script"

    def handle_data(self, data):
        (self.scripts if self._in_script else self.text).append(data)


def parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("report") / "run"
    assert main(["attack", "--no-progress", "--model", "tsn-digits", "--num-videos", "8", "--iters", "30",
                 "--save-videos", "--out", str(out)]) == 0
    return out


def test_every_image_and_link_the_report_names_exists(run_folder):
    page = parse(run_folder / "report.html")
    metrics = json.loads((run_folder / "metrics.json").read_text())
    samples = [json.loads(line) for line in (run_folder / "report" / "samples.jsonl").read_text().splitlines()]
    assert 1 <= len(samples) <= 6 and len(page.images) == 3 * len(samples)
    for target in page.images + page.links:
        assert not target.startswith(("http:", "https:", "//")), target
        assert (run_folder / target).is_file(), f"report.html names {target}, which is not in the run folder"
    assert any(link.startswith("perturbations/") for link in page.links)
    assert any(link.startswith("adversarial/") for link in page.links)  # --save-videos
    text = " ".join(page.text)
    assert f"{metrics['summary']['fooling_rate']:.1%}" in text
    assert f"{metrics['summary']['mean_ssim_successes']:.4f}" in text


def timeline(path: Path) -> list[np.ndarray]:
    """A GIF's frames, one per clip frame: Pillow stores a run of identical frames once, its durations added."""
    gif, frames = Image.open(path), []
    for index in range(gif.n_frames):
        gif.seek(index)
        frames += [np.asarray(gif.convert("RGB"), np.int16)] * round(gif.info["duration"] / FRAME_MS)
    return frames


def test_the_sample_clips_are_animated_and_the_heatmap_marks_the_perturbed_pixels(run_folder):
    sample = json.loads((run_folder / "report" / "samples.jsonl").read_text().splitlines()[0])
    clean, adversarial = (timeline(run_folder / sample["images"][kind]) for kind in ("clean.gif",
                                                                                     "adversarial.gif"))
    assert len(clean) == len(adversarial) == 16  # the digits clips' frames
    changed = [np.abs(c - a).max() > 0 for c, a in zip(clean, adversarial)]
    assert changed[sample["frames"][0]] and not any(c for i, c in enumerate(changed) if i not in sample["frames"])
    heat = np.asarray(Image.open(run_folder / sample["images"]["change.png"]).convert("RGB"))
    assert heat.max() == 255 and sample["largest_change"] > 0  # scaled to its own maximum


def test_a_resumed_run_rewrites_the_report_without_repeating_samples(run_folder, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run_folder, copy)
    before = (copy / "report" / "samples.jsonl").read_text()
    (copy / "report.html").unlink()
    assert main(["attack", "--no-progress", "--model", "tsn-digits", "--num-videos", "8", "--iters", "30",
                 "--save-videos", "--out", str(copy)]) == 0
    assert (copy / "report" / "samples.jsonl").read_text() == before
    assert len(parse(copy / "report.html").images) == len(parse(run_folder / "report.html").images)


def test_names_from_the_data_are_escaped(tmp_path):
    hostile = "<script>alert(1)</script>"
    (tmp_path / "metrics.json").write_text(json.dumps({
        "model": hostile, "data": "d", "settings": {"method": hostile}, "summary": {"videos": 1},
        "skipped_files": [{"video_id": hostile, "reason": f"cannot decode {hostile}"}]}))
    page = parse(write_report(tmp_path))
    assert "alert(1)" not in " ".join(page.scripts)
    assert hostile in " ".join(page.text)  # shown as text


def _chromium() -> str | None:
    return next((found for name in ("chromium", "chromium-browser", "google-chrome")
                 if (found := shutil.which(name))), None)


@pytest.mark.skipif(_chromium() is None, reason="no Chromium here (Debian: apt-get install chromium)")
def test_a_real_browser_renders_the_report_with_every_image_loaded(run_folder, tmp_path):
    browser = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
               "--virtual-time-budget=5000", "--window-size=1200,1600"]
    url = (run_folder / "report.html").resolve().as_uri()
    dom = subprocess.run([*browser, "--dump-dom", url], capture_output=True, text=True, timeout=120).stdout
    images = len(parse(run_folder / "report.html").images)
    assert f'data-images-loaded="{images}/{images}"' in dom, dom[:500]
    shot = tmp_path / "report.png"
    subprocess.run([*browser, f"--screenshot={shot}", url], capture_output=True, timeout=120, check=True)
    pixels = np.asarray(Image.open(shot).convert("L"), np.float32)
    assert pixels.shape == (1600, 1200) and pixels.std() > 10  # a page with text and pictures, not a blank
