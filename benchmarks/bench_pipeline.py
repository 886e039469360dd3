"""Throughput of batch attack generation: sava's pipeline against the
one-video-at-a-time structure of the authors' code (``one_at_a_time.py``), on
the same model, clips, iteration cap and settings, in one run.

    python benchmarks/bench_pipeline.py --out benchmarks/results/pipeline.jsonl          # CPU: bundled 3D CNN
    python benchmarks/bench_pipeline.py --models c3d-camera,r3d18 --device cuda --out ...  # GPU
    python benchmarks/bench_pipeline.py --tiny                                             # CI: proves it runs

Rows: the environment, the model, the implementation (``one_at_a_time``,
``sava_batch<B>``, ``sava_batch<B>_<lever>`` for ``--levers`` eager (steps not replayed as CUDA graphs) /
bf16 / compile,
``sava_torchrun<P>`` for P CPU processes, ``sava_<selector>_graphs`` / ``sava_<selector>_eager`` for
``--selectors``: a search selector's candidate scoring, replayed through one reused loop's CUDA graphs or run
eagerly, which is the choice the engine's scoring loop makes), videos, FR (and FR re-checked by the
float32 eager model), mean SSIM,
ANI, seconds, videos per second, the speed-up over ``one_at_a_time`` and peak
memory (CUDA: allocated bytes; CPU: the process's peak resident set).

With ``--fixed-steps N`` (always for the R3D-18-sized model) no video stops
early: each row adds video-steps per second, the time of one step, the model's
own forward+backward time at that batch size (measured in the same run) and
their ratio, the engine efficiency (1.0: the step costs what the model costs).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from harness import append_rows
from one_at_a_time import attack_one
from r3d import r3d18_model

from sava import DeepSAVA
from sava.data import bundled
from sava.models import load_bundled, load_model
from sava.provenance import environment
from sava.selection import make_selector
from sava.transfer import replay


def random_weights(name: str) -> bool:
    """The R3D-18-sized model and torchvision's real video models, untrained: attacked on random clips at a
    fixed number of steps."""
    return name.startswith(("r3d18", "torchvision:"))


def clips_for(model, count: int):
    if random_weights(model.name):
        generator = torch.Generator().manual_seed(0)
        videos = torch.rand(count, *model.info.clip_shape, generator=generator)
        return videos, model.predict(videos)[0].cpu()  # attack the model's own decisions
    clips = bundled(model.info.extra["dataset"], "test")
    return clips.float_videos(slice(0, count)), clips.labels[:count]


def peak_memory(device: str) -> int:
    if device.startswith("cuda"):
        return int(torch.cuda.max_memory_allocated())
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def timed(device: str, fn, *args):
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    out = fn(*args)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return out, time.perf_counter() - started


def run_reference(model, videos, labels, iters, fixed=False):
    """Like sava, it attacks only the clips the model gets right (each classified on its own)."""
    outcomes = []
    with model.attack_mode():
        for video, label in zip(videos, labels):
            if int(model.predict(video.unsqueeze(0))[0]) == int(label):
                outcomes.append(attack_one(model, video.to(model.device), int(label), iters,
                                           stop_on_success=not fixed))
    wins = [i for ok, i in outcomes if ok]
    return {"attacked": len(outcomes), "successes": len(wins), "ani": sum(wins) / len(wins) if wins else None,
            "fooling_rate": len(wins) / max(len(outcomes), 1)}


def run_sava(model, videos, labels, iters, batch, fixed=False, selector=None):
    """DeepSAVA at its defaults, its selector included unless ``selector`` names another."""
    attack = DeepSAVA(model, max_iters=iters, batch_size=batch, **({"selector": selector} if selector else {}))
    attack.stop_on_success = not fixed  # fixed: every video runs exactly ``iters`` steps
    run = attack.run(videos, labels)
    summary = run.summary
    return {"attacked": summary.attacked, "successes": summary.successes, "ani": summary.ani,
            "fooling_rate": summary.fooling_rate, "mean_ssim": summary.mean_ssim}, run.results


def model_forward_backward_ms(model, videos, batch: int, device: str, repeats: int = 10) -> float:
    """The model's own cost per attack step at this batch size: forward, then backward to the input with the
    weights frozen (median milliseconds). An attack step cannot cost less."""
    x = videos.repeat(-(-batch // len(videos)), 1, 1, 1, 1)[:batch].to(model.device).requires_grad_()

    def once():
        torch.autograd.grad(model.logits(x).sum(), x)

    with model.attack_mode():
        once()  # warm-up (cuDNN algorithm choice, lazy initialisation)
        return statistics.median(timed(device, once)[1] for _ in range(repeats)) * 1e3


def load(name: str, device: str):
    if name == "r3d18":
        return r3d18_model(device)
    return load_model(name, device=device) if name.startswith("torchvision:") else load_bundled(name, device=device)


def with_lever(model, name: str, lever: str, device: str):
    """The model as a lever wants it: ``bf16`` autocast, or ``compile`` (CUDA graphs on CUDA) on a fresh copy,
    so that the other runs keep the eager float32 model."""
    if not lever or lever == "eager":  # eager: the same model, its steps not replayed as CUDA graphs
        return model
    fresh = load(name, device)
    if lever == "bf16":
        fresh.precision = "bf16"
        return fresh
    if lever == "compile":
        return fresh.compile()
    raise SystemExit(f"unknown lever {lever!r} (eager, bf16, compile)")


@contextlib.contextmanager
def steps_graphed(on: bool):
    """The attack loop's CUDA graphs on or off for the runs inside (its ``SAVA_CUDA_GRAPHS`` switch)."""
    before = os.environ.get("SAVA_CUDA_GRAPHS")
    os.environ["SAVA_CUDA_GRAPHS"] = "1" if on else "0"
    try:
        yield
    finally:
        if before is None:
            del os.environ["SAVA_CUDA_GRAPHS"]
        else:
            os.environ["SAVA_CUDA_GRAPHS"] = before


