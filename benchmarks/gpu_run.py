"""One unattended GPU run that measures everything, packed into one archive.

    python benchmarks/gpu_run.py                 # on the GPU machine: every stage, archive under $OUT
    python benchmarks/gpu_run.py --check         # here, on CPU: payload size, every stage at its tiny size

The lent GPU machine takes at most 64 MiB per call (the tree plus carried paths), runs a command for at most
10 minutes, returns at most 8 files and lacks PyAV, scikit-video and pytorch-msssim (carried as wheels in
``.whl/``, see ``fetch_gpu_wheels.sh``); a warm machine keeps ``/tmp`` from an earlier call. So this script:

1. ``setup``: installs the carried wheels into a fresh folder under ``/tmp``, builds fussim from its carried
   source distribution against the machine's torch (a failure only drops that anchor), puts ``sava`` on the
   path from this tree (no ``pip install -e``: the machine has no network for build isolation), and builds the
   C library with CUDA;
2. ``tests``: the whole test suite on CUDA;
3. ``kernels``: the perturbation, SSIM and update benchmarks with their anchors and launch sweeps, and the
   ahead-of-time register/spill report;
4. ``pipeline``: the batch-attack benchmark (bundled 3D CNN, and the R3D-18-sized model at fixed steps);
5. ``native``: the C library's ctest (CPU and CUDA) and its benchmark;

each under its own share of the time (``--budget STAGE=SECONDS``); a stage that overruns is cut and recorded,
and the next one runs. ``--deadline SECONDS`` bounds the whole run (give the call's own limit, less a margin):
every stage is clipped to it. Logs, JSON rows and ``summary.json`` go into one ``gpu-run-<time>.tar.gz`` under
``$OUT`` (or ``--out``), packed again after every stage, so a call killed at its limit still returns what the
finished stages measured.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"
WHEELS = ROOT / ".whl"
PAYLOAD_LIMIT = 60 * 2**20  # what may travel, tree plus carried wheels (the machine takes 64 MiB)
# Seconds per stage; they add up to 8 minutes, inside the machine's 10-minute limit per call.
BUDGETS = {"setup": 100, "tests": 170, "kernels": 110, "pipeline": 110, "native": 40}
PACK_SECONDS = 10  # kept back from --deadline for the last packing of the archive
# Test files run first on the GPU, in this order: what only a GPU can check (graph replay, the kernels at full
# size, the CUDA-only presets), so a cut suite has still run them; the rest of the suite follows.
FIRST_TESTS = ("tests/engine/test_graphs.py", "tests/engine/test_step_sync.py", "tests/engine/test_attention.py",
               "tests/kernels", "tests/engine/test_zoo.py", "tests/engine/test_native.py")


def torchvision_imports() -> bool:
    try:
        import torchvision.models.video  # noqa: F401
    except (ImportError, RuntimeError):
        return False
    return True


def pipeline_models() -> str:
    """The bundled 3D CNN, the R3D-18-sized stand-in and, where torchvision imports (the GPU image ships it),
    torchvision's real R3D-18 and R(2+1)D-18 at 16 x 112 x 112."""
    return "c3d-camera,r3d18" + (",torchvision:r3d_18,torchvision:r2plus1d_18" if torchvision_imports() else "")


