"""The batch pipeline: a killed run resumed, and a two-process torchrun run,
give the outputs of one uninterrupted run (to float32 rounding); lossless adversarial clips."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from sava.cli import main
from sava.data import bundled
from sava.data.video_io import decode_frames
from sava.files import read_records
from tests.device import DEVICE

ATTACK = ["attack", "--model", "tsn-digits", "--num-videos", "8", "--iters", "30", "--batch-size", "2",
          "--no-progress", "--device", DEVICE]
ENV = dict(os.environ, OMP_NUM_THREADS="1")
# A resumed or sharded run puts other videos side by side in a batch, and batched convolutions round
# differently for another batch: outputs agree to this bound, not bit for bit (README, "Resume").
ROUNDING = 1e-5


def sava(*args) -> list[str]:
    return [sys.executable, "-m", "sava.cli", *args]


def outputs(folder: Path) -> tuple[dict, dict]:
    """Every manifest record (without its timing) and every perturbation tensor of a run folder."""
    records = {r["video_id"]: {k: v for k, v in r.items() if k != "seconds"}
               for r in read_records(folder / "videos.jsonl")}
    tensors = {vid: load_file(str(folder / r["perturbation"])) for vid, r in records.items() if "perturbation" in r}
    return records, tensors


def same_outputs(first: Path, second: Path) -> None:
    """The same videos, frames, iterations and decisions; figures and tensors within ``ROUNDING``."""
    records_a, tensors_a = outputs(first)
    records_b, tensors_b = outputs(second)
    assert records_a.keys() == records_b.keys()
    for vid, a in records_a.items():
        b = records_b[vid]
        assert a.keys() == b.keys(), vid
        for key in a:
            if isinstance(a[key], float) and isinstance(b[key], float):
                assert b[key] == pytest.approx(a[key], rel=ROUNDING, abs=ROUNDING), (vid, key)
            else:
                assert a[key] == b[key], (vid, key)
    assert tensors_a.keys() == tensors_b.keys()
    for vid in tensors_a:
        for name in tensors_a[vid]:
            torch.testing.assert_close(tensors_b[vid][name], tensors_a[vid][name], atol=ROUNDING, rtol=0)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    folder = tmp_path_factory.mktemp("runs") / "whole"
    subprocess.run(sava(*ATTACK, "--out", str(folder)), check=True, capture_output=True, env=ENV)
    return folder


def test_a_killed_run_resumes_to_the_same_outputs(uninterrupted, tmp_path):
    folder = tmp_path / "killed"
    process = subprocess.Popen(sava(*ATTACK, "--out", str(folder)), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, env=ENV)
    manifest = folder / "videos.jsonl"
    deadline = time.time() + 300
    while not (manifest.is_file() and len(manifest.read_text().splitlines()) >= 3):
        assert process.poll() is None and time.time() < deadline, "the run ended before it could be killed"
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    done_before = len(read_records(manifest))
    assert 3 <= done_before < 8
    with open(manifest, "a") as handle:
        handle.write('{"video_id": "digits-te')  # the torn line a crash mid-write leaves
    resumed = subprocess.run(sava(*ATTACK, "--out", str(folder)), check=True, capture_output=True, text=True,
                             env=ENV)
    assert f"{done_before} of 8 videos already done" in resumed.stderr
    same_outputs(uninterrupted, folder)
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["completed"] and metrics["summary"]["videos"] == 8


def test_two_torchrun_processes_give_the_outputs_of_one(uninterrupted, tmp_path):
    folder = tmp_path / "sharded"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               "-m", "sava.cli", *ATTACK, "--out", str(folder)]
    subprocess.run(command, check=True, capture_output=True, env=ENV, timeout=600)
    same_outputs(uninterrupted, folder)
    sessions = [json.loads(line) for line in (folder / "sessions.jsonl").read_text().splitlines()]
    assert sorted((s["rank"], s["world"], s["videos"]) for s in sessions) == [(0, 2, 4), (1, 2, 4)]
    assert not list(folder.glob("videos.rank-*.jsonl"))  # merged into videos.jsonl
    summary = json.loads((folder / "metrics.json").read_text())["summary"]
    assert summary == pytest.approx(json.loads((uninterrupted / "metrics.json").read_text())["summary"] |
                                    {"seconds": summary["seconds"], "videos_per_second": summary["videos_per_second"]},
                                    rel=ROUNDING, abs=ROUNDING)


def test_changed_settings_refuse_to_resume(uninterrupted, capsys):
    argv = [a if a != "30" else "31" for a in ATTACK]
    assert main([*argv, "--out", str(uninterrupted)]) == 2
    assert "settings.max_iters: 30 then, 31 now" in capsys.readouterr().err


def test_a_run_under_another_search_does_not_resume(tmp_path, capsys):
    """BO's picks depend on more than its name: its settings are recorded, and a folder whose record lacks them
    (made before they were recorded, under an older BO) or differs in them refuses to resume."""
    folder = tmp_path / "bo"
    argv = ["attack", "--model", "tsn-digits", "--num-videos", "1", "--iters", "2", "--selector", "bo",
            "--bo-evaluations", "2", "--score-steps", "1", "--no-progress", "--device", "cpu", "--out", str(folder)]
    assert main(argv) == 0
    run = json.loads((folder / "run.json").read_text())
    assert run["settings"]["selection"] == {"evaluations": 2, "initial": 1, "score_steps": 1, "seed": 0,
                                            "start": "saliency", "temporal_sigma": 2.5}
    assert main([a if a != "2" else "3" for a in argv]) == 2  # --bo-evaluations 3 (and --iters 3)
    assert "settings.selection: {'evaluations': 2, " in capsys.readouterr().err
    del run["settings"]["selection"]
    (folder / "run.json").write_text(json.dumps(run))
    assert main(argv) == 2
    assert "settings.selection: None then" in capsys.readouterr().err


def test_a_bf16_run_is_recorded_and_an_fp32_run_does_not_resume_it(tmp_path, capsys):
    folder = tmp_path / "bf16"
    argv = ["attack", "--model", "tsn-digits", "--num-videos", "2", "--iters", "3", "--no-progress",
            "--out", str(folder)]
    assert main([*argv, "--precision", "bf16"]) == 0
    assert json.loads((folder / "run.json").read_text())["precision"] == "bf16"
    assert len(read_records(folder / "videos.jsonl")) == 2
    assert main(argv) == 2
    assert "precision: 'bf16' then, None now" in capsys.readouterr().err


def test_adversarial_clips_are_written_losslessly(tmp_path):
    folder = tmp_path / "videos"
    assert main(["attack", "--model", "tsn-digits", "--num-videos", "2", "--iters", "5", "--no-progress",
                 "--save-videos", "--out", str(folder)]) == 0
    clips = bundled("digits", "test")
    from sava.transfer import from_run_folder, replay

    source = from_run_folder(folder)
    for index, (record, result) in enumerate(zip(read_records(folder / "videos.jsonl"), source.results)):
        decoded = torch.from_numpy(__import__("numpy").stack(decode_frames(folder / record["adversarial_video"])))
        expected = (replay(clips.float_videos(index), result) * 255).round().to(torch.uint8).permute(0, 2, 3, 1)
        assert torch.equal(decoded, expected)


def test_merge_command(uninterrupted, capsys):
    assert main(["merge", str(uninterrupted)]) == 0
    assert "8 videos" in capsys.readouterr().out
    assert main(["merge", str(uninterrupted / "perturbations")]) == 2
