#!/usr/bin/env bash
# Regenerate every paper table on every bundled model (the committed results
# under benchmarks/results/reproduce/ come from this script). CPU only; two
# worker processes, one per dataset, each on one thread.
#
#   bash benchmarks/reproduce_all.sh [NUM_VIDEOS] [ITERS] [OUT]
set -euo pipefail
videos=${1:-32}
iters=${2:-100}
out=${3:-benchmarks/results/reproduce}
tables="table3 table5 table6 table7 table8 xu-table2 tt"

run_dataset() {
  local dataset=$1
  for model in c3d-$dataset cnn_lstm-$dataset tsn-$dataset; do
    # One call per model: the tables share its clips and the runs they have in common.
    sava reproduce $tables --model "$model" --num-videos "$videos" --iters "$iters" --out "$out" >/dev/null
  done
  # One frame-importance matrix per dataset (it covers all of the dataset's models).
  sava reproduce importance --model "c3d-$dataset" --num-videos "$videos" --iters "$iters" --out "$out" >/dev/null
}

export OMP_NUM_THREADS=1
mkdir -p "$out"
run_dataset camera 2>"$out/camera.log" &
run_dataset digits 2>"$out/digits.log" &
wait
python benchmarks/reproduce_summary.py "$out"