def payload_bytes() -> tuple[int, int]:
    """Bytes of the working tree as the device tool sends it (tracked and untracked files git does not ignore)
    and of the carried wheels."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, check=True).stdout.split(b"\0")
    tree = sum((ROOT / name.decode()).stat().st_size for name in listed if name and (ROOT / name.decode()).is_file())
    wheels = sum(path.stat().st_size for path in WHEELS.glob("*")) if WHEELS.is_dir() else 0
    return tree, wheels


class Runner:
    """Runs the stages' commands under their budgets and keeps what each left."""

    def __init__(self, work: Path, check: bool, budgets: dict[str, float], stages: list[str] | None = None,
                 end: float | None = None, after_stage=None):
        self.work, self.check, self.budgets = work, check, budgets
        self.end = end  # time.monotonic() by which every stage must be over (--deadline), or None
        self.after_stage = after_stage or (lambda: None)
        self.stages = stages if stages is not None else list(budgets)
        self.logs, self.rows = work / "logs", work / "rows"
        self.logs.mkdir(parents=True)
        self.rows.mkdir()
        self.summary: list[dict] = []
        self.env = dict(os.environ, PYTHONUNBUFFERED="1", MPLBACKEND="Agg")
        self.build = ROOT / ("build-gpu" if not check else "build-check")

    def stage(self, name: str, commands: list[tuple[str, list[str]]]) -> None:
        """Run ``commands`` (label, argv) one after another inside the stage's budget (and the run's deadline)."""
        deadline = time.monotonic() + self.budgets[name]
        limit = "stage budget"
        if self.end is not None and self.end < deadline:
            deadline, limit = self.end, "run deadline"
        started = time.monotonic()
        status, steps = "ok", []
        with open(self.logs / f"{name}.log", "w", encoding="utf-8") as log:
            for label, argv in commands:
                left = deadline - time.monotonic()
                if left <= 1:
                    steps.append({"step": label, "status": f"not started: {limit} spent"})
                    status = "cut"
                    continue
                log.write(f"\n===== {label}: {' '.join(argv)}\n")
                log.flush()
                begun = time.monotonic()
                # Its own process group: a cut takes the step's children (decoders, torchrun workers) with it.
                process = subprocess.Popen(argv, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                           start_new_session=True)
                try:
                    code = process.wait(timeout=left)
                    outcome = "ok" if code == 0 else f"failed (exit {code})"
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
                    outcome = f"cut after {left:.0f} s ({limit})"
                log.write(f"===== {label}: {outcome}\n")
                steps.append({"step": label, "status": outcome, "seconds": round(time.monotonic() - begun, 1)})
                if outcome != "ok" and status == "ok":
                    status = "cut" if outcome.startswith("cut") else "failed"
        record = {"stage": name, "status": status, "seconds": round(time.monotonic() - started, 1),
                  "budget": self.budgets[name], "steps": steps}
        self.summary.append(record)
        print(f"{name:<9} {status:<7} {record['seconds']:>6.1f} s of {self.budgets[name]:.0f}  "
              + "; ".join(f"{s['step']}: {s['status']}" for s in steps), flush=True)
        self.after_stage()

    # ------------------------------------------------------------------ stages
    def setup(self) -> None:
        site = self.work / "site"
        package = self.work / "package" / "sava"
        package.mkdir(parents=True)
        # sava from this tree without installing it: engine/ is the package sava, kernels/ is sava.kernels.
        for entry in (ROOT / "engine").iterdir():
            (package / entry.name).symlink_to(entry)
        (package / "kernels").symlink_to(ROOT / "kernels")
        path = [str(self.work / "package"), str(site)]
        self.env["PYTHONPATH"] = os.pathsep.join(path + [self.env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        self.env["SAVA_LIBRARY"] = str(self.build / "libsava.so")
        wheels = sorted(str(p) for p in WHEELS.glob("*.whl")) if WHEELS.is_dir() else []
        sdists = sorted(str(p) for p in WHEELS.glob("fussim-*.tar.gz")) if WHEELS.is_dir() else []
        pip = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--target", str(site)]
        commands = []
        if wheels:
            commands.append(("carried wheels", pip + wheels))
        # The fussim anchor, built against this machine's torch (over a minute): only for the kernel benchmarks.
        if sdists and not self.check and "kernels" in self.stages:
            commands.append(("fussim from source", pip + ["--no-build-isolation", sdists[-1]]))
        cuda = "OFF" if self.check else "ON"
        commands += [
            ("cmake configure", ["cmake", "-S", ".", "-B", str(self.build), f"-DSAVA_CUDA={cuda}",
                                 "-DCMAKE_BUILD_TYPE=Release"]),
            ("cmake build", ["cmake", "--build", str(self.build), "-j", str(os.cpu_count() or 2)]),
            ("environment", [sys.executable, "-c", "import sava, torch, triton; from sava.provenance import "
                             "environment; import json; print(json.dumps(environment("
                             f"{'cpu' if self.check else 'cuda'!r}), indent=1))"]),
        ]
        if not self.check:
            commands.insert(0, ("nvidia-smi", ["nvidia-smi"]))
        self.stage("setup", commands)

    def tests(self) -> None:
        pytest = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfEs", "--durations=25"]
        if self.check:  # a tiny slice proves the stage runs; CI runs the whole suite
            commands = [("pytest", pytest + [f"--junitxml={self.rows / 'junit.xml'}", "tests/kernels/test_update.py"])]
        else:
            commands = [("pytest first", pytest + [f"--junitxml={self.rows / 'junit-first.xml'}", *FIRST_TESTS]),
                        ("pytest rest", pytest + [f"--junitxml={self.rows / 'junit.xml'}", "tests",
                                                  *(f"--ignore={path}" for path in FIRST_TESTS)])]
        # Each outcome and traceback as it happens: pytest prints tracebacks only at the end, which a cut never reaches.
        self.env["SAVA_LIVE_REPORT"] = str(self.logs / "tests-live.log")
        self.stage("tests", commands)
        del self.env["SAVA_LIVE_REPORT"]

    def kernels(self) -> None:
        size = ["--tiny", "--repeats", "2", "--device", "cpu"] if self.check else []
        commands = []
        for op in ("perturb", "ssim", "update"):
            sweep = ["--sweep"] if op != "update" else []
            commands.append((f"bench_{op}", [sys.executable, str(BENCHMARKS / f"bench_{op}.py"), *size, *sweep,
                                             "--out", str(self.rows / f"{op}.jsonl")]))
        # The ahead-of-time compile needs the real compiler, not the interpreter --check runs the benchmarks in.
        commands.append(("aot report", ["env", "-u", "TRITON_INTERPRET", sys.executable, "-m", "sava.aot_report",
                                        "--out", str(self.rows / "aot.jsonl")]))
        # The targets table (fraction of the floor at this GPU's copy bandwidth) and the plots, from the rows.
        commands.append(("kernel targets", [sys.executable, str(BENCHMARKS / "kernel_targets.py"), str(self.rows)]))
        commands.append(("plots", [sys.executable, str(BENCHMARKS / "plot.py"),
                                   *(str(self.rows / f"{op}.jsonl") for op in ("perturb", "ssim", "update")),
                                   "--out", str(self.rows / "plots")]))
        self.stage("kernels", commands)

    def pipeline(self) -> None:
        size = ["--tiny", "--device", "cpu"] if self.check else ["--models", pipeline_models(), "--device", "cuda"]
        peers = ["--skip-missing"] + (["--tiny"] if self.check else ["--device", "cuda"])
        self.stage("pipeline", [("bench_pipeline", [sys.executable, str(BENCHMARKS / "bench_pipeline.py"), *size,
                                                    "--out", str(self.rows / "pipeline.jsonl")]),
                                # sava beside torchattacks and ART (their wheels carried in .whl/)
                                ("bench_peers", [sys.executable, str(BENCHMARKS / "bench_peers.py"), *peers,
                                                 "--out", str(self.rows / "peers.jsonl")])])

    def native(self) -> None:
        size = ["--tiny", "--device", "cpu"] if self.check else []
        self.stage("native", [
            ("ctest", ["ctest", "--test-dir", str(self.build), "--output-on-failure"]),
            ("bench_native", [sys.executable, str(BENCHMARKS / "bench_native.py"), *size,
                              "--out", str(self.rows / "native.jsonl")]),
        ])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="on CPU: payload size and every stage at tiny size")
    parser.add_argument("--out", type=Path, default=None,
                        help="where the archive goes (default $OUT; with --check and no $OUT, a temporary folder, "
                             "so a check leaves nothing in the tree)")
    parser.add_argument("--stages", default=",".join(BUDGETS), help=f"comma-separated subset of {', '.join(BUDGETS)}")
    parser.add_argument("--budget", action="append", default=[], metavar="STAGE=SECONDS",
                        help="another time share for a stage")
    parser.add_argument("--deadline", type=float, default=None, metavar="SECONDS",
                        help="seconds for the whole run, archive included (the call's limit less a margin)")
    args = parser.parse_args()
    budgets = dict(BUDGETS)
    for item in args.budget:
        stage, _, seconds = item.partition("=")
        if stage not in budgets:
            parser.error(f"--budget: unknown stage {stage!r} ({', '.join(BUDGETS)})")
        budgets[stage] = float(seconds)
    stages = [s for s in args.stages.split(",") if s]
    if unknown := set(stages) - set(BUDGETS):
        parser.error(f"--stages: unknown {sorted(unknown)} ({', '.join(BUDGETS)})")

    tree, wheels = payload_bytes()
    print(f"payload: tree {tree / 2**20:.1f} MiB + carried .whl {wheels / 2**20:.1f} MiB = "
          f"{(tree + wheels) / 2**20:.1f} MiB (limit {PAYLOAD_LIMIT / 2**20:.0f} MiB)", flush=True)
    if tree + wheels > PAYLOAD_LIMIT:
        print("the payload is over the limit: remove large untracked files or wheels", file=sys.stderr)
        return 2
    if not args.check:
        import torch

        if not torch.cuda.is_available():
            print("no CUDA device: run with --check on a CPU machine", file=sys.stderr)
            return 2
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    # A folder of its own: a warm machine keeps /tmp, and the suite's own test of --check runs this script too.
    work = Path(tempfile.mkdtemp(prefix=f"sava-gpu-run-{stamp}-"))
    started = time.monotonic()
    end = None if args.deadline is None else started + args.deadline - PACK_SECONDS
    if args.out is not None or "OUT" in os.environ:
        out = args.out or Path(os.environ["OUT"])
    else:  # a check's archive stays out of the tree
        out = Path(tempfile.mkdtemp(prefix="sava-gpu-check-")) if args.check else BENCHMARKS / "results" / "gpu"
    archive = out / f"gpu-run-{stamp}.tar.gz"
    summary: dict = {}

    def pack() -> None:
        """summary.json and the archive, as far as the run has got (rewritten after every stage)."""
        summary.update(stamp=stamp, check=args.check, host=platform.node(), seconds=time.monotonic() - started,
                       payload_bytes={"tree": tree, "wheels": wheels}, stages=runner.summary,
                       deadline=args.deadline)
        (work / "summary.json").write_text(json.dumps(summary, indent=2))
        out.mkdir(parents=True, exist_ok=True)
        partial = archive.with_name(archive.name + ".part")
        with tarfile.open(partial, "w:gz") as tar:
            for part in ("summary.json", "logs", "rows"):
                tar.add(work / part, arcname=f"gpu-run-{stamp}/{part}")
        partial.replace(archive)  # a kill while packing leaves the previous archive whole

    runner = Runner(work, args.check, budgets, stages, end=end, after_stage=pack)
    if args.check:  # everything on the CPU, even on a GPU machine (the suite runs this script with --check)
        runner.env.update(TRITON_INTERPRET="1", SAVA_TEST_DEVICE="cpu")
    runner.setup()  # every other stage needs sava on the path
    for stage in stages:
        if stage != "setup":
            getattr(runner, stage)()
    if args.check:
        shutil.rmtree(runner.build, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
    print(f"{summary['seconds']:.0f} s in all; archive {archive} ({archive.stat().st_size / 1024:.0f} KiB)")
    return 0 if all(s["status"] == "ok" for s in runner.summary) else 1


if __name__ == "__main__":
    sys.exit(main())
