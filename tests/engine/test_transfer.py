"""Transfer evaluation: replayed videos, run folders as sources, and the
matrix the command writes (torch and ONNX Runtime targets side by side)."""

from __future__ import annotations

import csv
import json

import pytest
import torch

from sava.cli import main
from sava.models import load_model
from sava.transfer import from_run_folder
from tests.device import DEVICE

torch.set_num_threads(2)


def test_a_run_folder_replays_to_the_videos_its_attack_made(tmp_path):
    from sava.models import load_bundled

    out = tmp_path / "run"
    assert main(["attack", "--no-progress", "--model", "tsn-digits", "--num-videos", "4", "--frames", "2",
                 "--out", str(out)]) == 0
    source = from_run_folder(out)
    assert source.source == "tsn-digits" and source.attack == "deepsava" and len(source.results) == 4
    model = load_bundled("tsn-digits", device=DEVICE)
    from sava.transfer import replay

    for video, result in zip(source.videos, source.results):
        if result.attacked:
            assert int(model.predict(replay(video, result).unsqueeze(0))[0]) == result.final_pred


def test_transfer_command_writes_the_matrix_and_runtimes_agree(tmp_path, capsys):
    pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")
    out = tmp_path / "transfer"
    assert main(["transfer", "--dataset", "digits", "--sources", "tsn-digits", "--targets", "tsn-digits,c3d-digits",
                 "--methods", "deepsava,fgsm", "--frames", "2", "--num-videos", "4", "--iters", "20",
                 "--onnx-dir", str(tmp_path / "onnx"), "--out", str(out)]) == 0
    payload = json.loads((out / "transfer.json").read_text())
    assert payload["disagreements"] == {"torch vs onnxruntime": 0}
    assert payload["command"].startswith("sava transfer --dataset digits")
    rows = payload["rows"]
    assert len(rows) == 2 * 4  # two attacks x (two targets x two runtimes)
    white_box = next(r for r in rows if r["attack"] == "deepsava" and r["target"] == "tsn-digits [torch]")
    assert white_box["fooling_rate"] == pytest.approx(white_box["source_fooling_rate"])
    with open(out / "transfer.csv") as handle:
        table = list(csv.reader(handle))
    assert table[0][1:] == ["tsn-digits [torch]", "tsn-digits [onnxruntime]", "c3d-digits [torch]",
                            "c3d-digits [onnxruntime]"]
    assert [line[0] for line in table[1:]] == ["deepsava on tsn-digits", "fgsm on tsn-digits"]
    assert (out / "transfer.png").stat().st_size > 0
    assert "decisions that differ, torch vs onnxruntime: 0" in capsys.readouterr().out


