#!/usr/bin/env bash
# Wheels that the offline GPU machine lacks (its image has torch, triton, cupy, onnxruntime, botorch, but no
# PyAV, scikit-video or pytorch-msssim), fetched here for CPython 3.12 into .whl/ (git-ignored, ~38 MB).
# Carry `.whl` with the run; benchmarks/run_gpu.sh installs whatever it finds there.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d .whl "av==18.1.0" "scikit-video==1.1.11" "pytorch-msssim==1.0.0"
ls -la .whl
