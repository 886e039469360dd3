"""The ``sava`` command line: a run writes a complete run folder."""

from __future__ import annotations

import json

import pytest
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


def test_a_folder_in_which_no_file_can_be_used_ends_in_an_error_not_a_zero_fooling_rate(tmp_path, capsys):
    root = tmp_path / "videos" / "pan-left"
    root.mkdir(parents=True)
    (root / "broken.mp4").write_bytes(b"not a video")
    (root / "empty.mkv").write_bytes(b"")
    out = tmp_path / "run"
    assert run_cli("--model", "tsn-camera", "--data", str(root.parent), "--iters", "2", "--out", str(out)) == 2
    printed = capsys.readouterr()
    assert "none of the 2 video file(s) of" in printed.err and "could be used" in printed.err
    row = next(line for line in printed.out.splitlines() if line.startswith("deepsava combined"))
    assert row.split()[2:6] == ["0", "0", "-", "-"]  # videos, attacked, FR, ANI: no rate of nothing
    assert len(json.loads((out / "metrics.json").read_text())["skipped_files"]) == 2  # kept, with the reasons


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


def test_impossible_settings_are_refused_before_any_file_is_decoded(tmp_path, capsys):
    """Defects 9 and 12: such settings marked every video "cannot decode" (and exited 0), or raised."""
    cases = [
        (["--clip-frames", "0"], "--clip-frames must be at least 1"),
        (["--clip-frames", "-3"], "--clip-frames must be at least 1"),
        (["--size", "0", "0"], "--size must lie between 11"),
        (["--size", "100000", "100000"], "--size must lie between 11"),
        (["--mean", "0.5,0.5,0.5"], "--mean describes a user model"),
        (["--layout", "BCTHW"], "--layout describes a user model"),
        (["--device", "tpu"], "--device"),
    ]
    if not __import__("torch").cuda.is_available():
        cases.append((["--device", "cuda"], "torch sees no CUDA device"))
    for args, message in cases:
        out = tmp_path / "never"
        assert run_cli("--model", "tsn-digits", "--out", str(out), *args) == 2, args
        err = capsys.readouterr().err
        assert message in err and err.strip().splitlines()[-1].startswith("sava attack: error:"), (args, err)
        assert not out.exists(), f"{args} left a run folder behind"
    for args, message in [(["--margin", "nan"], "not a finite number"), (["--mean", "0.5,0.5"], "one value or three"),
                          (["--lam", "inf"], "not a finite number")]:
        try:
            run_cli("--model", "tsn-digits", *args)
        except SystemExit as exit_:
            assert exit_.code == 2
        else:
            raise AssertionError(f"{args} must be refused")
        assert message in capsys.readouterr().err


def test_a_user_model_with_nan_normalisation_or_outputs_is_an_error_naming_it(tmp_path, capsys, monkeypatch):
    """Defect 7: --mean nan attacked no video and exited 0; NaN logits failed deep inside the warp."""
    import sys

    import torch

    module_dir = tmp_path / "mods"
    module_dir.mkdir()
    # The bundled TSN, returning NaN logits whenever a gradient is wanted (in the attack's steps only).
    (module_dir / "nanmodels.py").write_text(
        "import torch\n"
        "from sava.models import load_bundled\n"
        "class Poisoned(torch.nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.inner = load_bundled('tsn-digits')\n"
        "    def forward(self, x):\n"
        "        logits = self.inner.logits(x)\n"
        "        return logits * float('nan') if torch.is_grad_enabled() else logits\n"
        "def on_perturbed():\n    return Poisoned()\n")
    monkeypatch.syspath_prepend(str(module_dir))
    common = ["--data", "digits", "--num-videos", "4", "--iters", "3", "--device", "cpu"]
    with pytest.raises(SystemExit):
        run_cli("--model", "nanmodels:on_perturbed", "--mean", "nan", *common, "--out", str(tmp_path / "a"))
    assert "--mean: 'nan' is not a finite number" in capsys.readouterr().err
    from sava import ModelInfo, VideoModel
    from sava.errors import ModelError

    with pytest.raises(ModelError, match="finite"):  # the Python API refuses it too
        VideoModel(torch.nn.Identity(), ModelInfo(mean=(float("nan"),) * 3))
    assert run_cli("--model", "nanmodels:on_perturbed", *common, "--out", str(tmp_path / "b")) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "NaN or infinite logits" in err and "nanmodels:on_perturbed" in err and "digits" in err
    sys.modules.pop("nanmodels", None)


def test_two_files_with_one_stem_are_two_videos_across_reruns(tmp_path, capsys):
    """Defect 2: v.mp4 and v.mkv crashed the run with a KeyError; a rerun mixed their results."""
    clips = bundled("digits", "test")
    root = tmp_path / "videos" / clips.classes[int(clips.labels[0])]
    root.mkdir(parents=True)
    write_video(root / "v.mp4", clips.float_videos(0))
    write_video(root / "v.mkv", clips.float_videos(0))
    out = tmp_path / "run"
    args = ["--model", "tsn-digits", "--data", str(tmp_path / "videos"), "--size", "32", "32", "--iters", "3",
            "--num-videos", "0", "--device", "cpu", "--out", str(out)]
    assert run_cli(*args) == 0
    assert run_cli(*args) == 0  # a rerun finds both done
    assert "2 of 2 videos already done" in capsys.readouterr().err
    records = [json.loads(line) for line in (out / "videos.jsonl").read_text().splitlines()]
    assert sorted(r["video_id"] for r in records) == [f"{root.name}/v.mkv", f"{root.name}/v.mp4"]
    perturbations = {r["perturbation"] for r in records if "perturbation" in r}
    assert len(perturbations) == sum(r["attacked"] for r in records)
    assert json.loads((out / "metrics.json").read_text())["completed"]


def test_an_unexpected_error_is_one_line_and_debug_shows_the_traceback(monkeypatch, capsys):
    import sava.cli as cli

    def broken(args):
        raise RuntimeError("something inside broke")

    monkeypatch.setitem(cli.COMMANDS, "models", broken)
    assert main(["models"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("sava models: error: unexpected RuntimeError: something inside")
    try:
        main(["--debug", "models"])
    except RuntimeError as exc:
        assert "something inside broke" in str(exc)
    else:
        raise AssertionError("--debug must let the traceback through")
