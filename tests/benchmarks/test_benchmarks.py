"""Each benchmark runs end to end at a tiny size on CPU and writes complete rows.
(Timings are never asserted: benchmarks are benchmarks.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.device import DEVICE

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
REQUIRED = {"device", "commit", "torch", "op", "impl", "pass", "B", "T", "C", "H", "W", "k", "ms", "ms_p20",
            "ms_p80", "floor_bytes", "achieved_GBps"}


@pytest.mark.parametrize("op, sweep", [("ssim", []), ("perturb", ["--sweep"]), ("update", [])])
def test_benchmark_runs_and_writes_rows(op, sweep, tmp_path):
    out = tmp_path / f"{op}.jsonl"
    # The test's device, and its interpreter setting (the conftest switches it on for the CPU) passed on.
    done = subprocess.run([sys.executable, str(BENCHMARKS / f"bench_{op}.py"), "--tiny", "--repeats", "1",
                           "--device", DEVICE, "--out", str(out), *sweep],
                          capture_output=True, text=True, cwd=BENCHMARKS, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    impls = {row["impl"] for row in rows}
    assert {"reference", "triton"} <= impls
    if sweep:  # another launch configuration, timed and compared like any implementation
        assert any(impl.startswith("triton_b") for impl in impls)
    if op == "ssim":  # the design that is not the default, timed beside it
        assert "triton_one_pass" in impls
    for row in rows:
        assert REQUIRED <= set(row), REQUIRED - set(row)
        assert row["ms"] > 0 and row["op"] == op
    assert any("speedup_vs_reference" in row for row in rows if row["impl"] == "triton")


def run_benchmark(name: str, tmp_path: Path, *options: str) -> list[dict]:
    out = tmp_path / f"{name}.jsonl"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, str(BENCHMARKS / f"bench_{name}.py"), "--tiny", "--out", str(out),
                           "--device", DEVICE, *options],
                          capture_output=True, text=True, env=env, cwd=BENCHMARKS, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return [json.loads(line) for line in out.read_text().splitlines()]


def test_runtime_benchmark_compares_runtimes_against_torch_eager(tmp_path):
    pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")
    rows = run_benchmark("runtime", tmp_path)
    by_impl = {row["impl"]: row for row in rows}
    assert {"torch_eager", "onnxruntime_cpu"} <= set(by_impl)
    assert by_impl["onnxruntime_cpu"]["speedup_vs_torch_eager"] > 0 and by_impl["torch_eager"]["commit"]


def test_peer_benchmark_compares_sava_with_torchattacks_and_art(tmp_path):
    for package in ("torchattacks", "art", "skimage"):
        pytest.importorskip(package, reason="the peers extra is not installed")
    rows = run_benchmark("peers", tmp_path)
    by_system = {row["system"]: row for row in rows}
    assert set(by_system) == {"torchattacks PGD", "sava bim", "torchattacks MI-FGSM", "sava mi",
                              "ART FrameSaliency+PGD", "sava deepsava", "ART OverTheAirFlickering", "sava flicker"}
    for row in rows:
        assert row["commit"] and row["torch"] and 0 <= row["fooling_rate"] <= 1 and 0 < row["mean_ssim"] <= 1
    # The same PGD on the same clips: torchattacks and sava make the same adversarial frames.
    assert by_system["sava bim"]["mean_ssim"] == pytest.approx(by_system["torchattacks PGD"]["mean_ssim"], abs=1e-4)
    assert by_system["sava bim"]["linf"] <= 8 / 255 + 1e-6 and by_system["sava deepsava"]["frames_per_video"] == 1
    assert by_system["sava flicker"]["peer"] == "ART OverTheAirFlickering"


def test_pipeline_benchmark_compares_against_one_video_at_a_time(tmp_path):
    rows = run_benchmark("pipeline", tmp_path, "--levers", "bf16")
    assert [row["impl"] for row in rows] == ["one_at_a_time", "sava_batch4", "sava_batch4_bf16"]
    wanted = {"device", "commit", "torch", "fooling_rate", "videos_per_second", "speedup_vs_one_at_a_time"}
    for row in rows:
        assert wanted <= set(row)
    for row in rows[1:]:  # sava's runs: SSIM and the outcome re-checked by the float32 model
        assert 0 < row["mean_ssim"] <= 1 and 0 <= row["fooling_rate_fp32"] <= 1
    # In float32 the re-check replays exactly what the attack measured.
    assert rows[1]["fooling_rate_fp32"] == pytest.approx(rows[1]["fooling_rate"])


def test_pipeline_benchmark_at_a_fixed_number_of_steps_reports_the_engine_efficiency(tmp_path):
    rows = run_benchmark("pipeline", tmp_path, "--levers", "", "--fixed-steps", "2", "--selectors", "brute")
    assert [row["impl"] for row in rows] == ["one_at_a_time", "sava_batch4", "sava_brute_graphs", "sava_brute_eager"]
    scoring = rows[2:]
    for row in scoring:  # the scoring rows time the whole attack, selection included: no per-step figures
        assert row["selector"] == "brute" and row["videos_per_second"] > 0 and "step_ms" not in row
    # Graphs or none, the same attack: on CPU both run eagerly and must agree.
    assert scoring[0]["fooling_rate"] == scoring[1]["fooling_rate"]
    rows = rows[:2]
    for row in rows:
        assert row["fixed_steps"] == 2 and row["iters"] == 2
        assert row["video_steps_per_second"] == pytest.approx(row["attacked"] * 2 / row["seconds"])
        assert row["model_forward_backward_ms"] > 0 and row["step_ms"] > 0
        assert row["engine_efficiency"] == pytest.approx(row["model_forward_backward_ms"] / row["step_ms"])
    # Without early stops the step count is known: one step of 4 slots per step for sava, one video for the loop.
    assert rows[1]["step_ms"] == pytest.approx(rows[1]["seconds"] * 1e3 / 2)


def test_a_failing_anchor_is_an_error_row_and_the_run_goes_on():
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import harness
    finally:
        sys.path.remove(str(BENCHMARKS))
    import torch

    def broken(a, b):  # an extension built for another torch, say: fails when first called
        raise TypeError("incompatible function arguments")

    x, y = torch.rand(2, 3, 4, 4), torch.rand(2, 3, 4, 4)
    case = harness.Case("toy", {"B": 2}, {"forward": 96})
    case.impls["reference"] = harness.autograd_passes(lambda a, b: (a * b).sum(dim=(1, 2, 3)), (x, y), (0,))
    case.impls["broken"] = harness.autograd_passes(broken, (x, y), (0,))
    rows = harness.run_cases([case], "cpu", 2, harness.ANCHORS, None)
    by = {(row["impl"], row["pass"]): row for row in rows}
    assert len(rows) == 6
    assert all("incompatible function arguments" in by[("broken", p)]["error"] for p in
               ("forward", "backward", "forward+backward"))
    assert all(by[("reference", p)]["ms"] > 0 for p in ("forward", "backward", "forward+backward"))


def test_native_benchmark_compares_the_c_library_with_the_reference(tmp_path):
    from sava import native

    native.library()  # README's set-up builds the C library: failing to load it is a failure, not a skip
    rows = run_benchmark("native", tmp_path)
    assert {(row["op"], row["impl"]) for row in rows} >= {("apply", "native_cpu"), ("ssim_forward", "native_cpu"),
                                                           ("apply", "reference"), ("ssim_forward", "reference")}
    assert all("speedup_vs_reference" in row for row in rows if row["impl"] == "native_cpu")


def test_every_readme_table_of_figures_names_its_committed_results():
    done = subprocess.run([sys.executable, str(BENCHMARKS / "check_readme.py")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "README.md" in done.stdout and "benchmarks/README.md" in done.stdout


def test_the_readme_check_catches_a_table_without_its_source(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("Some prose.\n\n| model | FR |\n| --- | --- |\n| a | 93.1% |\n\n"
                    "From `results/missing.jsonl`:\n\n| model | FR |\n| --- | --- |\n| b | 12.5% |\n\n"
                    "| option | meaning |\n| --- | --- |\n| `--x` | a sentence, 0.3 by default |\n")
    done = subprocess.run([sys.executable, str(BENCHMARKS / "check_readme.py"), str(page)], capture_output=True,
                          text=True)
    assert done.returncode == 1
    problems = done.stderr.strip().splitlines()
    assert len(problems) == 2 and "page.md:3" in problems[0] and "missing.jsonl" in problems[1]


def test_the_gpu_runner_check_runs_its_stages_and_packs_one_archive(tmp_path):
    import tarfile

    done = subprocess.run([sys.executable, str(BENCHMARKS / "gpu_run.py"), "--check", "--stages", "pipeline",
                           "--out", str(tmp_path)], capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "payload: tree" in done.stdout and "(limit 60 MiB)" in done.stdout
    (archive,) = tmp_path.glob("gpu-run-*.tar.gz")
    with tarfile.open(archive) as tar:
        names = tar.getnames()
        summary = json.load(tar.extractfile(next(n for n in names if n.endswith("summary.json"))))
    assert [s["stage"] for s in summary["stages"]] == ["setup", "pipeline"]
    assert all(s["status"] == "ok" for s in summary["stages"]) and summary["check"]
    assert any(n.endswith("rows/pipeline.jsonl") for n in names) and any(n.endswith("logs/setup.log") for n in names)


def test_a_stage_over_its_budget_is_cut_and_recorded_and_the_next_one_runs(tmp_path):
    import tarfile

    done = subprocess.run([sys.executable, str(BENCHMARKS / "gpu_run.py"), "--check", "--stages", "pipeline,tests",
                           "--budget", "pipeline=2", "--out", str(tmp_path)], capture_output=True, text=True,
                          timeout=600, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert done.returncode == 1
    (archive,) = tmp_path.glob("gpu-run-*.tar.gz")
    with tarfile.open(archive) as tar:
        summary = json.load(tar.extractfile(next(n for n in tar.getnames() if n.endswith("summary.json"))))
    status = {s["stage"]: s for s in summary["stages"]}
    assert status["pipeline"]["status"] == "cut" and "stage budget" in status["pipeline"]["steps"][0]["status"]
    assert status["tests"]["status"] == "ok"


def test_kernel_targets_judge_each_figure_from_the_rows_of_one_run(tmp_path):
    """The GPU run's targets table, on rows written here with known figures: each target met or not as its
    numbers say, a missing row reported as missing, the fraction of the floor from the bandwidth given."""
    workload = {"B": 8, "C": 3, "H": 224, "W": 224, "device": "a GPU", "commit": "abc"}

    def row(impl, pass_name, k, frames=16, **figures):
        return json.dumps(workload | {"impl": impl, "pass": pass_name, "k": k, "T": frames} | figures)

    fb = "forward+backward"
    (tmp_path / "ssim.jsonl").write_text("\n".join([
        row("triton", fb, 16, ms=0.25, speedup_vs_pytorch_msssim=31.0, achieved_GBps=1000.0),
        row("triton_one_pass", fb, 16, ms=0.31), row("triton_one_pass_32x128w4", fb, 16, ms=0.2),
        row("triton_one_pass_16x64w2", fb, 4, ms=0.1),  # faster, but at another k: not the sweep's winner
        row("triton", fb, 1, ms=0.05, speedup_vs_reference_compiled=0.9)]))
    (tmp_path / "perturb.jsonl").write_text("\n".join([
        row("triton", fb, 16, ms=0.30, speedup_vs_reference_compiled=3.5),
        row("triton", fb, 1, ms=0.05), row("triton", fb, 1, frames=64, ms=0.07)]))
    (tmp_path / "aot.jsonl").write_text(json.dumps({"variant": "x", "arch": "sm_90", "local_bytes": 8}))
    done = subprocess.run([sys.executable, str(BENCHMARKS / "kernel_targets.py"), str(tmp_path),
                           "--bandwidth-GBps", "4000"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = {line.split(" | ")[0].lstrip("| "): line for line in done.stdout.splitlines() if line.startswith("| ")}
    assert "| 0.2500 ms | <= 0.30 ms | met | 25% |" in lines["SSIM fwd+bwd, k = 16"]
    assert "31.00x" in lines["SSIM fwd+bwd, k = 16, vs pytorch-msssim"] and "| met |" in lines[
        "SSIM fwd+bwd, k = 16, vs pytorch-msssim"]
    assert "missing" in lines["SSIM fwd+bwd, k = 16, vs fussim"]
    assert "| 0.3100 ms | <= 0.30 ms | NOT met |" in lines["SSIM fwd+bwd, k = 16, one_pass design"]
    assert "| 0.2000 ms |" in lines["SSIM fwd+bwd, k = 16, fastest of the sweep: triton_one_pass_32x128w4"]
    assert "NOT met" in lines["SSIM fwd+bwd, k = 1, vs compiled reference"]
    assert "NOT met" in lines["perturbation fwd+bwd, k = 16"]
    assert "1.40x" in lines["perturbation fwd+bwd, k = 1: T = 64 over T = 16"]
    assert "NOT met" in lines["perturbation fwd+bwd, k = 1: T = 64 over T = 16"]
    assert "missing" in lines["masked Adam, k = 1, vs compiled reference"]
    assert "spills: x (sm_90)" in done.stdout
    assert (tmp_path / "kernel-targets.md").read_text() == done.stdout.rstrip("\n") + "\n"


def test_the_gpu_runner_keeps_its_deadline_and_packs_after_every_stage(tmp_path):
    """--deadline clips every stage; the archive is rewritten after each stage, so a call killed at its limit
    still returns what the finished stages left."""
    import signal
    import tarfile
    import time

    def summary_of(archive):
        with tarfile.open(archive) as tar:
            return json.load(tar.extractfile(next(n for n in tar.getnames() if n.endswith("summary.json"))))

    done = subprocess.run([sys.executable, str(BENCHMARKS / "gpu_run.py"), "--check", "--stages", "pipeline",
                           "--deadline", "1", "--out", str(tmp_path / "late")], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 1
    (archive,) = (tmp_path / "late").glob("gpu-run-*.tar.gz")
    steps = [step for stage in summary_of(archive)["stages"] for step in stage["steps"]]
    assert steps and all(step["status"] == "not started: run deadline spent" for step in steps)

    out = tmp_path / "killed"
    process = subprocess.Popen([sys.executable, str(BENCHMARKS / "gpu_run.py"), "--check", "--stages", "pipeline",
                                "--budget", "pipeline=600", "--out", str(out)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True,
                               env=dict(os.environ, OMP_NUM_THREADS="1"))
    try:
        waited = time.monotonic()
        while not list(out.glob("gpu-run-*.tar.gz")) and time.monotonic() - waited < 300:
            time.sleep(0.5)
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # the call's limit, while the pipeline stage runs
        process.wait()
    (archive,) = out.glob("gpu-run-*.tar.gz")
    assert [stage["stage"] for stage in summary_of(archive)["stages"]] == ["setup"]


def test_the_tests_the_gpu_run_puts_first_exist():
    """A renamed test file would drop out of the GPU run's first pytest call (and so, by --ignore, out of
    both): every path it names must be there."""
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import gpu_run
    finally:
        sys.path.remove(str(BENCHMARKS))
    assert all((BENCHMARKS.parent / path).exists() for path in gpu_run.FIRST_TESTS)


def test_decode_benchmark_compares_seeking_with_a_decode_from_the_start(tmp_path):
    rows = run_benchmark("decode", tmp_path, "--repeats", "2")
    by_impl = {row["impl"]: row for row in rows}
    assert set(by_impl) == {"seek", "from_start"}
    assert by_impl["seek"]["speedup_vs_from_start"] > 0 and by_impl["seek"]["commit"]
    assert all(row["op"] == "decode" and row["ms"] > 0 and row["k"] == 16 for row in rows)
