"""Class order: a user model whose classes are not in the alphabetical order of the dataset's class
folders (``tests.engine.toy_models.Brightness``: output 0 is ``dark``), attacked through ``sava attack`` on
real video files written here."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sava.cli import main

av = pytest.importorskip("av")


def write_clip(path: Path, level: int, frames: int = 8) -> None:
    """A flat clip of grey ``level`` with a little texture, as MPEG-4 in AVI."""
    rng = np.random.default_rng(level)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for _ in range(frames):
            image = np.clip(level + rng.integers(-20, 20, (32, 32, 3)), 0, 255).astype(np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """Class folders ``bright`` (label 0 in sorted order) and ``dark`` (1), two clips each."""
    root = tmp_path_factory.mktemp("brightness")
    for name, levels in (("bright", (200, 220)), ("dark", (40, 60))):
        (root / name).mkdir()
        for level in levels:
            write_clip(root / name / f"clip{level}.avi", level)
    return root


def attack(folder: Path, out: Path, *options: str) -> int:
    return main(["attack", "--no-progress", "--data", str(folder), "--clip-frames", "4", "--size", "32", "32",
                 "--iters", "2", "--num-videos", "0", "--out", str(out), *options])


def metrics(out: Path) -> dict:
    return json.loads((out / "metrics.json").read_text())


def test_names_from_the_module_match_the_folders_by_name(folder, tmp_path, capsys):
    assert attack(folder, tmp_path / "run", "--model", "tests.engine.toy_models:brightness_named") == 0
    found = metrics(tmp_path / "run")
    # Every clean clip classified right: the folders were matched to the model's order, not numbered 0, 1.
    assert found["summary"]["videos"] == found["summary"]["attacked"] == 4
    assert found["classes"] == ["dark", "bright"] and "Brightness.classes" in found["class_order"]
    assert "warning" not in capsys.readouterr().err


def test_given_names_and_a_classes_file_beside_the_weights(folder, tmp_path, capsys):
    import torch
    from safetensors.torch import save_file

    model = "tests.engine.toy_models:brightness_unnamed"
    assert attack(folder, tmp_path / "given", "--model", model, "--classes", "dark,bright") == 0
    assert metrics(tmp_path / "given")["summary"]["attacked"] == 4
    weights = tmp_path / "weights" / "brightness.safetensors"
    weights.parent.mkdir()
    save_file({"scale": torch.tensor(20.0)}, str(weights))
    (weights.parent / "classes.txt").write_text("# output order\ndark\nbright\n")
    assert attack(folder, tmp_path / "file", "--model", model, "--weights", str(weights)) == 0
    found = metrics(tmp_path / "file")
    assert found["summary"]["attacked"] == 4 and found["class_order"].endswith("classes.txt")
    assert "warning" not in capsys.readouterr().err


def test_no_names_says_which_order_it_assumed_and_warns_of_low_accuracy(folder, tmp_path, capsys):
    assert attack(folder, tmp_path / "run", "--model", "tests.engine.toy_models:brightness_unnamed") == 0
    err = capsys.readouterr().err
    assert "no class names for model" in err and "bright = 0, dark = 1" in err
    # Alphabetical order is the reverse of the model's: every clean clip is "misclassified".
    assert metrics(tmp_path / "run")["summary"]["attacked"] == 0
    assert "warning: the model classified only 0% of the clean videos correctly (0 of 4)" in err
    assert "--classes in the model's order" in err
    # The run says which order its labels followed, so that a transfer can match named targets to it.
    assert metrics(tmp_path / "run")["classes"] == ["bright", "dark"]
    assert metrics(tmp_path / "run")["class_order"].startswith("none known")


def test_a_target_that_numbers_its_classes_otherwise_is_matched_by_name(folder, tmp_path, capsys):
    """``bright_first`` decides as ``brightness_named`` with its outputs swapped and spelt ``Bright``, ``DARK``:
    matched by name, it is right on every clean clip (unmatched, on none) and fooled exactly as often."""
    assert attack(folder, tmp_path / "run", "--model", "tests.engine.toy_models:brightness_named") == 0
    named, swapped = "tests.engine.toy_models:brightness_named", "tests.engine.toy_models:bright_first"
    assert main(["transfer", "--runs", str(tmp_path / "run"), "--targets", f"{named},{swapped}", "--runtime",
                 "torch", "--out", str(tmp_path / "transfer")]) == 0
    assert "numbers its classes otherwise" in capsys.readouterr().err
    rows = {row["target"].split(" ")[0]: row
            for row in json.loads((tmp_path / "transfer" / "transfer.json").read_text())["rows"]}
    assert rows[named]["videos"] == rows[swapped]["videos"] == 4
    assert rows[swapped]["fooling_rate"] == rows[named]["fooling_rate"]
    for key in ("clean_predictions", "adversarial_predictions"):  # a row keeps the target's own numbering
        assert rows[swapped][key] == [1 - p for p in rows[named][key]]


def test_names_the_model_lacks_are_an_error_naming_them(folder, tmp_path, capsys):
    assert attack(folder, tmp_path / "run", "--model", "tests.engine.toy_models:brightness_unnamed",
                  "--classes", "night,day") != 0
    err = capsys.readouterr().err
    assert "sava attack: error:" in err
    assert "does not name: bright, dark; the model's classes (--classes): night, day" in err
    assert not (tmp_path / "run").exists()  # refused before any work


@pytest.mark.parametrize(("options", "message"), [
    (["--model", "tests.engine.toy_models:brightness_unnamed", "--classes", "dark,dark"], "listed twice: dark"),
    (["--model", "tests.engine.toy_models:brightness_unnamed", "--classes", "missing/classes.txt"], "no such file"),
    (["--model", "c3d-digits", "--classes", "a,b"], "describes a user model"),
])
def test_bad_class_lists_are_named(folder, tmp_path, capsys, options, message):
    assert attack(folder, tmp_path / "run", *options) != 0
    assert message in capsys.readouterr().err


def test_a_class_file_saved_with_a_byte_order_mark_names_its_first_class(tmp_path):
    from sava.classes import read_names
    from sava.errors import SavaError

    marked = tmp_path / "classes.txt"
    marked.write_bytes(b"\xef\xbb\xbfdark\nbright\n")
    assert read_names(str(marked)) == ["dark", "bright"]  # not "\ufeffdark", which matches no folder
    marked.write_bytes(b"caf\xe9\n")
    with pytest.raises(SavaError, match="not UTF-8 text"):
        read_names(str(marked))


def test_a_model_without_names_and_another_number_of_outputs_than_classes_is_refused(folder, tmp_path, capsys):
    """Two folders and a four-way model without names: labels 0 and 1 were taken as its outputs 0 and 1 and
    the run went ahead, attacking meaningless decisions."""
    assert attack(folder, tmp_path / "run", "--model", "tests.engine.toy_models:pooled_3d") == 2
    err = capsys.readouterr().err
    assert "names no classes and has 4 outputs, but" in err and "has 2 classes (bright, dark)" in err
    assert "--classes" in err and not (tmp_path / "run").exists()


def test_a_model_that_masks_its_gradient_is_attacked_with_a_warning_that_says_so(folder, tmp_path, capsys):
    assert attack(folder, tmp_path / "masked", "--model", "tests.engine.toy_models:quantised") == 0
    err = capsys.readouterr().err
    assert "gives its logits a gradient with respect to its input that is zero" in err and "sava transfer" in err
    assert metrics(tmp_path / "masked")["summary"]["fooling_rate"] == 0.0  # what the warning explains
    assert attack(folder, tmp_path / "plain", "--model", "tests.engine.toy_models:brightness_named") == 0
    assert "masks gradients" not in capsys.readouterr().err


def test_a_model_that_takes_one_video_at_a_time_is_told_to_use_batch_size_1(folder, tmp_path, capsys):
    model = "tests.engine.toy_models:one_at_a_time"
    assert attack(folder, tmp_path / "batched", "--model", model) == 2
    err = capsys.readouterr().err
    assert "runs on one clip but fails on a batch of 2 (RuntimeError: shape '[1, -1]'" in err
    assert "give --batch-size 1" in err and "--layout" not in err
    assert attack(folder, tmp_path / "single", "--model", model, "--batch-size", "1") == 0
    assert metrics(tmp_path / "single")["summary"]["attacked"] == 4


def test_a_model_that_returns_probabilities_is_attacked_with_a_warning(folder, tmp_path, capsys):
    assert attack(folder, tmp_path / "probabilities", "--model", "tests.engine.toy_models:probabilities") == 0
    err = capsys.readouterr().err
    assert "returns probabilities" in err and "return the logits before the softmax" in err
    assert metrics(tmp_path / "probabilities")["summary"]["attacked"] == 4  # the decisions are the model's
    assert attack(folder, tmp_path / "plain", "--model", "tests.engine.toy_models:brightness_named") == 0
    assert "returns probabilities" not in capsys.readouterr().err


def test_a_factory_that_fails_is_named_as_the_source_of_the_error(folder, tmp_path, capsys):
    assert attack(folder, tmp_path / "run", "--model", "tests.engine.toy_models:broken_factory") == 2
    err = capsys.readouterr().err
    assert ("the model factory 'tests.engine.toy_models:broken_factory' raised FileNotFoundError: "
            "[Errno 2] No such file or directory: 'backbone.pth'") in err and "unexpected" not in err


def test_running_out_of_memory_says_what_to_lower_and_keeps_the_run_folder(folder, tmp_path, capsys):
    out = tmp_path / "run"
    assert attack(folder, out, "--model", "tests.engine.toy_models:greedy", "--batch-size", "4") == 1
    err = capsys.readouterr().err
    assert "error: out of memory (" in err and "lower --batch-size" in err and "the same command resumes" in err
    assert "unexpected" not in err and (out / "run.json").is_file()


def test_a_file_name_that_is_not_utf8_is_attacked_written_and_replayed(folder, tmp_path, capsys):
    """Linux file names may be any bytes: one that is not UTF-8 stopped the run at its perturbation file
    ("surrogates not allowed"). Its id spells those bytes as \\xNN."""
    import os
    import shutil

    data = tmp_path / "data"
    shutil.copytree(folder, data)
    bright = next((data / "bright").iterdir())
    os.rename(bright, os.path.join(os.fsencode(data / "bright"), b"\xff\xfe clip.avi"))
    out = tmp_path / "run"
    assert attack(data, out, "--model", "tests.engine.toy_models:brightness_named", "--save-videos") == 0
    records = [json.loads(line) for line in (out / "videos.jsonl").read_text().splitlines()]
    assert "bright/\\xff\\xfe clip.avi" in {record["video_id"] for record in records}
    assert all((out / record["perturbation"]).is_file() for record in records if record.get("perturbation"))
    assert main(["transfer", "--runs", str(out), "--targets", "tests.engine.toy_models:bright_first",
                 "--runtime", "torch", "--out", str(tmp_path / "t")]) == 0  # the id finds its file again
    # A class folder so named, for a model that names no classes: the run records the name it read.
    os.rename(data / "dark", os.path.join(os.fsencode(data), b"d\xe9rk"))
    assert attack(data, tmp_path / "unnamed", "--model", "tests.engine.toy_models:brightness_unnamed") == 0
    assert json.loads((tmp_path / "unnamed" / "run.json").read_text())["classes"] == ["bright", "d\\xe9rk"]
