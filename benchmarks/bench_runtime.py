"""Inference throughput of the bundled target models on each runtime, side by
side in one run: torch eager, torch.compile, ONNX Runtime (CPU; CUDA and
TensorRT where they exist). Transfer evaluation is this workload.

    python benchmarks/bench_runtime.py --out benchmarks/results/runtime.jsonl
    python benchmarks/bench_runtime.py --tiny                                  # CI: proves it runs

Every row carries the environment, the model, the batch, the median time per
batch, videos per second and the speed ratio against torch eager measured in
the same run. Runtimes that are not available here are reported as skipped,
never left out silently.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
from harness import Case, run_cases

from sava.export import OnnxModel, TensorRTModel, export_onnx
from sava.models.bundled import bundled_names, load_bundled

ANCHOR = "torch_eager"


def runtimes(model, onnx_path: Path, device: str, use_compile: bool, threads: int) -> dict:
    """name -> a callable taking a batch of videos, or a string saying why it is skipped."""
    out = {}
    module = model  # the white-box adapter: normalisation and layout inside, as in the export
    out[ANCHOR] = lambda videos: module.logits(videos)
    if use_compile:
        out["torch_compile"] = torch.compile(model.logits)  # the same adapter forward, normalisation included
    for provider in ("cpu", "cuda", "tensorrt"):
        try:
            session = OnnxModel(onnx_path, provider, threads=threads)
            out[f"onnxruntime_{provider}"] = session.logits
        except Exception as exc:  # noqa: BLE001 -- reported as skipped with its reason
            out[f"onnxruntime_{provider}"] = f"skipped: {exc}"
    for precision in ("fp32", "fp16"):
        try:
            engine = TensorRTModel(onnx_path, precision)
            out[f"tensorrt_{precision}"] = engine.logits
        except Exception as exc:  # noqa: BLE001
            out[f"tensorrt_{precision}"] = f"skipped: {exc}"
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="one small model at batch 1 (proves the benchmark runs)")
    parser.add_argument("--models", default=None, help="comma-separated bundled models (default: all)")
    parser.add_argument("--batches", default="1,8,32")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads for torch and ONNX Runtime alike (default: torch's current count)")
    parser.add_argument("--out", type=Path, default=None, help="append JSON rows to this file")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    names = ["tsn-digits"] if args.tiny else (args.models.split(",") if args.models else bundled_names())
    batches = [1] if args.tiny else [int(b) for b in args.batches.split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as folder, torch.no_grad():
        for name in names:
            model = load_bundled(name, device=args.device)
            onnx_path = Path(folder) / f"{name}.onnx"
            export_onnx(load_bundled(name), onnx_path)
            available = runtimes(model, onnx_path, args.device, args.compile and not args.tiny, threads)
            for batch in batches:
                videos = torch.rand(batch, *model.info.clip_shape)
                case = Case("runtime", {"model": name, "B": batch, "threads": threads}, {})
                for impl, fn in available.items():
                    if callable(fn):
                        on_device = videos.to(args.device) if impl.startswith("torch") else videos
                        case.impls[impl] = {"inference": (lambda f=fn, v=on_device: f(v))}
                measured = run_cases([case], args.device, args.repeats, [ANCHOR], args.out)
                for row in measured:
                    if "ms" in row:
                        row["videos_per_second"] = batch / (row["ms"] / 1e3)
                rows += measured
                rows += [{"op": "runtime", "model": name, "B": batch, "impl": impl, "skipped": reason}
                         for impl, reason in available.items() if not callable(reason)]
    print(f"{'model':<16} {'B':>3} {'runtime':<20} {'ms':>9} {'videos/s':>9} {'x eager':>8}")
    for row in rows:
        if "skipped" in row:
            if row["B"] == batches[0]:
                print(f"{row['model']:<16} {'':>3} {row['impl']:<20} {row['skipped'][:70]}")
            continue
        ratio = row.get(f"speedup_vs_{ANCHOR}", 1.0 if row["impl"] == ANCHOR else None)
        print(f"{row['model']:<16} {row['B']:>3} {row['impl']:<20} {row.get('ms', float('nan')):>9.2f} "
              f"{row.get('videos_per_second', float('nan')):>9.1f} {'-' if ratio is None else f'{ratio:.2f}':>8}")


if __name__ == "__main__":
    main()
