"""The one benchmark harness: timing, peak memory, environment, JSON rows.

Every row carries the device, commit and package versions, the case, the
implementation, the pass (forward / backward / forward+backward), the median
and 20th/80th percentile times, achieved GB/s, the fraction of the memory
floor, and the speed ratio against each anchor measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from sava.provenance import environment  # noqa: F401 -- the benchmarks' rows take it from here

RESULTS = Path(__file__).parent / "results"


@dataclass
class Case:
    """One workload: the operation, its shape description and its floor in bytes."""

    op: str
    shape: dict
    floor_bytes: dict  # pass name -> bytes the ideal kernel must move
    impls: dict = field(default_factory=dict)  # name -> {pass name -> zero-argument callable}


def measure(fn: Callable[[], object], device: str, repeats: int) -> dict:
    """Median and 20th/80th percentile milliseconds, plus peak memory on CUDA."""
    if device == "cuda":
        import triton.testing

        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        median, p20, p80 = triton.testing.do_bench(fn, quantiles=[0.5, 0.2, 0.8])
        peak = torch.cuda.max_memory_allocated() - before
        return {"ms": median, "ms_p20": p20, "ms_p80": p80, "peak_bytes": int(peak)}
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    times.sort()
    pick = lambda q: times[min(len(times) - 1, int(q * len(times)))]
    return {"ms": statistics.median(times), "ms_p20": pick(0.2), "ms_p80": pick(0.8), "peak_bytes": None}


def run_cases(cases: list[Case], device: str, repeats: int, anchors: list[str], out: Path | None) -> list[dict]:
    env = environment(device)
    rows = []
    for case in cases:
        timed = {}
        for impl, passes in case.impls.items():
            for pass_name, fn in passes.items():
                try:
                    timed[(impl, pass_name)] = measure(fn, device, repeats)
                except Exception as exc:  # noqa: BLE001 -- an anchor that fails is reported, not fatal
                    timed[(impl, pass_name)] = {"error": f"{type(exc).__name__}: {exc}"}
        for (impl, pass_name), result in timed.items():
            row = dict(env) | {"op": case.op, "impl": impl, "pass": pass_name} | case.shape | result
            floor = case.floor_bytes.get(pass_name)
            if "ms" in result and floor:
                seconds = result["ms"] / 1e3
                row["floor_bytes"] = floor
                row["achieved_GBps"] = floor / seconds / 1e9
            for anchor in anchors:
                other = timed.get((anchor, pass_name), {})
                if anchor != impl and "ms" in result and "ms" in other:
                    row[f"speedup_vs_{anchor}"] = other["ms"] / result["ms"]
            rows.append(row)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        with open(out, "a", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps(row) + "\n")
    return rows


def print_table(rows: list[dict]) -> None:
    print(f"{'op':<8} {'impl':<18} {'pass':<16} {'shape':<24} {'ms':>9} {'GB/s':>8}")
    for row in rows:
        shape = "x".join(str(row[k]) for k in ("B", "T", "C", "H", "W", "k") if k in row)
        ms = f"{row['ms']:.3f}" if "ms" in row else row.get("error", "")[:30]
        gbps = f"{row['achieved_GBps']:.1f}" if "achieved_GBps" in row else "-"
        print(f"{row['op']:<8} {row['impl']:<18} {row['pass']:<16} {shape:<24} {ms:>9} {gbps:>8}")


def arguments(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--tiny", action="store_true", help="a tiny size, only to prove the benchmark runs (CI)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats on CPU (CUDA uses do_bench)")
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                        help="include the torch.compile anchor (default: on CUDA only)")
    parser.add_argument("--out", type=Path, default=None, help="append JSON rows to this file")
    parser.add_argument("--sweep", action="store_true",
                        help="also time other launch configurations of the Triton kernel (largest k only)")
    args = parser.parse_args()
    if args.compile is None:
        args.compile = args.device == "cuda"
    return args


def autograd_passes(fn: Callable, args: tuple, wrt: tuple[int, ...]) -> dict:
    """Forward, backward and forward+backward closures for ``fn(*args)``,
    differentiating with respect to the argument positions in ``wrt``.

    Nothing runs until the harness calls a closure, inside its ``try``: an anchor that fails (an extension
    built for another torch, say) becomes an error row instead of ending the run. The differentiated inputs
    are made once, outside every timed call: ``autograd.grad`` reads them without changing them, so each
    call reuses them and no clone is timed."""
    held = tuple(a.detach().clone().requires_grad_() if i in wrt and a is not None else a
                 for i, a in enumerate(args))
    wanted = [held[i] for i in wrt if held[i] is not None]
    graph: dict = {}

    def recorded():  # one retained graph and upstream gradient for the backward pass, made on first use
        if not graph:
            out = fn(*held)
            graph.update(out=out, upstream=torch.randn_like(out))
        return graph["out"], graph["upstream"]

    def forward():
        with torch.no_grad():
            return fn(*args)

    def backward():
        out, upstream = recorded()
        return torch.autograd.grad(out, wanted, upstream, retain_graph=True)

    def forward_backward():
        _, upstream = recorded()
        return torch.autograd.grad(fn(*held), wanted, upstream)

    return {"forward": forward, "backward": backward, "forward+backward": forward_backward}


def configured(passes: dict, module, constants: dict) -> dict:
    """Pass closures that first set ``module``'s launch constants (tile sizes, warps): one harness times a
    sweep of launch configurations, each pass -- the backward too -- under its own."""

    def wrap(fn: Callable) -> Callable:
        def run():
            for name, value in constants.items():
                setattr(module, name, value)
            return fn()
        return run

    return {name: wrap(fn) for name, fn in passes.items()}


def triton_usable(device: str) -> bool:
    """Triton kernels run on CUDA, or on CPU through the interpreter (tiny sizes only)."""
    import importlib.util

    if importlib.util.find_spec("triton") is None:
        return False
    return device == "cuda" or os.environ.get("TRITON_INTERPRET") == "1"


def write_and_print(rows_or_cases, args) -> None:
    rows = run_cases(rows_or_cases, args.device, args.repeats, ANCHORS, args.out)
    print_table(rows)


# Anchors every row is compared against, when measured in the same run.
ANCHORS = ["reference", "reference_compiled", "pytorch_msssim", "fussim"]


def append_rows(path: Path | None, rows: list[dict]) -> None:
    """Append one JSON line per row to ``path`` (made with its folder when missing); nothing when None."""
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        handle.writelines(json.dumps(row) + "\n" for row in rows)
