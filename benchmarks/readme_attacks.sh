#!/usr/bin/env bash
# The attack figures README.md quotes ("What `sava attack` prints" and "Our figures on the bundled benchmark"):
# 64 `camera` test clips on `c3d-camera`, one frame, cap 100, each row one `sava attack` run. Keeps each run's
# metrics.json (settings, summary, device, commit) and the printed table under benchmarks/results/readme/.
#   bash benchmarks/readme_attacks.sh          # about 4 minutes on 2 idle CPU cores
set -euo pipefail
cd "$(dirname "$0")/.."
out=benchmarks/results/readme
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
mkdir -p "$out"
run() {  # name, then sava attack options
  local name=$1; shift
  sava attack --no-progress --device cpu --out "$scratch/$name" "$@" | grep -v '^run folder (' | tee "$out/$name.txt"
  if [ -f "$scratch/$name/metrics.json" ]; then
    cp "$scratch/$name/metrics.json" "$out/$name.json"
  else
    for kind in combined noise flow; do cp "$scratch/$name/$kind/metrics.json" "$out/$name-$kind.json"; done
  fi
}
run default
run saliency --perturbation all
run first --selector first --perturbation all
run paper --lam 1 --lam-end 1 --adv-loss ce --selector first
run flicker-default --method flicker
run sparse-default --method sparse
