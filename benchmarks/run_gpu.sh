#!/usr/bin/env bash
# One call on a GPU machine: the GPU tests (kernels, the C library's CUDA build,
# TensorRT and CuPy where present), then every benchmark at full size with all
# anchors. JSON rows go to ${OUT:-benchmarks/results}; a short table is printed last.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-benchmarks/results}"
mkdir -p "$out"
stamp=$(date -u +%Y%m%d-%H%M%S)
pip install -q --no-deps -e . >/dev/null 2>&1 || true   # the machine's torch stays; sava points at this tree
cmake -S . -B build-gpu -DSAVA_CUDA=ON >/dev/null && cmake --build build-gpu -j 8 >/dev/null \
  && ctest --test-dir build-gpu --output-on-failure 2>&1 | tail -5
export SAVA_LIBRARY="$PWD/build-gpu/libsava.so"
python -m pytest -q -p no:cacheprovider tests/kernels tests/engine/test_native.py tests/engine/test_export.py \
  tests/engine/test_deepsava.py 2>&1 | tail -8
for op in perturb ssim update native; do
  python benchmarks/bench_$op.py --out "$out/$op-$stamp.jsonl" || echo "bench_$op failed"
done
python benchmarks/bench_runtime.py --out "$out/runtime-$stamp.jsonl" || echo "bench_runtime failed"
python benchmarks/bench_pipeline.py --out "$out/pipeline-$stamp.jsonl" || echo "bench_pipeline failed"
python benchmarks/plot.py "$out"/*-"$stamp".jsonl --out "$out/plots" || true
