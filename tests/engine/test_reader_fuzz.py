"""The Python readers of what lies on disk, fed damaged input: manifest lines and perturbation files. Each
either reads what is valid or raises the one error type that names the file, never anything else."""

from __future__ import annotations

import json
import random

import pytest
import torch
from safetensors.torch import save_file

from sava.errors import DataError
from sava.files import read_records
from sava.perturbation_file import read_perturbation

ROUNDS = 300


def test_manifest_reader_survives_damaged_lines(tmp_path):
    lines = [json.dumps({"video_id": f"class/clip{i}.mp4", "index": i, "attacked": True, "iterations": i})
             for i in range(6)]
    valid = ("\n".join(lines) + "\n").encode()
    rng = random.Random(0)
    path = tmp_path / "videos.jsonl"
    for round_ in range(ROUNDS):
        data = bytearray(valid)
        for _ in range(1 + round_ % 5):
            at = rng.randrange(len(data))
            kind = rng.randrange(4)
            if kind == 0:
                data[at] = rng.randrange(256)
            elif kind == 1:
                del data[at: at + rng.randrange(1, 20)]
            elif kind == 2:
                data[at:at] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 12)))
            else:
                data[at:at] = rng.choice([b"\n", b"{}\n", b'{"video_id": 3}\n', b"[1, 2]\n", b"null\n"])
        path.write_bytes(bytes(data))
        problems: list[str] = []
        records = read_records(path, problems)
        assert all(isinstance(r, dict) and isinstance(r["video_id"], str) for r in records)
        assert len(records) + len(problems) <= data.count(b"\n") + 1
        assert path.read_bytes().endswith(b"\n") or not path.read_bytes()  # a torn tail is cut, nothing else


def test_perturbation_reader_reads_valid_files_or_names_the_problem(tmp_path):
    clip_shape, frames = (4, 3, 12, 13), [1, 3]
    tensors = {"frames": torch.tensor(frames), "flow": torch.randn(2, 2, 12, 13), "noise": torch.randn(2, 3, 12, 13)}
    path = tmp_path / "p.safetensors"
    save_file(tensors, str(path))
    valid = path.read_bytes()
    flow, noise = read_perturbation(path, frames, clip_shape)
    assert torch.equal(flow, tensors["flow"]) and torch.equal(noise, tensors["noise"])
    rng = random.Random(1)
    accepted = 0
    for round_ in range(ROUNDS):
        data = bytearray(valid)
        if round_ % 3 == 0:
            data = data[: rng.randrange(len(data))]
        else:
            header_end = 8 + int.from_bytes(valid[:8], "little")
            for _ in range(1 + round_ % 4):
                at = rng.randrange(header_end if round_ % 3 == 1 else len(data))
                data[at] = rng.randrange(256)
        path.write_bytes(bytes(data))
        try:
            flow, noise = read_perturbation(path, frames, clip_shape)
        except DataError as exc:
            assert str(path) in str(exc)
            continue
        accepted += 1
        assert flow is not None or noise is not None
        assert flow is None or (flow.shape == (2, 2, 12, 13) and bool(torch.isfinite(flow).all()))
        assert noise is None or (noise.shape == (2, 3, 12, 13) and bool(torch.isfinite(noise).all()))
    assert accepted > 0  # mutations of the data section leave most files readable


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_a_non_finite_value_is_refused_with_the_file_named(tmp_path, bad):
    noise = torch.zeros(1, 3, 12, 12)
    noise[0, 1, 2, 3] = bad
    path = tmp_path / "bad.safetensors"
    save_file({"frames": torch.tensor([0]), "noise": noise}, str(path))
    with pytest.raises(DataError, match="bad.safetensors: noise holds NaN or infinite"):
        read_perturbation(path, [0], (2, 3, 12, 12))
