"""Transfer evaluation: replayed videos, run folders as sources, and the
matrix the command writes (torch and ONNX Runtime targets side by side)."""

from __future__ import annotations

import csv
import json

import pytest
import torch

from sava.cli import main
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
