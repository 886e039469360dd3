#!/usr/bin/env bash
# GPU tests and benchmarks, in stages that each fit one 10-minute call on the lent machine:
#   benchmarks/run_gpu.sh [tests] [kernels] [native] [runtime] [pipeline]      (no argument: all of them)
# tests:    the kernel parity suite on CUDA, the C library's CUDA build + ctest, native/export/DeepSAVA tests
# kernels:  bench_perturb, bench_ssim, bench_update at full size with every anchor, and the ptxas report
# native:   the C library's CUDA path and CuPy path against the Triton kernels
# runtime / pipeline: bench_runtime, bench_pipeline (R3D-18-sized model included)
# JSON rows go to ${OUT:-benchmarks/results}. Wheels the machine lacks travel in .whl/ (fetch_gpu_wheels.sh).
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-benchmarks/results}"
mkdir -p "$out"
stamp=$(date -u +%Y%m%d-%H%M%S)
stages=("$@")
[ ${#stages[@]} -eq 0 ] && stages=(tests kernels native runtime pipeline)
export PYTHONUNBUFFERED=1
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
fi
# The machine's torch stays; sava points at this tree (no network: no build isolation).
python3 -m pip install -q --no-deps --no-build-isolation -e . >/dev/null 2>&1 || echo "pip install -e . failed"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
if [ ! -f build-gpu/libsava.so ]; then
  cmake -S . -B build-gpu -DSAVA_CUDA=ON >/dev/null && cmake --build build-gpu -j 16 >/dev/null || echo "CUDA build failed"
fi
export SAVA_LIBRARY="$PWD/build-gpu/libsava.so"
for stage in "${stages[@]}"; do
  echo "== $stage"
  case "$stage" in
    tests)
      ctest --test-dir build-gpu --output-on-failure 2>&1 | tee "$out/ctest-$stamp.log" | tail -5
      python3 -m pytest -q -p no:cacheprovider tests/kernels tests/engine/test_native.py tests/engine/test_export.py \
        tests/engine/test_deepsava.py 2>&1 | tee "$out/pytest-$stamp.log" | tail -8 ;;
    kernels)
      for op in perturb ssim update; do
        sweep=$([ "$op" = update ] || echo --sweep)   # launch configurations beside the defaults
        python3 benchmarks/bench_$op.py $sweep --out "$out/$op-$stamp.jsonl" || echo "bench_$op failed"
      done
      python3 -m sava.kernels.aot --out "$out/aot-$stamp.jsonl" >/dev/null || echo "aot report failed" ;;
    native) python3 benchmarks/bench_native.py --out "$out/native-$stamp.jsonl" || echo "bench_native failed" ;;
    runtime) python3 benchmarks/bench_runtime.py --out "$out/runtime-$stamp.jsonl" || echo "bench_runtime failed" ;;
    pipeline) python3 benchmarks/bench_pipeline.py --out "$out/pipeline-$stamp.jsonl" || echo "bench_pipeline failed" ;;
    *) echo "unknown stage $stage (tests kernels native runtime pipeline)"; exit 2 ;;
  esac
done
python3 benchmarks/plot.py "$out"/*-"$stamp".jsonl --out "$out/plots" 2>/dev/null || true
