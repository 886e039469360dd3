"""Run folders are sava's only when sava made them; one process at a time writes into one; a corrupted
manifest line costs one video's re-attack, never the folder."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pytest

from sava.cli import main
from sava.errors import ConfigError
from sava.files import read_records
from sava.runner.folder import LOCK, MARKER, claim, locked

ATTACK = ["attack", "--model", "tsn-digits", "--num-videos", "3", "--iters", "3", "--no-progress", "--device", "cpu"]


def test_a_folder_sava_did_not_make_is_refused_and_left_untouched(tmp_path, capsys):
    """Defect 1: a user's videos_*.jsonl was merged into sava's manifest and deleted."""
    folder = tmp_path / "mine"
    folder.mkdir()
    mine = folder / "videos_annotations.jsonl"
    mine.write_text('{"video_id": "x", "note": "my own file"}\n')
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    assert main([*ATTACK, "--out", str(folder)]) == 2
    assert "not made by sava" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


def test_out_naming_a_file_or_an_unwritable_folder_is_an_error_line(tmp_path, capsys):
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    assert main([*ATTACK, "--out", str(a_file)]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err
    if os.geteuid() != 0:  # root writes anywhere
        locked_dir = tmp_path / "ro"
        locked_dir.mkdir(mode=0o500)
        assert main([*ATTACK, "--out", str(locked_dir / "run")]) == 2
        assert "cannot write" in capsys.readouterr().err


def test_an_empty_folder_is_claimed_and_a_sava_folder_resumed(tmp_path):
    folder = tmp_path / "empty"
    folder.mkdir()
    assert claim(folder) is False and (folder / MARKER).is_file()
    assert claim(folder) is True


def test_a_live_lock_keeps_a_second_process_out_and_a_dead_ones_lock_is_taken_over(tmp_path):
    """Defect 3: two processes attacked every video of one folder."""
    folder = tmp_path / "run"
    claim(folder)
    with locked(folder):
        owner = json.loads((folder / LOCK).read_text())
        assert owner["pid"] == os.getpid() and owner["host"] == socket.gethostname()
        with pytest.raises(ConfigError, match="in use by another sava process"):
            with locked(folder):
                pass
    assert not (folder / LOCK).exists()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = {"pid": int(dead.stdout), "host": socket.gethostname(), "started": time.time() - 60}
    (folder / LOCK).write_text(json.dumps(stale))
    with locked(folder):
        assert json.loads((folder / LOCK).read_text())["pid"] == os.getpid()
    (folder / LOCK).write_text(json.dumps(stale | {"host": "elsewhere"}))
    with pytest.raises(ConfigError, match="on host 'elsewhere'"):
        with locked(folder):
            pass


def test_a_second_attack_on_a_live_folder_is_refused(tmp_path):
    folder = tmp_path / "live"
    claim(folder)
    with locked(folder):
        done = subprocess.run([sys.executable, "-m", "sava.cli", *ATTACK, "--out", str(folder)], capture_output=True,
                              text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert done.returncode == 2 and "in use by another sava process" in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("sava attack: error:")
    assert not (folder / "videos.jsonl").exists()


def test_a_corrupted_manifest_line_is_reported_skipped_and_its_video_attacked_again(tmp_path, capsys):
    """Defect 4: one corrupted line in the middle made the folder unresumable and unmergeable."""
    folder = tmp_path / "run"
    assert main([*ATTACK, "--out", str(folder)]) == 0
    manifest = folder / "videos.jsonl"
    lines = manifest.read_text().splitlines()
    assert len(lines) == 3
    lost = json.loads(lines[1])["video_id"]
    lines[1] = lines[1][:25] + "\x00garbage" + lines[1][40:]
    manifest.write_text("\n".join(lines) + "\n")
    problems = []
    assert [r["video_id"] for r in read_records(manifest, problems)] == [json.loads(lines[0])["video_id"],
                                                                        json.loads(lines[2])["video_id"]]
    assert problems and "line 2" in problems[0]
    capsys.readouterr()
    assert main([*ATTACK, "--out", str(folder)]) == 0
    err = capsys.readouterr().err
    assert "line 2" in err and "attacked again" in err
    records = read_records(manifest)
    assert sorted(r["video_id"] for r in records) == sorted({json.loads(lines[0])["video_id"], lost,
                                                            json.loads(lines[2])["video_id"]})
    assert (folder / "videos.jsonl.corrupt").read_text().count("garbage") == 1  # kept aside, not lost
    assert json.loads((folder / "metrics.json").read_text())["completed"]
    assert main(["merge", str(folder)]) == 0
