#!/usr/bin/env bash
# What the offline GPU machine lacks (its image has torch, triton, cupy, onnxruntime, botorch, but no PyAV,
# scikit-video or pytorch-msssim), fetched here for CPython 3.12 into .whl/ (git-ignored, about 38 MB), and
# fussim's source distribution (built there by benchmarks/gpu_run.py against that machine's torch: its
# wheels are built for other torch releases). Carry `.whl` with the run.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d .whl "av==18.1.0" "scikit-video==1.1.11" "pytorch-msssim==1.0.0"
# bench_peers.py's peers (pure Python; torchattacks without torchvision, which the image ships anyway) and
# scikit-image's SSIM with what it imports.
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d .whl "torchattacks==3.5.1" "adversarial-robustness-toolbox==1.20.1" "scikit-image==0.26.0" six lazy_loader \
  imageio tifffile networkx
# The newest fussim with a source distribution; reading its metadata needs torch, hence no build isolation.
python3 -m pip download -q --no-deps --no-binary :all: --no-build-isolation -d .whl "fussim==0.3.1"
ls -la .whl
