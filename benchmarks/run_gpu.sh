#!/usr/bin/env bash
# One call on a GPU machine: the kernel parity tests on CUDA, then every kernel
# benchmark at full size with all anchors. JSON rows go to ${OUT:-benchmarks/results}.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-benchmarks/results}"
mkdir -p "$out"
stamp=$(date -u +%Y%m%d-%H%M%S)
python -m pytest -q -p no:cacheprovider tests/kernels 2>&1 | tail -5
for op in perturb ssim update; do
  python benchmarks/bench_$op.py --out "$out/$op-$stamp.jsonl"
done
python benchmarks/plot.py "$out"/*-"$stamp".jsonl --out "$out/plots" || true
