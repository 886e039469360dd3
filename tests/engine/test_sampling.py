"""How a clip is taken from a video file (``sava.data.Sampling``): the frame fitted to the clip's size
(stretched or centre-cropped) and the frames chosen (spread over the file or a stride apart), as decoded,
recorded in run folders and read back by a resume and by a transfer."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sava.cli import main
from sava.data import Sampling, load_dataset
from sava.data.video_io import load_clip
from sava.errors import DataError, SavaError
from sava.transfer import from_run_folder
from tests.engine.test_data import video_folder  # noqa: F401 -- real H.264 files of the camera classes


def lossless(path: Path, frames: np.ndarray, angle: int = 0, hflip: bool = False, fps=25) -> None:
    """``frames`` (T x H x W x 3 uint8) as H.264 RGB at CRF 0: every value decodes as written. ``angle`` and
    ``hflip`` go into its display matrix: turned ``angle`` degrees counterclockwise for display, then mirrored
    left to right (PyAV's set_display_rotation), as phones and front cameras store footage."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264rgb", rate=fps)
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


def textured(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A smooth random picture (noise on an 8-pixel grid, bilinearly enlarged): scalers agree on it, and
    a view shifted or scaled by a few pixels does not match it."""
    coarse = torch.rand(1, 3, height // 8 + 1, width // 8 + 1, generator=torch.Generator().manual_seed(seed))
    fine = F.interpolate(coarse, size=(height, width), mode="bilinear", align_corners=True)[0]
    return (fine.permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()


def same_view(clip_frame: torch.Tensor, reference: torch.Tensor) -> bool:
    # FFmpeg's scaler and torch's antialiased bilinear differ at edges: compare 4 x 4 means.
    return torch.allclose(F.avg_pool2d(clip_frame, 4), F.avg_pool2d(reference, 4), atol=0.04)


def test_torchvision_presets_resize_as_their_weights_transforms_before_the_centre_crop(tmp_path):
    """R3D-18 was evaluated on the centre 112 x 112 of frames stretched to 128 x 171, MViT on the centre
    224 x 224 of a short side of 256 (their weights' transforms in torchvision): the clips are those views,
    not the whole short side that a plain crop keeps."""
    from sava.models.zoo import TORCHVISION

    image = textured(240, 320)
    lossless(tmp_path / "qvga.mkv", np.stack([image] * 8))  # 2 frames at the presets' 15 or 7.5 fps of 25
    r3d = TORCHVISION["r3d_18"].sampling
    assert r3d.scaled_size((240, 320), (112, 112)) == (128, 171)
    clip = load_clip(tmp_path / "qvga.mkv", 2, (112, 112), r3d)
    # (128 - 112) / 2 = 8 rows; (171 - 112) / 2 = 29.5 columns, which torchvision's centre crop rounds to 30.
    assert same_view(clip[0], resized(image, (128, 171))[:, 8:120, 30:142])
    assert not same_view(load_clip(tmp_path / "qvga.mkv", 2, (112, 112), Sampling("crop"))[0],
                         resized(image, (128, 171))[:, 8:120, 30:142])
    # The short side of 256 at MViT's 224 x 224, checked at a quarter of that (the zoom carries to any size):
    # 180 x 320 covers 64 x 64 at 64 x 113 (113.8 truncated, as torchvision computes the long side).
    wide = textured(180, 320, seed=1)
    lossless(tmp_path / "wide.mkv", np.stack([wide] * 8))
    mvit = TORCHVISION["mvit_v2_s"].sampling
    assert mvit.scaled_size((180, 320), (224, 224)) == (256, 455)
    assert mvit.scaled_size((180, 320), (56, 56)) == (64, 113)
    clip = load_clip(tmp_path / "wide.mkv", 2, (56, 56), mvit)
    assert same_view(clip[0], resized(wide, (64, 113))[:, 4:60, 28:84])
    assert TORCHVISION["s3d"].sampling.scaled_size((240, 320), (224, 224)) == (256, 256)  # stretched square


def test_a_hugging_face_processor_that_resizes_beyond_its_crop_is_followed(tmp_path):
    """ViViT's processor scales the short side to 256 and keeps the centre 224 x 224; a folder saved with such
    a processor (here 40 before 32) gets clips of what that processor itself makes of the same frames."""
    from sava.models import load_model
    from sava.models.huggingface import import_transformers

    pytest.importorskip("transformers")
    transformers = import_transformers()
    config = transformers.VivitConfig(image_size=32, num_frames=8, tubelet_size=[2, 8, 8], hidden_size=32,
                                      num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, num_labels=2)
    folder = tmp_path / "vivit"
    transformers.VivitForVideoClassification(config).save_pretrained(str(folder))
    processor = transformers.VivitImageProcessor(size={"shortest_edge": 40}, crop_size={"height": 32, "width": 32})
    processor.save_pretrained(str(folder))
    model = load_model(f"hf:{folder}")
    assert model.info.sampling.fit == "crop" and model.info.sampling.zoom == (1.25, 1.25)

    image = textured(48, 64)
    lossless(tmp_path / "clip.mkv", np.stack([image] * 8))
    own = transformers.VivitImageProcessor(size={"shortest_edge": 40}, crop_size={"height": 32, "width": 32},
                                           do_rescale=False, offset=False, do_normalize=False)
    expected = own([image], return_tensors="pt")["pixel_values"][0, 0].float() / 255
    clip = load_clip(tmp_path / "clip.mkv", 8, (32, 32), model.info.sampling)
    assert same_view(clip[0], expected)
    assert not same_view(load_clip(tmp_path / "clip.mkv", 8, (32, 32), Sampling("crop"))[0], expected)


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


def torchvision_rate_indices(frames: int, fps: float, rate: float, wanted: int) -> list[int]:
    """The reference: torchvision's VideoClips resampling (float32, as it computes it): floor(frames * rate /
    fps) frames, the k-th being file frame floor(k * fps / rate); the middle ``wanted`` of them."""
    total = int(np.floor(frames * rate / fps))
    picked = (torch.arange(total, dtype=torch.float32) * (fps / rate)).floor().long().tolist()
    first = (total - wanted) // 2
    return picked[first:first + wanted]


@pytest.mark.parametrize("fps, frames", [(30, 30), (25, 30), (10, 20), (Fraction(30000, 1001), 30), (60, 31)])
def test_a_frame_rate_resamples_each_file_as_torchvision_does(tmp_path, fps, frames):
    """A clip at 15 fps: every other frame of 30 fps footage, every 5/3rd of 25 fps, frames repeated from 10
    fps, NTSC's 29.97 a little under 2, each as torchvision picks them, from the middle of the file."""
    path = tmp_path / "ramp.mkv"
    lossless(path, np.stack([np.full((16, 16, 3), 8 * i, np.uint8) for i in range(frames)]), fps=fps)
    clip = load_clip(path, 4, (16, 16), Sampling(rate=15))
    assert [round(v) for v in (clip.mean(dim=(1, 2, 3)) * 255 / 8).tolist()] == torchvision_rate_indices(
        frames, float(fps), 15.0, 4)


def test_a_file_too_short_for_a_rate_says_which_rate_fits(tmp_path):
    lossless(tmp_path / "second.mkv", np.stack([np.full((16, 16, 3), 8 * i, np.uint8) for i in range(30)]), fps=30)
    # 16 frames at 15 fps span 32 frames of 30 fps; 30 frames hold 16 frames at 16 fps.
    with pytest.raises(DataError, match=r"30 frames decode .* fewer than the 32 a clip of 16 frames at 15 fps "
                                        r"\(the file's 30\) needs \(--frame-rate 16 fits it\)"):
        load_clip(tmp_path / "second.mkv", 16, (16, 16), Sampling(rate=15))
    assert load_clip(tmp_path / "second.mkv", 16, (16, 16), Sampling(rate=16)).shape[0] == 16


def test_zoo_presets_take_their_weights_frame_rate_unless_told_otherwise():
    from types import SimpleNamespace

    from sava.models.adapter import sampling_for_files
    from sava.models.zoo import TORCHVISION

    assert {name: preset.sampling.rate for name, preset in TORCHVISION.items()} == {
        "r3d_18": 15, "mc3_18": 15, "r2plus1d_18": 15, "s3d": 15, "mvit_v1_b": 7.5, "mvit_v2_s": 7.5,
        "swin3d_t": 15, "swin3d_s": 15, "swin3d_b": 15}
    r3d = SimpleNamespace(sampling=TORCHVISION["r3d_18"].sampling)
    assert (sampling_for_files(r3d).rate, sampling_for_files(r3d).stride) == (15, None)
    assert (sampling_for_files(r3d, stride=2).rate, sampling_for_files(r3d, stride=2).stride) == (None, 2)
    assert (sampling_for_files(r3d, stride=0).rate, sampling_for_files(r3d, stride=0).stride) == (None, None)
    assert sampling_for_files(r3d, rate=7.5).rate == 7.5
    with pytest.raises(SavaError, match="--frame-stride 2 and --frame-rate 7.5 both say"):
        sampling_for_files(r3d, stride=2, rate=7.5)


def test_every_sampling_reads_back_as_recorded_and_an_older_record_as_it_was_sampled():
    """run.json and sava train files hold ``record()``, through JSON; one written before a field existed reads
    that field's old behaviour."""
    for sampling in (Sampling(), Sampling("crop", 3, (1.25, 1.5)), Sampling(rate=7.5), Sampling(rate=15)):
        assert Sampling.recorded(json.loads(json.dumps(sampling.record()))) == sampling
    assert Sampling.recorded({"fit": "crop", "frame_stride": 2}) == Sampling("crop", 2)


def test_a_sampling_that_means_nothing_is_refused():
    with pytest.raises(DataError, match="unknown frame fit 'zoom'; choose one of stretch, crop"):
        Sampling("zoom")
    for stride in (0, -2, 1.5):
        with pytest.raises(DataError, match="whole number of frames, at least 1"):
            Sampling(stride=stride)
    for rate in (0, -15, float("nan"), float("inf"), 5000, "15", True):
        with pytest.raises(DataError, match="a frame rate is a number of frames per second above 0"):
            Sampling(rate=rate)
    with pytest.raises(DataError, match=r"either at a frame rate \(15 fps\) or with a frame stride \(2\)"):
        Sampling(stride=2, rate=15)


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


def test_resize_is_recorded_as_a_zoom_kept_by_a_resume_and_refused_below_the_clip(video_folder, tmp_path,  # noqa: F811
                                                                                 capsys):
    root, _ = video_folder
    out = tmp_path / "resized"
    assert attack(root, out, "--resize", "64", "80") == 0  # two numbers: stretched to them, as torchvision's
    recorded = json.loads((out / "run.json").read_text())
    assert (recorded["fit"], recorded["zoom"]) == ("stretch", [64 / 48, 80 / 48])
    assert "48 x 48, stretch: 64 x 80, centre kept)" in capsys.readouterr().out
    assert attack(root, out) == 0
    assert "2 of 2 videos already done" in capsys.readouterr().err
    assert attack(root, out, "--resize", "60") == 2  # one number: a short side, the aspect ratio kept
    assert "fit: 'stretch' then, 'crop' now; zoom: [1.3333333333333333, 1.6666666666666667] then, [1.25, 1.25]" \
        in capsys.readouterr().err
    assert attack(root, tmp_path / "small", "--resize", "40", "64") == 2
    assert "--resize 40 x 64 is smaller than the clip's 48 x 48" in capsys.readouterr().err


def test_a_folder_begun_before_sampling_was_recorded_resumes_as_it_was_sampled(video_folder, tmp_path,  # noqa: F811
                                                                               capsys):
    root, _ = video_folder
    out = tmp_path / "older"
    assert attack(root, out) == 0
    settings = json.loads((out / "run.json").read_text())
    for key in ("fit", "frame_stride", "zoom"):  # as sava wrote run.json before these settings existed
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


def test_a_frame_rate_is_recorded_kept_by_a_resume_and_excludes_a_stride(video_folder, tmp_path, capsys):  # noqa: F811
    root, _ = video_folder  # files of 16 frames at 25 fps: 8 frames at 12.5 fps are every other one
    out = tmp_path / "rate"
    assert attack(root, out, "--frame-rate", "12.5", "--clip-frames", "8") == 0
    assert json.loads((out / "run.json").read_text())["frame_rate"] == 12.5
    assert "(8 frames at 12.5 fps, the middle of each file, 48 x 48, stretch)" in capsys.readouterr().out
    assert attack(root, out, "--clip-frames", "8") == 0  # no options: the folder's own sampling
    assert "2 of 2 videos already done" in capsys.readouterr().err
    assert attack(root, out, "--clip-frames", "8", "--frame-rate", "10") == 2
    assert "frame_rate: 12.5 then, 10.0 now" in capsys.readouterr().err
    for wrong, message in ((["--frame-rate", "12.5", "--frame-stride", "2"], "not allowed with argument"),
                           (["--frame-rate", "0"], "a frame rate lies above 0")):
        with pytest.raises(SystemExit):
            attack(root, tmp_path / "never", *wrong)
        assert message in capsys.readouterr().err


def test_clip_options_on_a_bundled_set_are_said_to_be_ignored_and_the_real_clip_recorded(tmp_path, capsys):
    out = tmp_path / "bundled"
    assert main(["attack", "--no-progress", "--num-videos", "1", "--iters", "1", "--clip-frames", "4", "--fit",
                 "crop", "--out", str(out)]) == 0
    assert "--clip-frames, --fit sample video files; the bundled set 'camera' holds its own clips" in \
        capsys.readouterr().err
    recorded = json.loads((out / "run.json").read_text())
    assert (recorded["clip_frames"], recorded["size"]) == (16, [48, 48]) and "fit" not in recorded
