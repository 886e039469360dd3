"""``sava reproduce`` on a user's own model and video files: the paper's tables that need one model and its
clips (the attack comparisons, and the defence tables given training clips), labelled as the model numbers
its outputs; the tables that compare the bundled models of one dataset are refused for it, saying why."""

from __future__ import annotations

import json

import pytest
import torch

from sava.cli import main
from sava.models.loading import load_named_model
from sava.reproduce import user_context
from tests.engine.test_train_user import BRIGHTNESS, CLIP, footage  # noqa: F401 -- real video class folders

torch.set_num_threads(2)


def reproduce(*options: str) -> int:
    return main(["reproduce", *options, *CLIP, "--num-videos", "3", "--iters", "2"])


def test_the_clips_are_the_first_usable_files_labelled_by_the_models_names(footage, tmp_path):  # noqa: F811
    broken = tmp_path / "data" / "bright"
    broken.mkdir(parents=True)
    (broken / "aaa-broken.avi").write_bytes(b"RIFF" + bytes(200))  # sorts first: skipped, said, not counted
    for name in ("bright", "dark"):
        (tmp_path / "data" / name).mkdir(exist_ok=True)
        for clip in sorted((footage / "train" / name).iterdir())[:2]:
            (tmp_path / "data" / name / clip.name).write_bytes(clip.read_bytes())
    said = []
    ctx = user_context(load_named_model(BRIGHTNESS), str(tmp_path / "data"), (4, 32, 32), 3, 2, said.append)
    assert ctx.videos.shape == (3, 4, 3, 32, 32)
    assert any("skipped video bright/aaa-broken.avi" in line for line in said)
    # Brightness numbers dark 0 and bright 1, the reverse of the folders' sorted order.
    assert ctx.labels.tolist() == [1, 1, 0]
    assert ctx.labels.tolist() == (ctx.videos.mean(dim=(1, 2, 3, 4)) > 0.5).long().tolist()


def test_attack_and_defence_tables_on_a_user_model(footage, tmp_path, capsys):  # noqa: F811
    out = tmp_path / "tables"
    assert reproduce("table3", "table11", "--model", BRIGHTNESS, "--data", str(footage / "test"), "--train-data",
                     str(footage / "train"), "--out", str(out)) == 0
    folder = out / "tests.engine.toy_models_brightness_named"
    table3 = json.loads((folder / "table3.json").read_text())
    assert table3["videos"] == 2 and "--data" in table3["command"]  # the test folder's two clips
    assert {row["approach"] for row in table3["rows"]} >= {"Sparse (first frame)", "DeepSAVA with BO"}
    table11 = json.loads((folder / "table11.json").read_text())
    assert [row["approach"] for row in table11["rows"]] == ["none", "pgd", "combined", "injected"]
    # Each defence trained on the training folder and was measured on the test folder's clips.
    config = json.loads((folder / "training" / "pgd" / "config.json").read_text())
    assert (config["data"], config["test_data"]) == (str(footage / "train"), str(footage / "test"))
    assert all(row["clean_accuracy"] == 1.0 for row in table11["rows"])  # Brightness is right on every clip


@pytest.mark.parametrize("options, message", [
    (["tt", "--model", BRIGHTNESS, "--data", "DATA"], "tt cannot run here"),
    (["table11", "--model", BRIGHTNESS, "--data", "DATA"], "need --train-data"),
    (["table3", "--model", BRIGHTNESS], "--data is needed"),
    (["table3", "--model", "all", "--data", "DATA"], "--model all runs every bundled model"),
    (["table3", "--model", "tsn-digits", "--layout", "BCTHW"], "--layout describes a user model"),
])
def test_tables_that_do_not_apply_are_refused_before_any_work(footage, tmp_path, capsys, options,  # noqa: F811
                                                              message):
    given = [str(footage / "test") if item == "DATA" else item for item in options]
    assert reproduce(*given, "--out", str(tmp_path / "tables")) == 2
    assert message in capsys.readouterr().err and not (tmp_path / "tables").exists()
