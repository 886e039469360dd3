"""ONNX export and the black-box runtimes, checked against the torch models
they came from (real ONNX Runtime sessions; TensorRT where it exists)."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from sava import ConfigError, DeepSAVA, InputError, ModelError
from sava.data import bundled
from sava.export import OnnxModel, TensorRTModel, export_onnx, load_runtime_model
from sava.models.bundled import bundled_names, load_bundled
from sava.transfer import replay

torch.set_num_threads(2)
pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    folder = tmp_path_factory.mktemp("onnx")
    return {name: (export_onnx(load_bundled(name), folder / f"{name}.onnx"), folder / f"{name}.onnx")
            for name in bundled_names()}


@pytest.mark.parametrize("name", bundled_names())
def test_every_bundled_model_exports_and_matches_torch_at_other_batch_sizes(exports, name):
    report, path = exports[name]
    model, session = load_bundled(name), OnnxModel(path)
    assert session.providers[0] == "CPUExecutionProvider" and not session.white_box
    assert session.classes == model.classes and session.info.clip_shape == model.info.clip_shape
    t = model.info.clip_shape[0]
    shapes = [(5, *model.info.clip_shape), (33, *model.info.clip_shape)]  # 33: beyond one chunk of 32
    if report.dynamic_time:
        shapes.append((2, t + 8, *model.info.clip_shape[1:]))
    for shape in shapes:
        videos = torch.rand(shape, generator=torch.Generator().manual_seed(len(shape)))
        with torch.no_grad():
            expected = model.logits(videos)
        assert torch.allclose(session.logits(videos), expected, atol=1e-4), shape


def test_a_fixed_time_axis_says_why(exports):
    """A model whose graph pins T is exported with a fixed time axis, and the report carries the cause."""
    fixed = {name: report for name, (report, _) in exports.items() if not report.dynamic_time}
    assert "cnn_lstm-digits" in fixed  # torch.export specialises its T (the LSTM is unrolled)
    for name, report in fixed.items():
        assert report.fixed_time_reason and report.fixed_time_reason.split(":")[0].endswith(("Error", "Exception")), \
            (name, report.fixed_time_reason)
    assert all(report.fixed_time_reason is None for report, _ in exports.values() if report.dynamic_time)


def test_runtime_gives_torchs_decisions_on_adversarial_videos(exports):
    model, clips = load_bundled("c3d-digits"), bundled("digits", "test")
    videos, labels = clips.float_videos(slice(0, 8)), clips.labels[:8]
    run = DeepSAVA(model, frames=2, max_iters=30).run(videos, labels)
    adversarial = torch.stack([replay(v, r) for v, r in zip(videos, run.results)])
    session = OnnxModel(exports["c3d-digits"][1])
    assert torch.equal(session.predict(adversarial)[0], model.predict(adversarial)[0])
    assert any(r.success for r in run.results)  # the decisions compared include fooled ones


def test_gradient_attacks_refuse_a_runtime_model(exports):
    with pytest.raises(ConfigError, match="black-box"):
        DeepSAVA(OnnxModel(exports["tsn-digits"][1]))


def test_bad_files_shapes_and_providers_are_named(exports, tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        OnnxModel(tmp_path / "missing.onnx")
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"not a protobuf at all")
    with pytest.raises(ModelError, match="cannot load"):
        OnnxModel(corrupt)
    with pytest.raises(ModelError, match="unknown ONNX Runtime provider"):
        OnnxModel(exports["tsn-digits"][1], provider="metal")
    if "CUDAExecutionProvider" not in __import__("onnxruntime").get_available_providers():
        with pytest.raises(ModelError, match="onnxruntime-gpu"):
            OnnxModel(exports["tsn-digits"][1], provider="cuda")
    session = OnnxModel(exports["tsn-digits"][1])
    with pytest.raises(InputError, match="3 x 32 x 32"):
        session.logits(torch.rand(1, 16, 3, 24, 24))
    with pytest.raises(ModelError, match="unknown runtime"):
        load_runtime_model("tsn-digits", "openvino")


def test_an_export_that_disagrees_with_torch_is_refused(tmp_path):
    with pytest.raises(ModelError, match="differs from torch"):
        export_onnx(load_bundled("tsn-digits"), tmp_path / "strict.onnx", tolerance=0.0)
    assert not (tmp_path / "strict.onnx").exists()


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None, reason="TensorRT is installed here")
def test_tensorrt_absent_is_named(exports):
    with pytest.raises(ModelError, match="tensorrt package"):
        TensorRTModel(exports["tsn-digits"][1])


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is None or not torch.cuda.is_available(),
                    reason="needs TensorRT and an NVIDIA GPU (TensorRT cannot be installed on the CPU machines)")
@pytest.mark.parametrize("precision, tolerance", [("fp32", 1e-3), ("fp16", 5e-2)])
def test_tensorrt_engine_matches_torch(exports, tmp_path, precision, tolerance):
    model = load_bundled("c3d-digits")
    engine = TensorRTModel(exports["c3d-digits"][1], precision, cache_dir=tmp_path)
    videos = torch.rand(5, *model.info.clip_shape)
    with torch.no_grad():
        assert torch.allclose(engine.logits(videos), model.logits(videos), atol=tolerance)
    again = TensorRTModel(exports["c3d-digits"][1], precision, cache_dir=tmp_path)  # from the engine cache
    assert again.engine_path == engine.engine_path and len(list(tmp_path.glob("*.engine"))) == 1


def test_a_runtime_model_with_the_wrong_output_shape_is_an_error_naming_it():
    """Defect 12 of the hostile-input review: a runtime returning something other than B x classes."""
    from sava.export.black_box import BlackBoxModel
    from sava.models import ModelInfo

    class Flattened(BlackBoxModel):  # what a graph that forgot its pooling returns
        def _logits(self, chunk):
            return torch.zeros(len(chunk), 4, 8)

    class Wider(BlackBoxModel):  # another label set
        def _logits(self, chunk):
            return torch.zeros(len(chunk), 10)

    info = ModelInfo(name="odd.onnx", classes=[str(i) for i in range(8)], clip_shape=(4, 3, 12, 12))
    videos = torch.rand(2, 4, 3, 12, 12)
    with pytest.raises(ModelError, match=r"odd.onnx returned logits of shape \(2, 4, 8\)"):
        Flattened(info, dynamic_time=False).predict(videos)
    with pytest.raises(ModelError, match=r"shape \(2, 10\).*2 x 8"):
        Wider(info, dynamic_time=False).predict(videos)


def test_sava_export_takes_a_user_factory_and_falls_back_to_the_torchscript_exporter(tmp_path, capfd):
    """A model given as package.module:factory, whose AdaptiveAvgPool3d the dynamo exporter cannot convert:
    exported by the TorchScript-based exporter, the reason printed and kept in the file, and ONNX Runtime
    checked against the torch model here, on clips of the shape the options give."""
    import json

    import onnx

    from sava.cli import main
    from sava.models.loading import load_model

    spec = "tests.engine.toy_models:pooled_3d"
    code = main(["export", "--model", spec, "--clip-frames", "12", "--size", "40", "56", "--out", str(tmp_path),
                 "--classes", "ccw,cw,up,down"])
    assert code == 0
    out, err = capfd.readouterr()  # at the descriptors: torch's exporter prints from C++
    assert "the dynamo exporter failed" in out and "TorchScript-based exporter" in out
    assert "Torch IR graph" not in out + err and len((out + err).splitlines()) <= 4  # sava's lines, no dump
    (path,) = tmp_path.glob("*.onnx")
    metadata = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert json.loads(metadata["sava.exporter"]) == "torchscript" and json.loads(metadata["sava.dynamo_failure"])
    assert json.loads(metadata["sava.clip_shape"]) == [12, 3, 40, 56]
    runtime = OnnxModel(path)
    assert runtime.classes == ["ccw", "cw", "up", "down"]  # --classes, read back by the runtime
    torch_model = load_model(spec, device="cpu")
    videos = torch.rand(3, 12, 3, 40, 56, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = torch_model.logits(videos)
    torch.testing.assert_close(runtime.logits(videos).cpu(), expected, atol=1e-4, rtol=0)


def test_sava_export_errors_name_the_problem(tmp_path, capsys):
    from sava.cli import main

    assert main(["export", "--model", "tests.engine.toy_models:no_such_factory", "--out", str(tmp_path)]) == 2
    assert "sava export: error:" in capsys.readouterr().err
    assert main(["export", "--model", "c3d-camera", "--weights", "w.pt", "--out", str(tmp_path)]) == 2
    assert "--weights describes a user model; the bundled model 'c3d-camera' carries its own" in capsys.readouterr().err


def test_a_model_whose_trace_takes_one_branch_is_refused_with_the_reason_and_no_dump(tmp_path, capfd):
    pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")
    from sava.cli import main

    assert main(["export", "--model", "tests.engine.toy_models:branchy", "--clip-frames", "4", "--size", "16",
                 "16", "--out", str(tmp_path)]) == 2
    out, err = capfd.readouterr()
    assert "ONNX Runtime differs from torch" in err and "data-dependent" in err
    assert len((out + err).strip().splitlines()) == 1  # sava's one line: no graphs or logs of torch's
    assert not list(tmp_path.glob("*.onnx"))