def fooling_rate_in_fp32(model, videos, results) -> float | None:
    """The share of attacked videos whose replayed adversarial clip the float32 model misclassifies: how a
    run made under bf16 autocast fares once its decisions are checked at full precision."""
    attacked = [(video, r) for video, r in zip(videos, results) if r.attacked]
    if not attacked:
        return None
    adversarial = torch.stack([replay(video, r) for video, r in attacked])
    predicted = model.predict(adversarial)[0].cpu()
    labels = torch.tensor([r.label for _, r in attacked])
    return float((predicted != labels).float().mean())


def run_torchrun(model_name, count, iters, processes):
    with tempfile.TemporaryDirectory() as folder:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}",
                   "-m", "sava.cli", "attack", "--model", model_name, "--num-videos", str(count), "--iters",
                   str(iters), "--no-progress", "--out", f"{folder}/run"]
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True,
                       env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
        seconds = time.perf_counter() - started
        summary = json.loads(Path(f"{folder}/run/metrics.json").read_text())["summary"]
    return {"attacked": summary["attacked"], "successes": summary["successes"], "ani": summary["ani"],
            "fooling_rate": summary["fooling_rate"]}, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="4 videos, 5 iterations (proves the benchmark runs)")
    parser.add_argument("--models", default=None,
                        help="bundled models, r3d18 and/or torchvision presets such as torchvision:r2plus1d_18 "
                             "(random weights, 16 x 112 x 112; default: c3d-camera; with r3d18 on CUDA)")
    parser.add_argument("--videos", type=int, default=32)
    parser.add_argument("--iters", type=int, default=100)
    parser.add_argument("--batches", default="1,8,32")
    parser.add_argument("--processes", default="2", help="torchrun process counts to time (CPU, bundled models)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--levers", default=None,
                        help="levers tried one at a time on the largest batch: eager (no CUDA graphs of the "
                             "step), bf16, compile (CUDA graphs on "
                             "CUDA); default: none on CPU, bf16,compile on CUDA")
    parser.add_argument("--selectors", default=None,
                        help="search selectors whose candidate scoring is timed with the step's CUDA graphs and "
                             "without, on the largest batch (default: brute on CUDA, none on CPU)")
    parser.add_argument("--fixed-steps", type=int, default=None, metavar="N",
                        help="no early stop: every video runs exactly N steps; rows then report video-steps per "
                             "second and the engine efficiency (the model's forward+backward time / step time). "
                             "The R3D-18-sized model always runs this way (default N 20): with random weights it "
                             "flips after one step, so early-stopped rows would time set-up, not attacking")
    parser.add_argument("--out", type=Path, default=None, help="append JSON rows to this file")
    args = parser.parse_args()
    if args.tiny:
        args.videos, args.iters, args.batches, args.processes = 4, 5, "4", ""
    default = "c3d-camera,r3d18" if args.device == "cuda" else "c3d-camera"
    if args.levers is None:
        args.levers = "eager,bf16,compile" if args.device == "cuda" else ""
    if args.selectors is None:
        args.selectors = "brute" if args.device == "cuda" else ""
    env = environment(args.device)
    rows = []
    for name in (args.models or default).split(","):
        model = load(name, args.device)
        videos, labels = clips_for(model, args.videos)
        fixed = args.fixed_steps or (20 if random_weights(name) else None)
        iters = fixed or args.iters
        measured = []
        outcome, seconds = timed(args.device, run_reference, model, videos, labels, iters, bool(fixed))
        measured.append(("one_at_a_time", 1, outcome, seconds, peak_memory(args.device)))
        batches = [int(b) for b in args.batches.split(",") if b]
        # Every batch size as it comes; then each lever on the largest batch, alone.
        runs = [(batch, "") for batch in batches] + [(batches[-1], lever) for lever in args.levers.split(",") if lever]
        for batch, lever in runs:
            target = with_lever(model, name, lever, args.device)
            compiling = None
            if lever == "compile":  # compilation (and graph capture) timed apart from the run it serves
                _, compiling = timed(args.device, run_sava, target, videos[:batch], labels[:batch], 2, batch)
            with steps_graphed(lever != "eager"):
                (outcome, results), seconds = timed(args.device, run_sava, target, videos, labels, iters, batch,
                                                    bool(fixed))
            outcome["compile_seconds"] = compiling
            outcome["fooling_rate_fp32"] = fooling_rate_in_fp32(model, videos, results)
            measured.append((f"sava_batch{batch}" + (f"_{lever}" if lever else ""), batch, outcome, seconds,
                             peak_memory(args.device)))
        for selector in [s for s in args.selectors.split(",") if s]:
            for graphed in (True, False):  # whichever is faster becomes the default
                with steps_graphed(graphed):
                    (outcome, _), seconds = timed(args.device, run_sava, model, videos, labels, iters,
                                                  batches[-1], bool(fixed),
                                                  make_selector(selector, score_steps=2 if args.tiny else 10))
                outcome["selector"] = selector  # its steps include the scoring: no per-step efficiency
                measured.append((f"sava_{selector}_{'graphs' if graphed else 'eager'}", batches[-1], outcome,
                                 seconds, peak_memory(args.device)))
        if args.device == "cpu" and not random_weights(name) and not fixed:
            for processes in [int(p) for p in args.processes.split(",") if p]:
                outcome, seconds = run_torchrun(name, args.videos, args.iters, processes)
                measured.append((f"sava_torchrun{processes}", None, outcome, seconds, None))
        base = measured[0][3]
        model_ms = {}
        for impl, batch, outcome, seconds, memory in measured:
            row = env | {"op": "pipeline", "model": model.name, "impl": impl, "videos": len(videos),
                         "iters": iters, "fixed_steps": fixed, "batch": batch, "seconds": seconds,
                         "videos_per_second": len(videos) / seconds, "speedup_vs_one_at_a_time": base / seconds,
                         "peak_memory_bytes": memory} | outcome
            if fixed and batch is not None and outcome["attacked"] and "selector" not in outcome:
                # Every attacked video runs ``fixed`` steps, in lockstep groups of ``batch`` slots.
                steps = -(-outcome["attacked"] // batch) * fixed
                if batch not in model_ms:
                    model_ms[batch] = model_forward_backward_ms(model, videos, batch, args.device)
                row |= {"video_steps_per_second": outcome["attacked"] * fixed / seconds,
                        "step_ms": seconds * 1e3 / steps, "model_forward_backward_ms": model_ms[batch],
                        "engine_efficiency": model_ms[batch] / (seconds * 1e3 / steps)}
            rows.append(row)
    append_rows(args.out, rows)
    print(f"{'model':<14} {'impl':<18} {'FR':>7} {'ANI':>6} {'seconds':>8} {'videos/s':>9} {'speed-up':>9} "
          f"{'step ms':>8} {'model ms':>9} {'efficiency':>10}")
    for row in rows:
        ani = "-" if row["ani"] is None else f"{row['ani']:.1f}"
        fixed = [f"{row[k]:.3f}" if k in row else "-" for k in ("step_ms", "model_forward_backward_ms",
                                                                  "engine_efficiency")]
        print(f"{row['model']:<14} {row['impl']:<18} {row['fooling_rate']:>7.1%} {ani:>6} {row['seconds']:>8.2f} "
              f"{row['videos_per_second']:>9.2f} {row['speedup_vs_one_at_a_time']:>9.2f} {fixed[0]:>8} "
              f"{fixed[1]:>9} {fixed[2]:>10}")


if __name__ == "__main__":
    main()
