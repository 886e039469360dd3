"""The kernels' targets, checked on the rows of one GPU run: a Markdown table of each figure, its target,
whether it is met, and its fraction of the memory floor.

    python benchmarks/kernel_targets.py ROWS_DIR [--bandwidth-GBps 4200] [--out ROWS_DIR/kernel-targets.md]

ROWS_DIR holds ``ssim.jsonl``, ``perturb.jsonl``, ``update.jsonl`` and ``aot.jsonl`` as ``gpu_run.py``'s
kernels stage writes them. The floor's bandwidth is measured on this machine's GPU (a device-to-device copy)
unless given; every ratio is between rows of the same run.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

WORKLOAD = {"B": 8, "C": 3, "H": 224, "W": 224}  # the benchmarks' full size


def load(rows_dir: Path, name: str) -> list[dict]:
    path = rows_dir / f"{name}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def find(rows: list[dict], impl: str, pass_name: str, k: int, frames: int = 16) -> dict | None:
    for row in rows:
        if (row.get("impl"), row.get("pass"), row.get("k"), row.get("T")) == (impl, pass_name, k, frames) \
                and all(row.get(key) == value for key, value in WORKLOAD.items()):
            return row
    return None


def fastest_launch(rows: list[dict], pass_name: str, k: int) -> dict | None:
    """The fastest Triton row (default, other design or a sweep's launch configuration) at the full size: the
    one whose design and constants the defaults should take."""
    timed = [row for row in rows if str(row.get("impl", "")).startswith("triton") and "ms" in row
             and find([row], row["impl"], pass_name, k) is not None]
    return min(timed, key=lambda row: row["ms"], default=None)


def copy_bandwidth_GBps() -> float | None:
    """Device-to-device copy bandwidth (read + write bytes per second) of 1 GiB, or None without CUDA."""
    try:
        import torch
        import triton.testing
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    source = torch.empty(2**28, device="cuda")
    target = torch.empty_like(source)
    ms = triton.testing.do_bench(lambda: target.copy_(source), quantiles=[0.5])[0]
    return 2 * source.numel() * 4 / (ms / 1e3) / 1e9


class Table:
    def __init__(self, bandwidth: float | None):
        self.bandwidth, self.lines = bandwidth, []

    def add(self, figure: str, row: dict | None, value_key: str, target: str, met) -> None:
        """One target: ``met`` maps the row to True/False; a missing row or value is reported, not guessed."""
        if row is None or value_key not in row:
            error = (row or {}).get("error", "no row")
            self.lines.append(f"| {figure} | - | {target} | missing ({error[:60]}) | - |")
            return
        value = row[value_key]
        floor = "-"
        if self.bandwidth and row.get("achieved_GBps"):
            floor = f"{row['achieved_GBps'] / self.bandwidth:.0%}"
        shown = f"{value:.4f} ms" if value_key == "ms" else f"{value:.2f}x"
        self.lines.append(f"| {figure} | {shown} | {target} | {'met' if met(value) else 'NOT met'} | {floor} |")

    def markdown(self, header: str) -> str:
        return "\n".join([header, "", "| figure | value | target | | fraction of floor |",
                          "| --- | --- | --- | --- | --- |", *self.lines, ""])


def targets(rows_dir: Path, bandwidth: float | None) -> str:
    ssim, perturb, update, aot = (load(rows_dir, name) for name in ("ssim", "perturb", "update", "aot"))
    table = Table(bandwidth)
    fb = "forward+backward"
    row = find(ssim, "triton", fb, 16)
    table.add("SSIM fwd+bwd, k = 16", row, "ms", "<= 0.30 ms", lambda v: v <= 0.30)
    table.add("SSIM fwd+bwd, k = 16, vs pytorch-msssim", row, "speedup_vs_pytorch_msssim", ">= 25x",
              lambda v: v >= 25)
    table.add("SSIM fwd+bwd, k = 16, vs fussim", row, "speedup_vs_fussim", ">= 1.5x (if it builds)",
              lambda v: v >= 1.5)
    for other in ("triton_one_pass", "triton_maps"):  # the design that is not the default, timed beside it
        if (row := find(ssim, other, fb, 16)) is not None:
            table.add(f"SSIM fwd+bwd, k = 16, {other.removeprefix('triton_')} design", row, "ms", "<= 0.30 ms",
                      lambda v: v <= 0.30)
    fastest = fastest_launch(ssim, fb, 16)
    if fastest is not None:
        table.add(f"SSIM fwd+bwd, k = 16, fastest of the sweep: {fastest['impl']}", fastest, "ms", "<= 0.30 ms",
                  lambda v: v <= 0.30)
    table.add("SSIM fwd+bwd, k = 1, vs compiled reference", find(ssim, "triton", fb, 1),
              "speedup_vs_reference_compiled", "> 1x", lambda v: v > 1)
    row = find(perturb, "triton", fb, 16)
    table.add("perturbation fwd+bwd, k = 16", row, "ms", "<= 0.25 ms", lambda v: v <= 0.25)
    table.add("perturbation fwd+bwd, k = 16, vs compiled reference", row, "speedup_vs_reference_compiled",
              ">= 3x", lambda v: v >= 3)
    at_16 = find(perturb, "triton", fb, 1)
    table.add("perturbation fwd+bwd, k = 1", at_16, "ms", "<= 0.06 ms", lambda v: v <= 0.06)
    at_64 = find(perturb, "triton", fb, 1, frames=64)
    if at_16 is not None and at_64 is not None and "ms" in at_16 and "ms" in at_64:
        at_64 = dict(at_64, ratio_to_T16=at_64["ms"] / at_16["ms"])
    table.add("perturbation fwd+bwd, k = 1: T = 64 over T = 16", at_64, "ratio_to_T16", "<= 1.2x",
              lambda v: v <= 1.2)
    table.add("masked Adam, k = 1, vs compiled reference", find(update, "triton", "step", 1),
              "speedup_vs_reference_compiled", ">= 0.83x (within 1.2x)", lambda v: v >= 1 / 1.2)
    table.add("masked Adam, k = 16, vs compiled reference", find(update, "triton", "step", 16),
              "speedup_vs_reference_compiled", ">= 1x", lambda v: v >= 1)
    spilled = [f"{r['variant']} ({r['arch']})" for r in aot if r.get("local_bytes") or r.get("stack_bytes")]
    device = next((r.get("device") for r in ssim + perturb + update if r.get("device")), "unknown device")
    commit = next((r.get("commit") for r in ssim + perturb + update if r.get("commit")), "unknown commit")
    header = (f"Kernel targets on {device}, commit {commit}; floor at "
              + (f"{bandwidth:.0f} GB/s (device copy)" if bandwidth else "no measured bandwidth"))
    spills = ("no register spills in any variant" if aot and not spilled
              else "AOT report missing" if not aot else f"spills: {', '.join(spilled)}")
    return table.markdown(header) + f"\n{spills}\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("rows", type=Path)
    parser.add_argument("--bandwidth-GBps", type=float, default=None, dest="bandwidth",
                        help="the floor's bandwidth (default: measured here on CUDA)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    text = targets(args.rows, args.bandwidth if args.bandwidth is not None else copy_bandwidth_GBps())
    print(text)
    (args.out or args.rows / "kernel-targets.md").write_text(text)


if __name__ == "__main__":
    main()
