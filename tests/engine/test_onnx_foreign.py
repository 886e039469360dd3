"""ONNX files that ``sava export`` did not write, as deployment stacks export them: any input name, channels
first, normalisation outside the graph, a fixed batch of one, several outputs. Fed through a real ONNX Runtime
session and held to the torch module they were exported from."""

from __future__ import annotations

import json
import warnings

import pytest
import torch
from torch import nn

from sava.cli import main
from sava.errors import InputError, ModelError
from sava.export import OnnxModel, export_onnx, load_runtime_model
from sava.models.bundled import load_bundled

pytest.importorskip("onnxruntime")


class ChannelsFirst(nn.Module):
    """A bundled model as someone else's code would export it: ``B x C x T x H x W`` normalised clips in,
    (scores, a second output) out."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module

    def forward(self, clips):
        scores = self.module(clips.transpose(1, 2))
        return scores, scores.mean(dim=1)


@pytest.fixture(scope="module")
def foreign(tmp_path_factory):
    """tsn-digits exported by torch.onnx as a user would, input ``input``, fixed batch 1."""
    model = load_bundled("tsn-digits")
    path = tmp_path_factory.mktemp("foreign") / "digits_cf.onnx"
    t, c, h, w = model.info.clip_shape
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter announces its deprecation
        torch.onnx.export(ChannelsFirst(model.module).eval(), (torch.rand(1, c, t, h, w),), str(path),
                          dynamo=False, input_names=["input"], output_names=["scores", "mean"])
    return model, path


def test_a_foreign_file_is_fed_as_its_input_asks_and_gives_the_modules_logits(foreign):
    model, path = foreign
    mean, std = model.info.mean, model.info.std
    runtime = OnnxModel(path, mean=mean, std=std)
    assert runtime.info.layout == "BCTHW"  # read from the input's fixed dimensions: 3 channels after the batch
    videos = torch.rand(3, *model.info.clip_shape)  # three clips through a graph fixed at a batch of one
    with torch.no_grad():
        expected = model.logits(videos)  # sava's adapter: its own normalisation and layout, in torch
    torch.testing.assert_close(runtime.logits(videos), expected, rtol=1e-4, atol=1e-4)
    with pytest.raises(InputError, match=r"takes clips of T x C x H x W = 16 x 3 x 32 x 32 \(its input 'input'"):
        runtime.logits(torch.rand(1, 8, 3, 32, 32))


def test_what_a_foreign_file_cannot_take_is_named(foreign, tmp_path):
    _, path = foreign

    class TwoInputs(nn.Module):
        def forward(self, a, b):
            return a.flatten(1) + b.flatten(1)

    class Flat(nn.Module):
        def forward(self, x):
            return x[:, :2]

    for name, module, example in (("two.onnx", TwoInputs(), (torch.rand(1, 4), torch.rand(1, 4))),
                                  ("flat.onnx", Flat(), (torch.rand(1, 4),))):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(module, example, str(tmp_path / name), dynamo=False)
    with pytest.raises(ModelError, match="takes 2 inputs"):
        OnnxModel(tmp_path / "two.onnx")
    with pytest.raises(ModelError, match="takes a rank-2 input"):
        OnnxModel(tmp_path / "flat.onnx")
    with pytest.raises(ModelError, match="layout must be one of"):
        OnnxModel(path, layout="CTHW")
    with pytest.raises(ModelError, match="std must be finite and positive"):
        OnnxModel(path, std=(0.0,))
    with pytest.raises(ModelError, match="tensorrt runtime takes sava exports"):
        load_runtime_model(str(path), "tensorrt")


def test_a_sava_export_still_refuses_a_description(tmp_path):
    path = tmp_path / "digits.onnx"
    export_onnx(load_bundled("tsn-digits"), path)
    with pytest.raises(ModelError, match="is a sava export: it carries its own layout"):
        OnnxModel(path, layout="BCTHW")


def test_sava_transfer_takes_a_foreign_file_described_on_the_command_line(foreign, tmp_path, capsys):
    """Its row must be the torch model's row: the same module, fed through ONNX Runtime."""
    model, path = foreign
    run = tmp_path / "run"
    assert main(["attack", "--no-progress", "--model", "tsn-digits", "--num-videos", "4", "--iters", "5",
                 "--out", str(run)]) == 0
    (path.parent / "classes.txt").write_text("\n".join(model.classes) + "\n")  # named as a user would name it
    mean, std = (",".join(map(str, values)) for values in (model.info.mean, model.info.std))
    out = tmp_path / "transfer"
    assert main(["transfer", "--runs", str(run), "--targets", f"tsn-digits,{path}", "--runtime",
                 "torch,onnxruntime", "--mean", mean, "--std", std, "--out", str(out)]) == 0
    rows = {row["target"]: row for row in json.loads((out / "transfer.json").read_text())["rows"]}
    torch_row, foreign_row = rows["tsn-digits [torch]"], rows[f"{path} [onnxruntime]"]
    assert foreign_row["clean_predictions"] == torch_row["clean_predictions"]
    assert foreign_row["adversarial_predictions"] == torch_row["adversarial_predictions"]
    assert foreign_row["fooling_rate"] == torch_row["fooling_rate"]


def test_a_targets_file_describes_a_foreign_file_on_its_own(foreign, tmp_path):
    model, path = foreign
    run = tmp_path / "run"
    assert main(["attack", "--no-progress", "--model", "tsn-digits", "--num-videos", "2", "--iters", "2",
                 "--out", str(run)]) == 0
    described = {"model": str(path), "mean": list(model.info.mean), "std": list(model.info.std),
                 "classes": ",".join(model.classes), "layout": "BCTHW"}
    (tmp_path / "targets.json").write_text(json.dumps([described]))
    out = tmp_path / "transfer"
    assert main(["transfer", "--runs", str(run), "--targets", str(tmp_path / "targets.json"), "--runtime",
                 "onnxruntime", "--out", str(out)]) == 0
    (row,) = json.loads((out / "transfer.json").read_text())["rows"]
    records = [json.loads(line) for line in (run / "videos.jsonl").read_text().splitlines()]
    assert row["clean_predictions"] == [r["clean_pred"] for r in records]  # the run's own model, in ORT
