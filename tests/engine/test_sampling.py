"""How a clip is taken from a video file (``sava.data.Sampling``): the frame fitted to the clip's size
(stretched or centre-cropped) and the frames chosen (spread over the file or a stride apart), as decoded,
recorded in run folders and read back by a resume and by a transfer."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sava.cli import main
from sava.data import Sampling, load_dataset
from sava.data.video_io import load_clip
from sava.errors import DataError
from sava.transfer import from_run_folder
from tests.engine.test_data import video_folder  # noqa: F401 -- real H.264 files of the camera classes


def lossless(path: Path, frames: np.ndarray, angle: int = 0, hflip: bool = False) -> None:
    """``frames`` (T x H x W x 3 uint8) as H.264 RGB at CRF 0: every value decodes as written. ``angle`` and
    ``hflip`` go into its display matrix: turned ``angle`` degrees counterclockwise for display, then mirrored
    left to right (PyAV's set_display_rotation), as phones and front cameras store footage."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264rgb", rate=25)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "rgb24"
        stream.options = {"crf": "0"}
        if angle or hflip:
            stream.set_display_rotation(angle, hflip=hflip)
        for image in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")))
        container.mux(stream.encode())


def banded(height: int, width: int) -> np.ndarray:
    """A wide frame: red left quarter, blue right quarter, a green middle with a white square at its centre."""
    image = np.zeros((height, width, 3), np.uint8)
    image[:, : width // 4] = [255, 0, 0]
    image[:, width // 4: 3 * width // 4] = [0, 255, 0]
    image[:, 3 * width // 4:] = [0, 0, 255]
    image[height // 2 - 8: height // 2 + 8, width // 2 - 8: width // 2 + 8] = 255
    return image


def resized(image: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """The reference: torch's antialiased bilinear resize of a picture given as H x W x 3 uint8."""
    picture = torch.from_numpy(image).permute(2, 0, 1).float()[None] / 255
    return F.interpolate(picture, size=size, mode="bilinear", antialias=True, align_corners=False)[0]


@pytest.mark.parametrize("fit", ["stretch", "crop"])
def test_a_wide_frame_is_stretched_whole_or_cropped_to_its_centre(tmp_path, fit):
    """A 2:1 frame into a square clip: stretch keeps all of it (distorted), crop keeps its centre square
    (the red and blue bands fall outside), each as a resize of that region would give it."""
    image = banded(64, 128)
    lossless(tmp_path / "wide.mkv", np.stack([image] * 4))
    clip = load_clip(tmp_path / "wide.mkv", 2, (32, 32), Sampling(fit))
    region = image if fit == "stretch" else image[:, 32:96]
    reference = resized(region, (32, 32))
    # FFmpeg's bicubic scaler and torch's bilinear differ at edges: compare 4 x 4 means, and the colours.
    assert torch.allclose(F.avg_pool2d(clip[0], 4), F.avg_pool2d(reference, 4), atol=0.06)
    red_share = ((clip[0, 0] > 0.5) & (clip[0, 1] < 0.5)).float().mean().item()  # red, not the white square
    assert red_share == pytest.approx(0.25, abs=0.04) if fit == "stretch" else red_share == 0.0


def test_a_tall_turned_frame_is_cropped_after_it_is_turned(tmp_path):
    """A phone's portrait clip (stored on its side) cropped to a square keeps the middle of the upright picture."""
    upright = banded(64, 128).transpose(1, 0, 2).copy()  # 128 tall, 64 wide: bands top and bottom
    stored = np.ascontiguousarray(np.rot90(upright, -1))  # the display matrix turns it back
    lossless(tmp_path / "phone.mkv", np.stack([stored] * 3), angle=90)
    clip = load_clip(tmp_path / "phone.mkv", 2, (32, 32), Sampling("crop"))
    reference = resized(upright[32:96], (32, 32))
    assert torch.allclose(F.avg_pool2d(clip[0], 4), F.avg_pool2d(reference, 4), atol=0.06)


def ramp(path: Path, frames: int) -> None:
    """Frame i a flat grey of level 8 i."""
    lossless(path, np.stack([np.full((16, 16, 3), 8 * i, np.uint8) for i in range(frames)]))


def test_a_stride_takes_consecutive_frames_from_the_middle_of_the_file(tmp_path):
    ramp(tmp_path / "ramp.mkv", 30)
    levels = lambda clip: [round(v) for v in (clip.mean(dim=(1, 2, 3)) * 255 / 8).tolist()]  # noqa: E731
    # 4 frames 3 apart span 10 frames; 30 leave 20 outside, 10 on each side: frames 10, 13, 16, 19.
    assert levels(load_clip(tmp_path / "ramp.mkv", 4, (16, 16), Sampling(stride=3))) == [10, 13, 16, 19]
    assert levels(load_clip(tmp_path / "ramp.mkv", 4, (16, 16))) == [0, 10, 19, 29]  # spread: first to last
    assert levels(load_clip(tmp_path / "ramp.mkv", 10, (16, 16), Sampling(stride=3))) == list(range(1, 29, 3))
    with pytest.raises(DataError, match=r"30 frames decode .* fewer than the 31 a clip of 16 frames 2 apart "
                                        r"needs \(--frame-stride 1 fits it\)"):
        load_clip(tmp_path / "ramp.mkv", 16, (16, 16), Sampling(stride=2))


def test_a_sampling_that_means_nothing_is_refused():
    with pytest.raises(DataError, match="unknown frame fit 'zoom'; choose one of stretch, crop"):
        Sampling("zoom")
    for stride in (0, -2, 1.5):
        with pytest.raises(DataError, match="whole number of frames, at least 1"):
            Sampling(stride=stride)


def attack(root: Path, out: Path, *options: str) -> int:
    return main(["attack", "--no-progress", "--model", "c3d-camera", "--data", str(root), "--num-videos", "2",
                 "--iters", "1", "--out", str(out), *options])


def test_the_sampling_is_recorded_kept_by_a_resume_and_used_by_a_transfer(video_folder, tmp_path,  # noqa: F811
                                                                          capsys):
    root, _ = video_folder
    out = tmp_path / "cropped"
    assert attack(root, out, "--fit", "crop", "--frame-stride", "1", "--clip-frames", "8") == 0
    recorded = json.loads((out / "run.json").read_text())
    assert (recorded["fit"], recorded["frame_stride"]) == ("crop", 1)
    assert f"deepsava on c3d-camera / {root} (8 frames 1 apart, 48 x 48, crop)" in capsys.readouterr().out
    assert attack(root, out, "--clip-frames", "8") == 0  # no options: the folder's own sampling
    assert "2 of 2 videos already done" in capsys.readouterr().err
    assert attack(root, out, "--clip-frames", "8", "--fit", "stretch") == 2
    assert "fit: 'crop' then, 'stretch' now" in capsys.readouterr().err
    # A transfer replays the perturbations on the clips as the attack decoded them.
    source = from_run_folder(out, log=lambda line: None)
    files = load_dataset(str(root), "test", 8, (48, 48), Sampling("crop", 1))
    index = {files.video_id(i): i for i in range(len(files))}
    for record, video in zip((json.loads(line) for line in (out / "videos.jsonl").read_text().splitlines()),
                             source.videos):
        assert torch.equal(video, files[index[record["video_id"]]][1])


def test_a_folder_begun_before_sampling_was_recorded_resumes_as_it_was_sampled(video_folder, tmp_path,  # noqa: F811
                                                                               capsys):
    root, _ = video_folder
    out = tmp_path / "older"
    assert attack(root, out) == 0
    settings = json.loads((out / "run.json").read_text())
    for key in ("fit", "frame_stride"):  # as sava wrote run.json before these settings existed
        del settings[key]
    (out / "run.json").write_text(json.dumps(settings))
    capsys.readouterr()
    assert attack(root, out) == 0
    assert "2 of 2 videos already done" in capsys.readouterr().err
    assert attack(root, out, "--fit", "crop") == 2
    assert "fit: 'stretch' then, 'crop' now" in capsys.readouterr().err


def test_frame_stride_zero_spreads_the_clip_and_negative_is_refused(video_folder, tmp_path, capsys):  # noqa: F811
    root, _ = video_folder
    assert attack(root, tmp_path / "spread", "--frame-stride", "0") == 0
    assert json.loads((tmp_path / "spread" / "run.json").read_text())["frame_stride"] is None
    with pytest.raises(SystemExit):
        attack(root, tmp_path / "never", "--frame-stride", "-1")
    assert "a frame stride cannot be negative, got -1" in capsys.readouterr().err


def test_clip_options_on_a_bundled_set_are_said_to_be_ignored_and_the_real_clip_recorded(tmp_path, capsys):
    out = tmp_path / "bundled"
    assert main(["attack", "--no-progress", "--num-videos", "1", "--iters", "1", "--clip-frames", "4", "--fit",
                 "crop", "--out", str(out)]) == 0
    assert "--clip-frames, --fit sample video files; the bundled set 'camera' holds its own clips" in \
        capsys.readouterr().err
    recorded = json.loads((out / "run.json").read_text())
    assert (recorded["clip_frames"], recorded["size"]) == (16, [48, 48]) and "fit" not in recorded
