"""Adversarial training: each defence's inner attack stays in its budget and
does optimise; a killed training run resumes to the same weights."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from sava import ConfigError
from sava.data import bundled
from sava.models import load_bundled
from sava.train import PGD, Combined, TrainConfig, make_defence, train

torch.set_num_threads(2)


@pytest.fixture(scope="module")
def batch():
    clips = bundled("digits", "train")
    return load_bundled("tsn-digits"), clips.float_videos(slice(0, 6)), clips.labels[:6]


def loss(model, videos, labels):
    with torch.no_grad():
        return float(F.cross_entropy(model.logits(videos), labels))


def test_pgd_stays_in_budget_on_its_frames_and_raises_the_loss(batch):
    model, videos, labels = batch
    eps = 4 / 255
    adversarial = PGD(steps=4, epsilon=eps, frames=2).inputs(model, videos, labels)
    change = (adversarial - videos).abs()
    assert float(change.max()) <= eps + 1e-6 and float(adversarial.min()) >= 0 and float(adversarial.max()) <= 1
    assert ((change.flatten(2).amax(dim=2) > 0).sum(dim=1) <= 2).all()  # two frames per clip at most
    random_start = (videos + (torch.rand(videos.shape) * 2 - 1) * eps).clamp(0, 1)
    assert loss(model, adversarial, labels) > loss(model, random_start, labels)
    assert not any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.module.parameters())


def test_combined_perturbs_its_frames_within_budget_and_raises_the_loss(batch):
    model, videos, labels = batch
    defence = Combined(frames=1, steps=4, epsilon=4 / 255, max_flow=0.5)
    adversarial = defence.inputs(model, videos, labels)
    changed = ((adversarial - videos).abs().flatten(2).amax(dim=2) > 0).sum(dim=1)
    assert (changed <= 1).all()
    random_defence = Combined(frames=1, steps=1, epsilon=4 / 255, max_flow=0.5, alpha=1e-9)  # the random start
    assert loss(model, adversarial, labels) > loss(model, random_defence.inputs(model, videos, labels), labels)
    # Noise within epsilon and flow within max_flow bound the change: warp moves a pixel by < 0.5 px.
    assert float((adversarial - videos).abs().max()) <= 1.0


def test_bad_settings_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="unknown defence"):
        make_defence("trades")
    with pytest.raises(ConfigError, match="epsilon"):
        make_defence("pgd", epsilon=0)
    train(TrainConfig(model="tsn-digits", defence="none", epochs=1, limit=16), tmp_path, progress=False)
    with pytest.raises(ConfigError, match="epochs: 1 then, 2 now"):
        train(TrainConfig(model="tsn-digits", defence="none", epochs=2, limit=16), tmp_path, progress=False)


COMMAND = ["train", "--model", "tsn-digits", "--defence", "combined", "--epochs", "2", "--limit", "96",
           "--batch-size", "8", "--steps", "2", "--checkpoint-every", "1", "--no-progress"]


def test_a_killed_training_run_resumes_to_the_same_weights(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    subprocess.run([sys.executable, "-m", "sava.cli", *COMMAND, "--out", str(whole)], check=True,
                   capture_output=True, env=env)
    process = subprocess.Popen([sys.executable, "-m", "sava.cli", *COMMAND, "--out", str(killed)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    checkpoint, deadline = killed / "checkpoint.safetensors", time.time() + 300
    while True:
        if checkpoint.is_file():
            try:
                state = load_file(str(checkpoint))
                if int(state["epoch"]) == 1 or int(state["position"]) >= 40:  # mid-run: second half of epoch 1 or later
                    break
            except Exception:  # noqa: BLE001 -- caught between write and rename
                pass
        assert process.poll() is None and time.time() < deadline, "the run ended before it could be killed"
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    resumed = subprocess.run([sys.executable, "-m", "sava.cli", *COMMAND, "--out", str(killed)], check=True,
                             capture_output=True, text=True, env=env)
    assert "resuming" in resumed.stderr
    first, second = load_file(str(whole / "model.safetensors")), load_file(str(killed / "model.safetensors"))
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)
    log = [json.loads(line) for line in (killed / "log.jsonl").read_text().splitlines()]
    assert [entry["epoch"] for entry in log] == [1, 2]
