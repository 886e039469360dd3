"""The ``sava`` command line: a run writes a complete run folder."""

from __future__ import annotations

import json

from PIL import Image
from safetensors import safe_open

from sava.cli import main
from sava.data import bundled
from sava.data.video_io import write_video


def run_cli(*args) -> int:
    return main(["attack", "--no-progress", *args])


def test_attack_writes_a_complete_run_folder(tmp_path, capsys):
    out = tmp_path / "run"
    assert run_cli("--model", "c3d-digits", "--num-videos", "5", "--selector", "saliency", "--out", str(out)) == 0
    printed = capsys.readouterr().out
    assert "FR" in printed and "combined" in printed

    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["model"] == "c3d-digits" and metrics["completed"] is True
    summary = metrics["summary"]
    assert summary["videos"] == 5 and 0 <= summary["fooling_rate"] <= 1

    lines = [json.loads(line) for line in (out / "videos.jsonl").read_text().splitlines()]
    assert len(lines) == 5
    for line in lines:
        if not line["attacked"]:
            continue
        with safe_open(str(out / line["perturbation"]), framework="pt") as handle:
            assert set(handle.keys()) == {"flow", "noise", "frames"}
            assert handle.get_tensor("flow").shape == (1, 2, 32, 32)
            assert handle.get_tensor("frames").tolist() == line["frames"]
            meta = handle.metadata()
            assert meta["model"] == "c3d-digits" and json.loads(meta["clip_shape"]) == [16, 3, 32, 32]
            assert json.loads(meta["settings"])["perturbation"] == "combined"
    if summary["successes"]:
        preview = Image.open(out / "preview.png")
        assert preview.width == 3 * preview.height // min(summary["successes"], 6)


def test_all_perturbations_side_by_side(tmp_path, capsys):
    out = tmp_path / "table7"
    assert run_cli("--model", "tsn-digits", "--num-videos", "3", "--iters", "5", "--perturbation", "all",
                   "--out", str(out)) == 0
    printed = capsys.readouterr().out
    for kind in ("combined", "noise", "flow"):
        assert (out / kind / "metrics.json").is_file()
        assert f"\ndeepsava {kind} " in printed


def test_folder_of_video_files_skips_broken_ones(tmp_path, capsys):
    clips = bundled("camera", "test")
    root = tmp_path / "videos"
    for index in range(3):
        folder = root / clips.classes[int(clips.labels[index])]
        folder.mkdir(parents=True, exist_ok=True)
        write_video(folder / f"clip{index}.mp4", clips.float_videos(index))
    (root / "pan-left").mkdir(exist_ok=True)
    (root / "pan-left" / "broken.mp4").write_bytes(b"not a video")
    out = tmp_path / "run"
    code = run_cli("--model", "tsn-camera", "--data", str(root), "--size", "48", "48", "--iters", "5",
                   "--num-videos", "0", "--out", str(out))
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["summary"]["videos"] == 3
    assert len(metrics["skipped_files"]) == 1 and "broken.mp4" in metrics["skipped_files"][0]["reason"]
    assert "broken.mp4" in capsys.readouterr().err


def test_errors_exit_with_a_message(tmp_path, capsys):
    assert run_cli("--model", "no-such-model", "--out", str(tmp_path / "x")) == 2
    assert "unknown model 'no-such-model'" in capsys.readouterr().err
    assert run_cli("--model", "c3d-digits", "--frames", "20", "--num-videos", "2", "--out", str(tmp_path / "y")) == 2
    assert "k=20" in capsys.readouterr().err


def test_listings(capsys):
    assert main(["models"]) == 0
    listing = capsys.readouterr().out
    assert "c3d-camera" in listing and "cnn_lstm-digits" in listing
    assert main(["data"]) == 0
    assert "pan-left" in capsys.readouterr().out


def test_sparse_method_from_the_command_line(tmp_path, capsys):
    out = tmp_path / "sparse"
    assert run_cli("--model", "tsn-digits", "--method", "sparse", "--num-videos", "3", "--iters", "10",
                   "--selector", "ifd", "--lam", "2.5", "--out", str(out)) == 0
    settings = json.loads((out / "metrics.json").read_text())["settings"]
    assert settings["method"] == "sparse" and settings["lam"] == 2.5 and settings["selector"] == "ifd"
    assert run_cli("--method", "sparse", "--perturbation", "flow", "--out", str(tmp_path / "x")) == 2
    assert "--perturbation is a deepsava setting" in capsys.readouterr().err


def test_margin_is_recorded_and_refused_where_it_means_nothing(tmp_path, capsys):
    out = tmp_path / "margin"
    assert run_cli("--model", "tsn-digits", "--num-videos", "2", "--iters", "5", "--margin", "1.5",
                   "--out", str(out)) == 0
    assert json.loads((out / "metrics.json").read_text())["settings"]["margin"] == 1.5
    for method, message in (("keyframe", "does not apply to keyframe"), ("bim", "belongs to the sparse methods")):
        assert run_cli("--method", method, "--margin", "1", "--out", str(tmp_path / method)) == 2
        assert message in capsys.readouterr().err
    assert run_cli("--margin", "-1", "--out", str(tmp_path / "negative")) == 2
    assert "margin" in capsys.readouterr().err


def test_reproduce_writes_markdown_json_and_plot(tmp_path, capsys):
    out = tmp_path / "repro"
    assert main(["reproduce", "table8", "--model", "tsn-digits", "--num-videos", "2", "--iters", "3",
                 "--out", str(out)]) == 0
    folder = out / "tsn-digits"
    payload = json.loads((folder / "table8.json").read_text())
    assert [r["approach"] for r in payload["rows"]] == ["BO selection", "brute force"]
    assert payload["rows"][0]["generator_runs_per_video"] < payload["rows"][1]["generator_runs_per_video"] == 16
    assert "| BO selection |" in (folder / "table8.md").read_text()
    assert Image.open(folder / "table8.png").width > 0
    assert "sava reproduce table8" in payload["command"]


