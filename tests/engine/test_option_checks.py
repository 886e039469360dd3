"""``sava attack``'s options checked as a whole, before any attack: a model whose outputs do not match the
class names given, numbers no method can use, and options the chosen method ignores."""

from __future__ import annotations

import json
import re

import pytest

from sava.cli import main
from tests.engine.test_classes import attack, folder  # noqa: F401 -- the class-folder fixture of real videos
from tests.engine.test_data import video_folder  # noqa: F401 -- real H.264 files of the camera classes


def test_a_model_whose_outputs_differ_from_the_classes_given_stops_before_any_attack(folder, tmp_path,  # noqa: F811
                                                                                      capsys):
    out = tmp_path / "run"
    assert attack(folder, out, "--model", "tests.engine.toy_models:brightness_named",
                  "--classes", "dark,bright,grey") == 2
    err = capsys.readouterr().err
    assert "has 2 outputs, but --classes names 3 classes" in err
    assert not (out / "videos.jsonl").exists()  # nothing was attacked


@pytest.mark.parametrize("option, value, method", [("--bo-evaluations", "-1", "deepsava"),
                                                   ("--tt-shift", "-3", "fgsm"), ("--score-steps", "0", "sparse"),
                                                   ("--iters", "-5", "flicker"), ("--target-class", "-1", "bim")])
def test_numbers_that_make_no_sense_are_refused_whatever_the_method(option, value, method, tmp_path, capsys):
    assert main(["attack", "--method", method, option, value, "--out", str(tmp_path / "x")]) == 2
    assert f"{option} must be at least" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_an_option_the_method_ignores_is_said_once(tmp_path, capsys):
    assert main(["attack", "--method", "sparse", "--num-videos", "2", "--iters", "2", "--no-progress",
                 "--flow-lr", "0.2", "--tt-weights", "linear", "--out", str(tmp_path / "run")]) == 0
    err = capsys.readouterr().err
    assert err.count("--flow-lr is ignored by sparse") == 1 and err.count("--tt-weights is ignored by sparse") == 1
    assert "--iters" not in err and "--num-videos" not in err  # the options it uses are not mentioned


@pytest.mark.parametrize("given, recorded", [((), 0.9), (("--min-ssim", "none"), None),
                                             (("--min-ssim", "0.95"), 0.95)])
def test_sparse_keeps_its_ssim_budget_unless_told_none(given, recorded, tmp_path):
    out = tmp_path / "run"
    assert main(["attack", "--method", "sparse", "--num-videos", "2", "--iters", "2", "--no-progress", *given,
                 "--out", str(out)]) == 0
    assert json.loads((out / "metrics.json").read_text())["settings"]["min_ssim"] == recorded


def test_a_budget_that_is_neither_a_number_nor_none_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["attack", "--min-ssim", "high", "--out", str(tmp_path / "x")])
    assert "'high' is not a number" in capsys.readouterr().err


def test_every_method_option_reaches_a_keyword_its_attack_takes():
    import inspect

    from sava.attacks import METHODS, SPARSE_METHODS
    from sava.cli.checks import METHOD_OPTIONS

    assert set(METHOD_OPTIONS) == set(SPARSE_METHODS)
    for method, table in METHOD_OPTIONS.items():
        assert set(table.values()) <= set(inspect.signature(METHODS[method].__init__).parameters), method


@pytest.mark.parametrize("method, option, value, setting", [("deepsava", "--noise-lr", "0.02", "noise_lr"),
                                                            ("sparse", "--noise-lr", "0.02", "lr"),
                                                            ("flicker", "--lam", "0.3", "lam"),
                                                            ("keyframe", "--boundary", "0.5", "boundary")])
def test_a_method_option_reaches_the_attack(method, option, value, setting):
    import argparse

    from sava.cli import attack as cli_attack

    parser = argparse.ArgumentParser()
    cli_attack.add_parser(parser.add_subparsers())
    args = parser.parse_args(["attack", "--method", method, option, value])
    assert cli_attack.build_attack(args, None).settings[setting] == float(value)


def test_a_model_that_refuses_the_clips_is_told_the_fix_before_any_run_folder_and_runs_once_described(
        folder, tmp_path, capsys):  # noqa: F811
    out = tmp_path / "run"
    assert attack(folder, out, "--model", "tests.engine.toy_models:channels_first_ten") == 2
    err = capsys.readouterr().err
    assert "fails on a clip of 4 frames of 3 x 32 x 32, passed as BTCHW" in err and "give --layout BCTHW" in err
    assert not out.exists()
    # Described (its ten outputs named too: the folders' two classes among them), it runs; the run folder says
    # how the model was fed.
    ten = ",".join(["bright", "dark"] + [f"other{i}" for i in range(8)])
    assert attack(folder, out, "--model", "tests.engine.toy_models:channels_first_ten", "--layout", "BCTHW",
                  "--mean", "0.5", "--std", "0.25", "--classes", ten) == 0
    recorded = json.loads((out / "metrics.json").read_text())["model_input"]
    assert recorded == {"layout": "BCTHW", "mean": [0.5], "std": [0.25], "weights": None}


def test_a_bundled_model_decodes_video_files_at_its_own_clip_and_an_older_folder_resumes_at_its_own(
        video_folder, tmp_path, capsys):  # noqa: F811
    """c3d-camera was trained on 16 frames of 48 x 48: files decode so unless told otherwise, while a run
    folder begun at another size (the fixed 112 x 112 of earlier versions) resumes at the size it recorded."""
    root, _ = video_folder
    common = ["attack", "--no-progress", "--model", "c3d-camera", "--data", str(root), "--num-videos", "2",
              "--iters", "1"]
    assert main([*common, "--out", str(tmp_path / "new")]) == 0
    recorded = json.loads((tmp_path / "new" / "metrics.json").read_text())
    assert (recorded["clip_frames"], recorded["size"]) == (16, [48, 48])
    assert main([*common, "--size", "112", "112", "--out", str(tmp_path / "old")]) == 0
    capsys.readouterr()
    assert main([*common, "--out", str(tmp_path / "old")]) == 0  # no --size: the folder's own, not a refusal
    assert "2 of 2 videos already done" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["attack", "train", "export", "transfer", "reproduce"])
def test_help_states_each_default_once(command, capsys):
    """argparse's formatter appended "(default: None)" after help texts that already named their default."""
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = capsys.readouterr().out
    assert "(default: None)" not in text
    for option in re.split(r"\n  (?=-)", text):
        assert option.count("(default:") <= 1, option
    if command == "attack":  # a plain default is still shown
        assert "--num-videos NUM_VIDEOS attack the first N videos (0: all) (default: 64)" in " ".join(text.split())