def test_transfer_refuses_bad_requests_before_work(tmp_path, capsys):
    assert main(["transfer", "--runtime", "torch,openvino", "--out", str(tmp_path / "x")]) == 2
    assert "unknown runtime(s) openvino" in capsys.readouterr().err
    assert main(["transfer", "--sources", "model.onnx", "--out", str(tmp_path / "x")]) == 2
    assert "bundled white-box models" in capsys.readouterr().err
    assert main(["transfer", "--methods", "deepsava,pgd9", "--out", str(tmp_path / "x")]) == 2
    assert "unknown attack method" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_export_command_reports_the_check(tmp_path, capsys):
    pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")
    assert main(["export", "--model", "tsn-digits", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "ONNX checker passed" in printed and "largest |ORT - torch|" in printed
    assert (tmp_path / "tsn-digits.onnx").is_file()
    assert main(["export", "--model", "nope", "--out", str(tmp_path)]) == 2


def _attacked_folder(tmp_path, name="run"):
    out = tmp_path / name
    assert main(["attack", "--no-progress", "--model", "tsn-digits", "--num-videos", "3", "--iters", "3",
                 "--device", "cpu", "--out", str(out)]) == 0
    records = [json.loads(line) for line in (out / "videos.jsonl").read_text().splitlines()]
    return out, [r for r in records if "perturbation" in r]


def test_a_damaged_perturbation_file_is_an_error_naming_it(tmp_path, capsys):
    """Defects 7 and 12: a NaN noise counted as fooled; truncated, mistyped or misshapen files raised."""
    from safetensors.torch import load_file, save_file

    out, records = _attacked_folder(tmp_path)
    path = out / records[0]["perturbation"]
    original = path.read_bytes()
    tensors = load_file(str(path))
    damages = {
        "NaN": lambda t: t | {"noise": t["noise"].clone().index_fill_(0, torch.tensor([0]), float("nan"))},
        "float64": lambda t: t | {"noise": t["noise"].double()},
        "shape": lambda t: t | {"noise": t["noise"][..., :-1].contiguous()},
        "frames": lambda t: t | {"frames": t["frames"] + 1},
    }
    for damage, change in damages.items():
        save_file(change(dict(tensors)), str(path))
        assert main(["transfer", "--runs", str(out), "--targets", "tsn-digits", "--runtime", "torch",
                     "--out", str(tmp_path / f"t-{damage}")]) == 2, damage
        err = capsys.readouterr().err
        assert path.name in err and err.strip().splitlines()[-1].startswith("sava transfer: error:"), (damage, err)
    path.write_bytes(original[: len(original) // 2])  # truncated
    assert main(["transfer", "--runs", str(out), "--targets", "tsn-digits", "--runtime", "torch",
                 "--out", str(tmp_path / "t-cut")]) == 2
    assert "not a readable perturbation file" in capsys.readouterr().err


def test_a_target_with_another_label_set_is_refused(tmp_path, capsys):
    """Defect 10: a valid ONNX target with another number of classes reported an FR over 0 videos."""
    out, _ = _attacked_folder(tmp_path)
    assert main(["transfer", "--runs", str(out), "--targets", "tsn-camera", "--runtime", "torch",
                 "--out", str(tmp_path / "t")]) == 2
    err = capsys.readouterr().err
    assert "classes" in err and "tsn-camera" in err


def test_a_run_folder_with_skipped_files_replays_the_rest(tmp_path, capsys):
    """Skipped files are listed, not decoded again."""
    from sava.data.video_io import write_video

    clips = bundled_digits()
    root = tmp_path / "videos" / clips.classes[int(clips.labels[0])]
    root.mkdir(parents=True)
    write_video(root / "good.mp4", clips.float_videos(0))
    (root / "broken.mp4").write_bytes(b"not a video")
    out = tmp_path / "run"
    assert main(["attack", "--no-progress", "--model", "tsn-digits", "--data", str(tmp_path / "videos"), "--size",
                 "32", "32", "--iters", "3", "--num-videos", "0", "--device", "cpu", "--out", str(out)]) == 0
    capsys.readouterr()
    source = from_run_folder(out)
    assert [r.video_id for r in source.results] == [f"{root.name}/good.mp4"]
    assert source.extra["skipped"] == [f"{root.name}/broken.mp4"]
    assert "broken.mp4" in capsys.readouterr().out


def bundled_digits():
    from sava.data import bundled

    return bundled("digits", "test")


def test_the_heatmap_names_file_targets_by_their_last_component_unless_two_would_clash():
    from sava.transfer import _tick_labels

    assert _tick_labels(["/data/exports/c3d.onnx [onnxruntime]", "hf:/models/zoo/timesformer [torch]",
                         "C:\\models\\r3d.onnx [onnxruntime]", "tsn-digits [torch]"]) == \
        ["c3d.onnx [onnxruntime]", "hf:timesformer [torch]", "r3d.onnx [onnxruntime]", "tsn-digits [torch]"]
    clashing = ["/a/model.onnx [onnxruntime]", "/b/model.onnx [onnxruntime]"]
    assert _tick_labels(clashing) == clashing


def test_a_user_model_is_loaded_once_for_all_its_runtimes(tmp_path):
    pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")
    from tests.engine import toy_models

    out, _ = _attacked_folder(tmp_path)
    before = toy_models.LOADS["pooled_3d_ten"]
    spec = "tests.engine.toy_models:pooled_3d_ten"
    assert main(["transfer", "--runs", str(out), "--targets", spec, "--onnx-dir", str(tmp_path / "onnx"),
                 "--out", str(tmp_path / "t")]) == 0
    assert toy_models.LOADS["pooled_3d_ten"] == before + 1
    rows = json.loads((tmp_path / "t" / "transfer.json").read_text())["rows"]
    assert {row["target"] for row in rows} == {f"{spec} [torch]", f"{spec} [onnxruntime]"}


def test_a_channels_first_user_target_is_described_on_the_command_line(tmp_path, capsys):
    pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")
    out, _ = _attacked_folder(tmp_path)
    spec = "tests.engine.toy_models:channels_first_ten"
    assert main(["transfer", "--runs", str(out), "--targets", f"{spec},tsn-digits", "--layout", "BCTHW",
                 "--onnx-dir", str(tmp_path / "onnx"), "--out", str(tmp_path / "t")]) == 0
    payload = json.loads((tmp_path / "t" / "transfer.json").read_text())
    assert {row["target"] for row in payload["rows"]} >= {f"{spec} [torch]", f"{spec} [onnxruntime]"}
    assert payload["disagreements"] == {"torch vs onnxruntime": 0}
    # Undescribed, it is refused up front, naming the option that fixes it.
    assert main(["transfer", "--runs", str(out), "--targets", spec, "--out", str(tmp_path / "t2")]) == 2
    assert "give --layout BCTHW" in capsys.readouterr().err and not (tmp_path / "t2").exists()
    # Describing only bundled targets is a mistake, said as such.
    assert main(["transfer", "--runs", str(out), "--targets", "tsn-digits", "--mean", "0.5",
                 "--out", str(tmp_path / "t3")]) == 2
    assert "--mean describes user targets" in capsys.readouterr().err


def test_a_target_that_cannot_take_the_clips_stops_the_transfer_before_any_attack(tmp_path, capsys):
    assert main(["transfer", "--dataset", "digits", "--sources", "tsn-digits", "--targets",
                 "tests.engine.toy_models:channels_first_ten", "--runtime", "torch", "--num-videos", "2",
                 "--out", str(tmp_path / "t")]) == 2
    err = capsys.readouterr().err
    assert "cannot classify clips of" in err and "generating" not in err and not (tmp_path / "t").exists()


def test_a_target_that_takes_one_video_at_a_time_is_told_batch_size_1_and_then_scored(tmp_path, capsys):
    out, _ = _attacked_folder(tmp_path)
    command = ["transfer", "--runs", str(out), "--targets", "tests.engine.toy_models:one_at_a_time_ten",
               "--runtime", "torch"]
    assert main([*command, "--out", str(tmp_path / "batched")]) == 2
    err = capsys.readouterr().err
    assert "classifies one clip but not a batch of 2" in err and "give --batch-size 1" in err
    assert main([*command, "--batch-size", "1", "--out", str(tmp_path / "single")]) == 0
    (row,) = json.loads((tmp_path / "single" / "transfer.json").read_text())["rows"]
    expected = load_model("tests.engine.toy_models:pooled_3d_ten").predict(from_run_folder(out).videos)[0]
    assert row["clean_predictions"] == expected.tolist()  # the wrapped model's own decisions, clip by clip


def test_weights_for_an_onnx_target_are_refused_not_ignored(tmp_path):
    from sava.errors import ModelError
    from sava.export import load_runtime_model

    onnx_file = tmp_path / "model.onnx"
    onnx_file.write_bytes(b"not read: the request is refused first")
    with pytest.raises(ModelError, match="carries its own weights"):
        load_runtime_model(str(onnx_file), "onnxruntime", weights="w.pth")


def test_a_target_right_on_no_clean_video_is_warned_of(tmp_path, capsys):
    out, _ = _attacked_folder(tmp_path)
    assert main(["transfer", "--runs", str(out), "--targets", "tests.engine.toy_models:always_last",
                 "--runtime", "torch", "--out", str(tmp_path / "t")]) == 0
    assert "classifies none of the" in capsys.readouterr().err
    (row,) = json.loads((tmp_path / "t" / "transfer.json").read_text())["rows"]
    assert row["fooling_rate"] is None and row["videos"] == 0


def test_a_targets_file_describes_each_target_on_its_own(tmp_path, capsys):
    """A channels-first and a channels-last factory, two checkpoints of one of them and a bundled model, in one
    transfer: each item of the .json file carries its own layout and weights (paths beside the file); before,
    one --layout applied to every user target and two weights of one factory shared a row label."""
    from safetensors.torch import save_file

    from tests.engine.toy_models import pooled_3d_ten

    out, _ = _attacked_folder(tmp_path)
    listed = tmp_path / "targets"
    listed.mkdir()
    other = pooled_3d_ten()
    with torch.no_grad():
        other.head.bias.add_(1.0)
    save_file(other.state_dict(), str(listed / "shifted.safetensors"))
    save_file(pooled_3d_ten().state_dict(), str(listed / "seeded.safetensors"))
    pooled, first = "tests.engine.toy_models:pooled_3d_ten", "tests.engine.toy_models:channels_first_ten"
    (listed / "targets.json").write_text(json.dumps([
        {"model": first, "layout": "BCTHW"},
        f"{pooled}@seeded.safetensors",
        {"model": pooled, "weights": "shifted.safetensors"},
        "tsn-digits",
    ]))
    assert main(["transfer", "--runs", str(out), "--targets", str(listed / "targets.json"), "--runtime", "torch",
                 "--out", str(tmp_path / "t")]) == 0
    rows = {row["target"]: row for row in json.loads((tmp_path / "t" / "transfer.json").read_text())["rows"]}
    seeded, shifted = (f"{pooled}@{listed / name} [torch]" for name in ("seeded.safetensors", "shifted.safetensors"))
    assert set(rows) == {f"{first} [torch]", seeded, shifted, "tsn-digits [torch]"}
    # Each checkpoint is its own target: the shifted head changes the decisions' logits, not only the label.
    model = load_model(pooled, listed / "shifted.safetensors")
    run = from_run_folder(out)
    with torch.no_grad():
        assert rows[shifted]["clean_predictions"] == model.logits(run.videos).argmax(1).tolist()


@pytest.mark.parametrize("content, message", [
    ("[]", "non-empty list"),
    ("{", "not readable JSON"),
    ('[{"weights": "w.pt"}]', 'target 1 needs "model"'),
    ('["tsn-digits", {"model": "m:f", "layer": "BCTHW"}]', "target 2: unknown key(s) layer"),
    ('[{"model": "m:f", "layout": "CTHW"}]', '"layout" must be BTCHW or BCTHW'),
    ('[{"model": "m:f", "mean": [0.5, 0.5]}]', "one finite number or three"),
    ('[{"model": "tsn-digits", "layout": "BCTHW"}]', "tsn-digits carries its own layout"),
    ('["tsn-digits", "tsn-digits"]', "listed twice"),
])
def test_a_bad_targets_file_is_refused_naming_the_item(tmp_path, capsys, content, message):
    (tmp_path / "targets.json").write_text(content)
    assert main(["transfer", "--runs", str(tmp_path / "no-run"), "--targets", str(tmp_path / "targets.json"),
                 "--runtime", "torch", "--out", str(tmp_path / "t")]) == 2
    assert message in capsys.readouterr().err