def test_reproduce_table7_rows_cover_every_approach_and_frame_count(tmp_path):
    from sava.reproduce import reproduce

    payload = reproduce("table7", "tsn-digits", tmp_path, count=1, iters=2, log=lambda line: None)
    cells = {(r["approach"], r["frames"]) for r in payload["rows"]}
    assert cells == {(a, k) for a in ("D (noise)", "S (flow)", "D+S", "D+S, BO") for k in (1, 2, 4)}
    assert (tmp_path / "table7.md").read_text().count("\n| ") == 6  # header, separator, four approaches


def test_every_method_runs_from_the_command_line(tmp_path, capsys):
    from safetensors.torch import load_file

    from sava.attacks import METHODS

    for method in METHODS:
        out = tmp_path / method
        extra = ["--tt", "--tt-shift", "1"] if method == "mi" else []
        assert run_cli("--model", "tsn-digits", "--method", method, "--num-videos", "2", "--iters", "2",
                       "--out", str(out), *extra) == 0, method
        metrics = json.loads((out / "metrics.json").read_text())
        assert metrics["settings"]["method"] == ("tt-mi" if method == "mi" else method)
        records = [json.loads(line) for line in (out / "videos.jsonl").read_text().splitlines()]
        assert len(records) == 2
        for record in records:
            if record["attacked"]:
                tensors = load_file(str(out / record["perturbation"]))
                assert tensors["frames"].tolist() == record["frames"]
                assert tensors["noise" if "noise" in tensors else "flow"].shape[0] == len(record["frames"])
    printed = capsys.readouterr().out
    assert "tt-mi" in printed and "keyframe" in printed


def test_bad_settings_fail_before_any_work(tmp_path, capsys):
    cases = [
        (["--method", "keyframe", "--boundary", "1.5"], "boundary must lie in (0, 1]"),
        (["--method", "keyframe", "--boundary", "0"], "boundary must lie in (0, 1]"),
        (["--method", "bim", "--epsilon", "-0.1"], "epsilon"),
        (["--method", "deepsava", "--frames", "17"], "k=17 frames of a clip with only T=16"),
        (["--method", "sparse", "--boundary", "0.3"], "--boundary is the keyframe method's setting"),
        (["--method", "fgsm", "--selector", "bo"], "perturbs every frame"),
        (["--method", "flicker", "--tt"], "--tt and --epsilon belong to the L-infinity methods"),
    ]
    for args, message in cases:
        out = tmp_path / "never"
        assert run_cli("--model", "tsn-digits", "--out", str(out), *args) == 2, args
        assert message in capsys.readouterr().err, args
        assert not out.exists(), f"{args} left a run folder behind"
    try:
        run_cli("--method", "carlini")
    except SystemExit as exit_:
        assert exit_.code == 2
    else:
        raise AssertionError("an unknown method must be refused")
    assert "invalid choice: 'carlini'" in capsys.readouterr().err


def test_reproduce_the_keyframe_and_transfer_tables(tmp_path):
    from sava.reproduce import reproduce

    keyframe = reproduce("xu-table2", "tsn-digits", tmp_path, count=2, iters=2, log=lambda line: None)
    names = ("ours (keyframes)", "SA (first frames)", "IFD")
    assert [(r["goal"], r["approach"]) for r in keyframe["rows"]] == [
        (goal, name) for goal in ("untargeted", "targeted") for name in names]
    assert all(r["sr"] == 0.75 for r in keyframe["rows"] if r["approach"] != "ours (keyframes)")
    transfer = reproduce("tt", "tsn-digits", tmp_path, count=2, iters=2, log=lambda line: None)
    assert [r["approach"] for r in transfer["rows"]][:2] == ["fgsm", "tt-fgsm"] and len(transfer["rows"]) == 10
    assert {"asr:c3d-digits", "asr:cnn_lstm-digits"} <= set(transfer["rows"][0])
    assert transfer["environment"]["torch"]
    for table in ("xu-table2", "tt"):
        assert (tmp_path / f"{table}.md").is_file() and Image.open(tmp_path / f"{table}.png").width > 0


def test_reproduce_tables_of_one_model_share_their_runs(tmp_path, capsys):
    assert main(["reproduce", "table3", "table6", "importance", "--model", "tsn-digits", "--num-videos", "2",
                 "--iters", "2", "--out", str(tmp_path)]) == 0
    folder = tmp_path / "tsn-digits"
    table3 = json.loads((folder / "table3.json").read_text())["rows"]
    table6 = json.loads((folder / "table6.json").read_text())["rows"]
    assert [r["approach"] for r in table3] == ["Sparse (first frame)", "Sparse Flickering (first frame)",
                                               "DeepSAVA without BO (first frame)", "DeepSAVA with BO",
                                               "DeepSAVA, saliency frame"]
    shared = [r for r in table3 if r["approach"] in {s["approach"] for s in table6}]
    assert [r["seconds_per_video"] for r in shared] == [r["seconds_per_video"] for r in table6]  # one run, not two
    importance = json.loads((folder / "importance.json").read_text())["rows"]
    assert {r["measure"] for r in importance} == {"gradcam", "zero", "mean"}
    assert all(r["spearman"] == 1.0 for r in importance if r["model_a"] == r["model_b"])
    assert "AAP(l2,1)" in (folder / "table6.md").read_text()
