#!/usr/bin/env bash
# The compiled tiny model on 4 CPU ranks, laer+ re-planning every step:
# MoE layers as calls of the runtime's fused FSEP layer vs the FSEP program
# compiled op by op (laer-compile --ranks 4) with 1 and 2 token chunks.
# Same seed and data; the three binaries alternate for `rounds` rounds in
# one invocation. Prints the mean tokens/s after 10 warm-up steps.
# Usage: bench/compile/fsep_program.sh [build dir] [steps] [rounds]
set -euo pipefail
build=${1:-build}
steps=${2:-100}
rounds=${3:-2}
root=$([ "$(id -u)" = 0 ] && echo --allow-run-as-root || true)
stdlib=$(/usr/bin/python3 -c 'import sysconfig; print(sysconfig.get_paths()["stdlib"])')
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
model=examples/tiny_moe_lm.mlir
"$build/bin/laer-compile" "$model" -o "$scratch/fused"
"$build/bin/laer-compile" "$model" --ranks 4 --chunks 1 -o "$scratch/fsep-k1"
"$build/bin/laer-compile" "$model" --ranks 4 --chunks 2 -o "$scratch/fsep-k2"
for round in $(seq "$rounds"); do
  for binary in fused fsep-k1 fsep-k2; do
    OPENBLAS_NUM_THREADS=1 timeout 900 mpirun $root --oversubscribe \
      --bind-to none -np 4 "$scratch/$binary" --data "$stdlib" \
      --steps "$steps" --log-every 1 --planner laer+ --no-progress |
      awk -v b="$binary" -v r="$round" '
        /^step/ { n++; if (n > 10) { s += $5; c++ } loss = $4 }
        END { printf "round %d  %-8s %8.0f tokens/s  final loss %.4f\n",
                     r, b, s / c, loss }'
  done
done
