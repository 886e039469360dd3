"""``sava train`` on models and footage sava does not bundle: a user factory on a folder of real video files
(labels matched to the model's class names, a held-out test share, a test folder, broken files skipped), a
small Hugging Face VideoMAE, and torchvision's R3D-18 where torchvision imports. The trained file loads back
as ``--model FILE`` and as ``--model SPEC --weights FILE``, checked against the model's own code. Resumes:
the decoded clips are reused, other clips are refused. Bad requests stop before the run folder is made."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from sava.cli import main
from sava.errors import ModelError, SavaError
from sava.models import load_model
from sava.models.loading import load_named_model
from sava.train import TrainConfig
from sava.train.data import training_data
from tests.device import DEVICE
from tests.engine.test_classes import write_clip

torch.set_num_threads(2)
BRIGHTNESS = "tests.engine.toy_models:brightness_named"  # output 0 is "dark": the reverse of sorted folder order
CLIP = ["--clip-frames", "4", "--size", "32", "32"]


@pytest.fixture(scope="module")
def footage(tmp_path_factory) -> Path:
    """``bright`` and ``dark`` class folders of five real MPEG-4 clips each, and a test folder of two ``dark``
    clips of other levels."""
    root = tmp_path_factory.mktemp("footage")
    for name, levels in (("bright", (170, 185, 200, 215, 230)), ("dark", (25, 40, 55, 70, 85))):
        (root / "train" / name).mkdir(parents=True)
        for level in levels:
            write_clip(root / "train" / name / f"clip{level}.avi", level)
    (root / "test" / "dark").mkdir(parents=True)
    for level in (30, 65):
        write_clip(root / "test" / "dark" / f"clip{level}.avi", level)
    return root


def inverted_weights(folder: Path) -> Path:
    """Brightness weights that get every clip wrong: a negative scale swaps dark and bright."""
    path = folder / "inverted.safetensors"
    save_file({"scale": torch.tensor(-20.0)}, str(path))
    return path


def three_of_each(footage: Path, data: Path) -> Path:
    """A training folder of its own (a test may change it): the first three clips of each class."""
    for name in ("bright", "dark"):
        (data / name).mkdir(parents=True)
        for clip in sorted((footage / "train" / name).iterdir())[:3]:
            (data / name / clip.name).write_bytes(clip.read_bytes())
    return data


def train(*options: str) -> int:
    return main(["train", "--no-progress", "--workers", "0", *options])


def test_a_factory_model_learns_its_own_class_order_and_its_file_loads_back(footage, tmp_path, capsys):
    out = tmp_path / "run"
    assert train("--model", BRIGHTNESS, "--weights", str(inverted_weights(tmp_path)), "--data",
                 str(footage / "train"), *CLIP, "--fit", "crop", "--frame-stride", "1", "--defence", "none",
                 "--epochs", "3", "--batch-size", "4", "--lr", "5", "--out", str(out)) == 0
    printed = capsys.readouterr()
    assert "matched to it by name" in printed.err  # the folders' order is not the model's
    # Labels follow the model's names: training must turn the scale positive (sorted-order labels would have
    # kept it negative), and the clean accuracy it reports is what the formula gives on the held-out clips.
    trained = load_file(str(out / "model.safetensors"))
    assert trained.keys() == {"scale"} and float(trained["scale"]) > 0
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [entry["epoch"] for entry in log] == [1, 2, 3] and log[-1]["test_accuracy"] == 1.0
    assert (out / "classes.txt").read_text().split() == ["dark", "bright"]
    assert f"sava attack --model {out / 'model.safetensors'}" in printed.out
    assert (out / "training.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"  # loss and accuracy per epoch

    from_file = load_model(str(out / "model.safetensors"))
    assert from_file.classes == ["dark", "bright"] and from_file.info.clip_shape == (4, 3, 32, 32)
    assert (from_file.info.sampling.fit, from_file.info.sampling.stride) == ("crop", 1)  # as it was trained
    from_spec = load_model(BRIGHTNESS, out / "model.safetensors")
    clip = torch.rand(2, 4, 3, 32, 32)
    expected = float(trained["scale"]) * (clip.mean(dim=(1, 2, 3, 4)) - 0.5)  # the module's formula, by hand
    for model in (from_file, from_spec):
        with torch.no_grad():
            logits = model.logits(clip)
        torch.testing.assert_close(logits, torch.stack([-expected, expected], dim=1))

    # The file is a model sava attack takes as it was trained: its clip (4 x 32 x 32) with no --size given.
    assert main(["attack", "--no-progress", "--model", str(out / "model.safetensors"), "--data",
                 str(footage / "test"), "--iters", "2", "--out", str(tmp_path / "attack")]) == 0
    meta = json.loads((tmp_path / "attack" / "metrics.json").read_text())
    assert meta["clip_frames"] == 4 and meta["size"] == [32, 32] and meta["classes"] == ["dark", "bright"]
    assert (meta["fit"], meta["frame_stride"]) == ("crop", 1)

    # Exported as what it holds, not as its path; the ONNX file keeps its class names.
    assert main(["export", "--model", str(out / "model.safetensors"), "--out", str(tmp_path / "exports")]) == 0
    from sava.export import OnnxModel

    assert OnnxModel(tmp_path / "exports" / "tests.engine.toy_models_brightness_named_none.onnx").classes == \
        ["dark", "bright"]

    # The model it came from gone (a factory renamed, a folder moved): the error names both.
    from safetensors import safe_open

    with safe_open(str(out / "model.safetensors"), framework="pt") as handle:
        described = handle.metadata() | {"base_model": json.dumps("tests.engine.toy_models:renamed")}
    save_file(trained, str(tmp_path / "moved.safetensors"), metadata=described)
    with pytest.raises(ModelError, match="trained from tests.engine.toy_models:renamed, which cannot be loaded"):
        load_model(str(tmp_path / "moved.safetensors"))


def config(footage: Path, **settings) -> TrainConfig:
    return TrainConfig(model=BRIGHTNESS, data=str(footage / "train"), clip_frames=4, size=(32, 32), **settings)


def test_a_held_out_share_or_a_test_folder_measures_clean_accuracy(footage):
    model = load_named_model(BRIGHTNESS)  # its class names found as sava train finds them
    data = training_data(model, config(footage, holdout=0.3), workers=0, progress=False)
    assert (len(data.train), len(data.test)) == (7, 3)
    assert not any(torch.equal(a, b) for a in data.train.videos for b in data.test.videos)  # disjoint clips
    again = training_data(model, config(footage, holdout=0.3), workers=0, progress=False)
    assert torch.equal(again.test.videos, data.test.videos)  # seeded: a resumed run tests on the same clips
    other_seed = training_data(model, config(footage, holdout=0.3, seed=1), workers=0, progress=False)
    assert not torch.equal(other_seed.test.videos, data.test.videos)
    # Brightness labels every dark clip 0 (its names), although "dark" is the second folder in sorted order.
    expected = (data.train.videos.float().mean(dim=(1, 2, 3, 4)) < 128).long().neg() + 1
    assert torch.equal(data.train.labels, expected)

    tested = training_data(model, config(footage, test_data=str(footage / "test")), workers=0, progress=False)
    assert len(tested.train) == 10 and tested.test.labels.tolist() == [0, 0]  # only dark clips, output 0


def test_files_that_cannot_be_used_are_skipped_and_named(footage, tmp_path, capsys):
    data = three_of_each(footage, tmp_path / "data")
    (data / "dark" / "broken.avi").write_bytes(b"RIFF" + bytes(300))
    assert train("--model", BRIGHTNESS, "--data", str(data), *CLIP, "--defence", "pgd", "--steps", "1",
                 "--epochs", "1", "--out", str(tmp_path / "run")) == 0
    assert "skipped video dark/broken.avi" in capsys.readouterr().err


@pytest.mark.parametrize("options, message", [
    (["--model", BRIGHTNESS], "--data is needed"),
    (["--model", BRIGHTNESS, "--data", "DATA", "--holdout", "1.5"], "between 0 and 1"),
    (["--model", BRIGHTNESS, "--data", "DATA", "--holdout", "0.5", "--test-data", "DATA"], "drop it"),
    (["--model", "tsn-digits", "--holdout", "0.5"], "bundled set has its own test split"),
    (["--model", "tsn-digits", "--weights", "w.pt"], "--weights describes a user model"),
    (["--model", "tests.engine.toy_models:pooled_3d", "--data", "DATA"], "has 4 outputs, but"),
    (["--model", BRIGHTNESS, "--data", "DATA", "--from-scratch"], "no layer of"),
    (["--model", BRIGHTNESS, "--data", "DATA", "--test-data", "OTHER"], "does not name: light"),
    (["--model", BRIGHTNESS, "--data", "DATA", "--defence", "injected", "--inject", "0"], "--inject must be"),
])
def test_bad_training_requests_are_refused_before_any_run_folder(footage, tmp_path, capsys, options, message):
    other = tmp_path / "other" / "light"
    other.mkdir(parents=True)
    write_clip(other / "clip.avi", 150)
    swapped = [str(footage / "train") if item == "DATA" else str(tmp_path / "other") if item == "OTHER" else item
               for item in options]
    assert train(*swapped, *CLIP, "--epochs", "1", "--out", str(tmp_path / "run")) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_a_hugging_face_classifier_trains_and_its_weights_match_transformers(tmp_path):
    from tests.engine.test_zoo import KINETICS_FOLDERS, save_classifier, transformers

    source = save_classifier(tmp_path / "videomae", "videomae", 1.9)
    data = tmp_path / "kinetics"
    for i, name in enumerate(KINETICS_FOLDERS):
        (data / name).mkdir(parents=True)
        for level in (60, 120, 180):
            write_clip(data / name / f"{name}_{level}.mp4", level + 10 * i, frames=10)
    out = tmp_path / "run"
    assert train("--model", f"hf:{source}", "--data", str(data), "--defence", "combined", "--steps", "1",
                 "--epochs", "1", "--batch-size", "2", "--lr", "1e-2", "--out", str(out)) == 0
    trained = load_file(str(out / "model.safetensors"))
    reference = transformers.VideoMAEForVideoClassification.from_pretrained(str(source)).eval()
    assert trained.keys() == reference.state_dict().keys()  # the classifier's own names, not sava's wrapper's
    assert not torch.equal(trained["classifier.weight"], reference.state_dict()["classifier.weight"])
    reference.load_state_dict(trained)

    clip = torch.rand(2, 8, 3, 32, 32)
    with torch.no_grad():
        expected = reference(pixel_values=(clip - 0.45) / 0.225).logits  # the folder's processor settings
    for model in (load_model(str(out / "model.safetensors")), load_model(f"hf:{source}", out / "model.safetensors")):
        with torch.no_grad():
            torch.testing.assert_close(model.logits(clip), expected, rtol=1e-4, atol=1e-4)
    assert load_model(str(out / "model.safetensors")).classes[1] == "air drumming"


def test_a_torchvision_preset_trains_and_reloads(footage, tmp_path):
    """torchvision's R3D-18 with a two-class head, trained on the test device: where torchvision imports (the GPU
    runner's image, on CUDA); reloaded on the CPU and checked against torchvision's own module."""
    try:
        import torchvision.models.video as video
    except (ImportError, RuntimeError) as exc:
        pytest.skip(f"torchvision does not import here: {exc}")
    torch.manual_seed(0)
    start = tmp_path / "r3d.pth"
    torch.save(video.r3d_18(num_classes=2).state_dict(), start)
    out = tmp_path / "run"
    assert train("--model", "torchvision:r3d_18", "--weights", str(start), "--classes", "dark,bright", "--data",
                 str(footage / "train"), *CLIP, "--defence", "pgd", "--steps", "1", "--epochs", "1",
                 "--batch-size", "4", "--device", DEVICE, "--out", str(out)) == 0
    reference = video.r3d_18(num_classes=2).eval()
    reference.load_state_dict(load_file(str(out / "model.safetensors")))
    clip = torch.rand(1, 4, 3, 32, 32)
    mean = torch.tensor([0.43216, 0.394666, 0.37645]).view(1, 1, 3, 1, 1)
    std = torch.tensor([0.22803, 0.22145, 0.216989]).view(1, 1, 3, 1, 1)
    with torch.no_grad():
        expected = reference(((clip - mean) / std).transpose(1, 2))
        torch.testing.assert_close(load_model(str(out / "model.safetensors")).logits(clip), expected)


def test_an_unnamed_model_takes_the_folders_names_and_keeps_them(footage, tmp_path, capsys):
    out = tmp_path / "run"
    assert train("--model", "tests.engine.toy_models:brightness_unnamed", "--data", str(footage / "train"), *CLIP,
                 "--defence", "none", "--epochs", "1", "--lr", "0", "--out", str(out)) == 0
    assert "no class names for model" in capsys.readouterr().err
    assert (out / "classes.txt").read_text().split() == ["bright", "dark"]
    assert load_model(str(out / "model.safetensors")).classes == ["bright", "dark"]
    with pytest.raises(SavaError, match=r"other settings \(epochs: 1 then, 2 now\)"):
        from sava.train import train as train_api

        # (a Path for data, as Python callers pass it: compared as the text the command line gave)
        train_api(TrainConfig(model="tests.engine.toy_models:brightness_unnamed", data=footage / "train",
                              clip_frames=4, size=(32, 32), defence="none", epochs=2, lr=0), out, progress=False)


def test_injected_training_goes_on_when_no_example_fooled_the_model(footage, tmp_path, capsys):
    """Brightness decides on a clip's mean, which a one-frame SSIM-bounded perturbation cannot move across the
    boundary: the injected defence finds nothing to inject (it raised on an empty stack before), says so, and
    trains on the clean clips."""
    out = tmp_path / "run"
    assert train("--model", BRIGHTNESS, "--data", str(footage / "train"), *CLIP, "--defence", "injected",
                 "--inject", "3", "--epochs", "1", "--out", str(out)) == 0
    assert "injected: 0 of 3 DeepSAVA clips fooled the starting model" in capsys.readouterr().err
    assert load_file(str(out / "injected.safetensors"))["videos"].shape == (0, 4, 3, 32, 32)


def test_a_resumed_run_refuses_clips_other_than_those_it_began_with(footage, tmp_path, capsys):
    data = three_of_each(footage, tmp_path / "data")
    command = ["--model", BRIGHTNESS, "--data", str(data), *CLIP, "--defence", "none", "--epochs", "1",
               "--out", str(tmp_path / "run")]
    assert train(*command, "--keep-clips") == 0
    assert "decoded clips kept: " in capsys.readouterr().out and (tmp_path / "run" / "clips").is_dir()
    assert train(*command) == 0  # the same files: resumed; finished, it removes the clips only a resume reads
    printed = capsys.readouterr()
    assert "already trained" in printed.err and "removed the decoded clips (" in printed.out
    assert not (tmp_path / "run" / "clips").exists()
    write_clip(data / "dark" / "clip99.avi", 99)
    assert train(*command) == 2
    assert "trained on other clips (train_clips: 5 then, 6 now" in capsys.readouterr().err  # one held out
    (data / "dark" / "clip99.avi").unlink()
    write_clip(data / "dark" / sorted((data / "dark").iterdir())[0].name, 99)  # same name, other pixels
    assert train(*command) == 2
    assert "digest" in capsys.readouterr().err


def test_a_resumed_run_reads_its_decoded_clips_from_the_run_folder(footage, tmp_path, monkeypatch):
    """Video files are decoded once into ``clips/``; a rerun decodes none while the files are unchanged, and
    decodes again when the cache is damaged, then goes on from its checkpoint (the clips check out the same)."""
    from sava.train import clip_cache
    from sava.train import train as train_api

    calls = []
    real = clip_cache.decoded
    monkeypatch.setattr(clip_cache, "decoded", lambda dataset, indices, workers: calls.append(len(indices)) or
                        real(dataset, indices, workers))
    settings = config(footage, defence="none", epochs=1)
    out = tmp_path / "run"
    train_api(settings, out, progress=False, workers=0)
    assert sorted(calls) == [2, 8] and (out / "clips" / "train.u8").is_file()  # 10 files, 2 held out
    first = load_file(str(out / "model.safetensors"))
    calls.clear()
    train_api(settings, out, progress=False, workers=0)
    assert calls == []
    (out / "clips" / "train.json").write_text("{")  # damaged: decoded again, not an error
    (out / "clips" / "test.json").write_text('{"key": 1}')  # foreign
    (out / "model.safetensors").unlink()
    train_api(settings, out, progress=False, workers=0)
    assert sorted(calls) == [2, 8]
    assert torch.equal(load_file(str(out / "model.safetensors"))["scale"], first["scale"])


class NormedHead(torch.nn.Module):
    """A head with BatchNorm1d after pooling, as many classifiers have: in training mode it cannot take a batch
    of one clip ("Expected more than 1 value per channel")."""

    classes = ["bright", "dark"]

    def __init__(self):
        super().__init__()
        self.norm, self.head = torch.nn.BatchNorm1d(3), torch.nn.Linear(3, 2)

    def forward(self, x):
        return self.head(self.norm(x.mean(dim=(1, 3, 4))))


def normed_head() -> torch.nn.Module:
    torch.manual_seed(0)
    return NormedHead()


def test_a_last_batch_of_one_clip_joins_the_one_before(footage, tmp_path):
    """Nine training clips in batches of four: 4, then 5 (not 4, 4, 1, which BatchNorm1d refuses)."""
    assert train("--model", "tests.engine.test_train_user:normed_head", "--data", str(footage / "train"), *CLIP,
                 "--holdout", "0.1", "--defence", "none", "--epochs", "1", "--batch-size", "4",
                 "--out", str(tmp_path / "run")) == 0


def test_no_room_for_the_decoded_clips_is_said_with_their_size(footage, tmp_path, monkeypatch, capsys):
    import numpy as np

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np.lib.format, "open_memmap", full_disk)
    assert train("--model", BRIGHTNESS, "--data", str(footage / "train"), *CLIP, "--defence", "none",
                 "--epochs", "1", "--out", str(tmp_path / "run")) == 2
    err = capsys.readouterr().err
    assert "8 clips of 4 x 3 x 32 x 32 need 0.1 MiB" in err and "No space left on device" in err


def test_from_scratch_resets_every_layer_and_names_the_parameters_it_cannot():
    """A parameter held by the module itself (a class token, a position embedding) has no reset_parameters:
    it keeps its value, and the run says which ones."""
    from sava.models import ModelInfo, VideoModel
    from sava.train.weights import reinitialise

    class Tokened(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.token = torch.nn.Parameter(torch.full((3,), 7.0))
            self.head = torch.nn.Linear(3, 2)

        def forward(self, x):
            return self.head(x.mean(dim=(1, 3, 4)) + self.token)

    module = Tokened()
    with torch.no_grad():
        module.head.weight.fill_(5.0)
    assert reinitialise(VideoModel(module, ModelInfo())) == ["token"]
    assert torch.equal(module.token, torch.full((3,), 7.0))
    assert module.head.weight.abs().max() <= 1 / 3 ** 0.5  # Linear's own uniform(-1/sqrt(in), 1/sqrt(in))
