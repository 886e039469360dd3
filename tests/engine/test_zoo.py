"""Zoo presets on real architectures: small random-weight Hugging Face video classifiers (VideoMAE,
TimeSformer, ViViT) saved with ``save_pretrained`` and attacked, exported and transferred through the commands a user
types, on a Kinetics-style folder of real video files; torchvision's presets through every part that does not
need torchvision to import (it does not beside the CPU torch of CI), and for real where it does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from sava.cli import main
from sava.errors import ModelError
from sava.models import load_model
from sava.models.huggingface import import_transformers
from sava.models.zoo import TORCHVISION, kinetics400_classes
from tests.engine.test_classes import write_clip

pytest.importorskip("transformers")
transformers = import_transformers()  # past the checkout's kernels/ folder, which shadows HF's `kernels`
KINETICS_FOLDERS = ("air_drumming", "Archery")  # two Kinetics classes as downloaders spell their folders
LABELS = {0: "abseiling", 1: "air drumming", 2: "archery"}


def save_classifier(folder: Path, family: str, bias: float) -> Path:
    """A two-layer classifier of 8 frames of 32 x 32 with Kinetics names, its processor file beside it."""
    torch.manual_seed(0)
    common = dict(image_size=32, patch_size=8, num_channels=3, num_frames=8, hidden_size=32, num_hidden_layers=2,
                  num_attention_heads=2, intermediate_size=64, num_labels=3, id2label=LABELS,
                  label2id={v: k for k, v in LABELS.items()})
    if family == "videomae":
        model = transformers.VideoMAEForVideoClassification(transformers.VideoMAEConfig(tubelet_size=2, **common))
    else:
        model = transformers.TimesformerForVideoClassification(transformers.TimesformerConfig(**common))
    with torch.no_grad():
        # Random weights pool to nearly the same feature for every clip: a larger head lets the clip decide,
        # and its bias splits the decisions between the folders' two classes (the third never wins).
        model.classifier.weight.mul_(100.0)
        model.classifier.bias.copy_(torch.tensor([-30.0, 0.0, bias]))
    model.save_pretrained(str(folder))
    (folder / "preprocessor_config.json").write_text(json.dumps(
        {"image_mean": [0.45, 0.45, 0.45], "image_std": [0.225, 0.225, 0.225], "crop_size": {"height": 32,
                                                                                              "width": 32}}))
    return folder


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    root = tmp_path_factory.mktemp("zoo")
    data = root / "kinetics"
    for i, name in enumerate(KINETICS_FOLDERS):
        (data / name).mkdir(parents=True)
        for level in (60, 180):
            write_clip(data / name / f"{name}_{level}.mp4".replace(" ", "_"), level + 10 * i, frames=10)
    return {"data": data, "videomae": save_classifier(root / "videomae", "videomae", 1.9),
            "timesformer": save_classifier(root / "timesformer", "timesformer", 0.0)}


def test_a_hugging_face_folder_brings_its_clip_normalisation_and_class_names(zoo):
    model = load_model(f"hf:{zoo['videomae']}")
    assert model.info.clip_shape == (8, 3, 32, 32) and model.info.layout == "BTCHW"
    assert model.info.mean == (0.45, 0.45, 0.45) and model.classes == list(LABELS.values())
    assert model.info.sampling.fit == "crop"  # VideoMAE's processor crops the centre unless told otherwise
    reference = transformers.VideoMAEForVideoClassification.from_pretrained(str(zoo["videomae"])).eval()
    videos = torch.rand(2, 8, 3, 32, 32)
    with torch.no_grad():  # logits of the folder's own model on the normalised clip: the wrapper adds nothing
        expected = reference(pixel_values=(videos - 0.45) / 0.225).logits
        torch.testing.assert_close(model.logits(videos), expected)
    # The user's options win over the folder's.
    assert load_model(f"hf:{zoo['videomae']}", mean=(0.5,), std=(0.5,)).info.mean == (0.5,)
    wrong = zoo["data"].parent / "wrong.safetensors"  # --weights replace the folder's own, and must fit them
    save_file({"classifier.weight": torch.zeros(2, 2)}, str(wrong))
    with pytest.raises(ModelError, match="do not fit the model"):
        load_model(f"hf:{zoo['videomae']}", weights=wrong)
    with pytest.raises(ModelError, match="no config.json"):
        load_model(f"hf:{zoo['data']}")


def test_a_vivit_folder_sees_what_its_own_processor_would_feed_it(tmp_path):
    """ViViT's processor maps pixels to [-1, 1] before its 0.5 / 0.5 normalisation: the loaded model must give
    the logits that transformers' own processor and model give on the same 8-bit frames, and so must its
    ONNX export."""
    import numpy as np

    torch.manual_seed(0)
    config = transformers.VivitConfig(image_size=32, num_frames=8, tubelet_size=[2, 8, 8], hidden_size=32,
                                      num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                                      num_labels=3, id2label=LABELS, label2id={v: k for k, v in LABELS.items()})
    folder = tmp_path / "vivit"
    transformers.VivitForVideoClassification(config).save_pretrained(str(folder))
    processor = transformers.VivitImageProcessor(do_resize=False, do_center_crop=False,
                                                 crop_size={"height": 32, "width": 32})
    processor.save_pretrained(str(folder))
    frames = np.random.default_rng(0).integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
    reference = transformers.VivitForVideoClassification.from_pretrained(str(folder)).eval()
    with torch.no_grad():
        expected = reference(**processor(list(frames), return_tensors="pt")).logits

    clip = torch.from_numpy(frames).permute(0, 3, 1, 2).float().div(255).unsqueeze(0)

    def gives_the_processors_logits(model) -> None:
        with torch.no_grad():
            torch.testing.assert_close(model.logits(clip), expected, rtol=1e-4, atol=1e-4)

    model = load_model(f"hf:{folder}")
    assert model.info.clip_shape == (8, 3, 32, 32) and model.classes == list(LABELS.values())
    assert model.info.sampling.fit == "stretch"  # this processor neither resizes nor crops
    gives_the_processors_logits(model)
    # A hand-written processor file that names its class but not the rescaling gets the class's defaults.
    (folder / "preprocessor_config.json").write_text(json.dumps({"image_processor_type": "VivitImageProcessor",
                                                                  "crop_size": {"height": 32, "width": 32}}))
    gives_the_processors_logits(load_model(f"hf:{folder}"))
    assert load_model(f"hf:{folder}").info.sampling.fit == "crop"  # and its class crops by default
    # So does the video processor's file, read first, whose class shifts by -1 in code, not by a setting.
    (folder / "video_preprocessor_config.json").write_text(json.dumps(
        {"video_processor_type": "VivitVideoProcessor", "do_rescale": True, "rescale_factor": 1 / 127.5,
         "do_normalize": True, "image_mean": [0.5] * 3, "image_std": [0.5] * 3, "crop_size": {"height": 32,
                                                                                                 "width": 32}}))
    gives_the_processors_logits(load_model(f"hf:{folder}"))

    exports = tmp_path / "exports"
    assert main(["export", "--model", f"hf:{folder}", "--out", str(exports)]) == 0
    from sava.export import OnnxModel

    gives_the_processors_logits(OnnxModel(next(exports.glob("*.onnx"))))


@pytest.mark.filterwarnings("error:Tight layout not applied")  # long target names must still fit the heatmap
def test_attack_export_and_transfer_a_hugging_face_model_with_one_command_each(zoo, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["attack", "--no-progress", "--model", f"hf:{zoo['videomae']}", "--data", str(zoo["data"]),
                 "--num-videos", "0", "--iters", "30", "--workers", "0", "--out", str(run)]) == 0
    found = json.loads((run / "metrics.json").read_text())
    # Frames and size came from the folder; the Kinetics-spelled folders matched the model's class names.
    assert found["clip_frames"] == 8 and found["size"] == [32, 32]
    assert found["classes"] == list(LABELS.values())
    summary = found["summary"]
    assert summary["videos"] == 4 and summary["attacked"] >= 2 and summary["successes"] >= 1
    assert 0.5 < summary["mean_ssim"] <= 1

    exports = tmp_path / "exports"
    assert main(["export", "--model", f"hf:{zoo['videomae']}", "--out", str(exports)]) == 0
    onnx_file = next(exports.glob("*.onnx"))
    from sava.export import OnnxModel
    from sava.transfer import from_run_folder, replay

    source = from_run_folder(run, log=lambda _: None)
    adversarial = torch.stack([replay(v, r) for v, r in zip(source.videos, source.results)])
    white_box = load_model(f"hf:{zoo['videomae']}")
    with torch.no_grad():
        torch.testing.assert_close(OnnxModel(onnx_file).logits(adversarial), white_box.logits(adversarial),
                                   rtol=1e-4, atol=1e-4)

    out = tmp_path / "transfer"
    capsys.readouterr()
    assert main(["transfer", "--runs", str(run), "--targets", f"{onnx_file},hf:{zoo['timesformer']}",
                 "--onnx-dir", str(tmp_path / "onnx"), "--out", str(out)]) == 0
    targets = {row["target"] for row in json.loads((out / "transfer.json").read_text())["rows"]}
    # The .onnx file runs on ONNX Runtime only; the PyTorch model on torch and, exported, on ONNX Runtime.
    assert targets == {f"{onnx_file} [onnxruntime]", f"hf:{zoo['timesformer']} [torch]",
                       f"hf:{zoo['timesformer']} [onnxruntime]"}


def test_an_onnx_target_on_torch_alone_is_a_clear_error(zoo, tmp_path, capsys):
    assert main(["transfer", "--dataset", "digits", "--sources", "tsn-digits", "--targets", "model.onnx",
                 "--runtime", "torch", "--out", str(tmp_path / "x")]) == 2
    assert "runs on onnxruntime or tensorrt only" in capsys.readouterr().err


def test_kinetics_class_names_and_the_torchvision_presets():
    names = kinetics400_classes()
    assert len(names) == len(set(names)) == 400
    assert names == sorted(names, key=str.lower) and names[0] == "abseiling" and names[-1] == "zumba"
    for preset in TORCHVISION.values():
        assert len(preset.mean) == len(preset.std) == 3 and min(preset.std) > 0 and len(preset.clip) == 3


def test_a_torchvision_preset_reads_its_head_from_the_weights_file(tmp_path):
    with pytest.raises(ModelError, match="unknown torchvision preset 'r4d_18'"):
        load_model("torchvision:r4d_18")
    wrong = tmp_path / "wrong.pth"
    torch.save({"stem.0.weight": torch.zeros(1)}, wrong)
    with pytest.raises(ModelError, match="holds no 'fc.weight'"):  # checked before torchvision is imported
        load_model("torchvision:r3d_18", wrong)
    try:
        import torchvision.models.video as video
    except (ImportError, RuntimeError):  # this machine's torch and torchvision do not match: the error says so
        with pytest.raises(ModelError, match="torchvision"):
            load_model("torchvision:r3d_18")
        return
    weights = tmp_path / "r3d.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in video.r3d_18(num_classes=5).state_dict().items()}},
               weights)
    model = load_model("torchvision:r3d_18", weights)  # wrapped and prefixed as training scripts save it
    assert model.info.layout == "BCTHW" and model.info.clip_shape == (16, 3, 112, 112) and model.classes is None
    # torchvision's video transforms: stretch to 128 x 171, then the centre crop
    assert (model.info.sampling.fit, model.info.sampling.zoom) == ("stretch", (128 / 112, 171 / 112))
    assert model.logits(torch.rand(1, 4, 3, 32, 32)).shape == (1, 5)


@pytest.mark.parametrize("name", sorted(TORCHVISION))
def test_every_torchvision_preset_is_attacked_at_its_own_clip(name, tmp_path):
    """Each preset built by torchvision, filled from a saved state dict and attacked on its default clip: on
    CUDA, where torchvision imports (the GPU runner's image); full-size clips of the larger presets are too
    slow for a CPU run."""
    if not torch.cuda.is_available():
        pytest.skip("full-size torchvision presets are attacked on CUDA only")
    try:
        import torchvision.models.video as video
    except (ImportError, RuntimeError) as exc:
        pytest.skip(f"torchvision does not import here: {exc}")
    from sava import DeepSAVA

    weights = tmp_path / f"{name}.pth"
    torch.save(getattr(video, name)(num_classes=4).state_dict(), weights)
    model = load_model(f"torchvision:{name}", weights, device="cuda")
    clip = torch.rand(2, *model.info.clip_shape)
    labels = model.predict(clip)[0].cpu()
    run = DeepSAVA(model, max_iters=3, batch_size=2).run(clip, labels)
    assert run.summary.attacked == 2 and all(r.iterations >= 1 and 0 < min(r.ssim) <= 1 for r in run.results)


def test_a_hub_id_loads_from_the_local_hugging_face_cache_and_nothing_is_downloaded(zoo, tmp_path, monkeypatch):
    """hf:ORG/NAME of a model a user fetched before (the cache's models--ORG--NAME/snapshots/REVISION layout,
    resolved by huggingface_hub itself, offline); a model not there is an error that says how to fetch it."""
    import shutil

    import huggingface_hub.constants

    cache = tmp_path / "hub"
    revision = "0123456789abcdef0123456789abcdef01234567"
    snapshot = cache / "models--some-lab--tiny-videomae" / "snapshots" / revision
    shutil.copytree(zoo["videomae"], snapshot)
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text(revision)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.chdir(tmp_path)  # no folder some-lab/tiny-videomae here: the id is read as a hub id
    model = load_model("hf:some-lab/tiny-videomae")
    folder_model = load_model(f"hf:{zoo['videomae']}")
    assert model.name == "hf:tiny-videomae" and model.classes == folder_model.classes
    videos = torch.rand(2, 8, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model.logits(videos), folder_model.logits(videos))
    with pytest.raises(ModelError, match=r"not in the local Hugging Face cache .*\(huggingface-cli download "
                                         r"some-lab/other\)"):
        load_model("hf:some-lab/other")


def test_weights_cached_reads_the_checkpoint_torchvision_downloaded_before(tmp_path, monkeypatch):
    """--weights cached: torch's hub cache, where torchvision keeps NAME-HASH.pth (found and read here before
    torchvision is imported, so its head check shows the file was the one read); nothing is downloaded."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(ModelError, match=r"no r3d_18 checkpoint in torch's hub cache \(.*torch/hub/checkpoints\)"):
        load_model("torchvision:r3d_18", "cached")
    checkpoints = tmp_path / "torch" / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    torch.save({"stem.0.weight": torch.zeros(1)}, checkpoints / "r3d_18-0a1b2c3d.pth")
    torch.save({"stem.0.weight": torch.zeros(1)}, checkpoints / "mc3_18-0a1b2c3d.pth")  # another preset's
    with pytest.raises(ModelError, match=r"r3d_18-0a1b2c3d.pth holds no 'fc.weight'"):
        load_model("torchvision:r3d_18", "cached")
    for variant in ("swin3d_b_1k-1.pth", "swin3d_b_22k-2.pth"):
        torch.save({}, checkpoints / variant)
    with pytest.raises(ModelError, match=r"2 swin3d_b checkpoints .*swin3d_b_1k-1.pth, swin3d_b_22k-2.pth"):
        load_model("torchvision:swin3d_b", "cached")
