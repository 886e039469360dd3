"""Draw the benchmark rows: one PNG per operation, time by implementation and k.

    python benchmarks/plot.py benchmarks/results/*.jsonl --out benchmarks/results/plots
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/plots"))
    args = parser.parse_args()
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise SystemExit("plot.py needs matplotlib: pip install matplotlib") from None

    rows = [json.loads(line) for path in args.files for line in path.read_text().splitlines() if line.strip()]
    by_op = defaultdict(list)
    for row in rows:
        # One line per implementation over k at the standard clip length: launch-configuration sweeps
        # (triton_<config>) and the T = 64 control row stay in the JSON.
        if "ms" in row and row.get("T", 16) == 16 and not row["impl"].startswith("triton_"):
            by_op[row["op"]].append(row)
    args.out.mkdir(parents=True, exist_ok=True)
    for op, op_rows in by_op.items():
        passes = sorted({r["pass"] for r in op_rows})
        figure, axes = plt.subplots(1, len(passes), figsize=(5 * len(passes), 4), squeeze=False)
        for axis, pass_name in zip(axes[0], passes):
            series = defaultdict(dict)
            for r in op_rows:
                if r["pass"] == pass_name:
                    series[r["impl"]][r["k"]] = r["ms"]
            for impl, points in sorted(series.items()):
                ks = sorted(points)
                axis.plot(ks, [points[k] for k in ks], marker="o", label=impl)
            axis.set(title=f"{op} {pass_name}", xlabel="selected frames k", ylabel="ms (median)", yscale="log")
            axis.legend(fontsize=8)
        device = op_rows[0].get("device", "")
        figure.suptitle(f"{op} on {device} (commit {op_rows[0].get('commit')})")
        figure.tight_layout()
        figure.savefig(args.out / f"{op}.png", dpi=120)
        print(f"wrote {args.out / f'{op}.png'}")


if __name__ == "__main__":
    main()
