#!/usr/bin/env bash
# One MoE layer step (forward, backward, AdamW), laer's FSEP layer against
# its PyTorch twin (bench/pytorch/moe_layer_step.py: one process, then
# expert parallelism over gloo), at 1, 2 and 4 ranks / processes, one after
# the other in one invocation, one BLAS thread each. Prints the median step
# times and laer's speed-up, and each side's peak memory per rank.
# Usage: bench/pytorch/layer_vs_pytorch.sh [build dir]
set -euo pipefail
build=${1:-build}
here=$(cd "$(dirname "$0")" && pwd)
root=$([ "$(id -u)" = 0 ] && echo --allow-run-as-root || true)
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
step_ms() { awk '/^step/ { print $2 }'; }
peak_mib() { awk '/^peak memory/ { print $5 }'; }
printf '| ranks | laer step (ms) | PyTorch step (ms) | laer speed-up | laer peak MiB/rank | PyTorch peak MiB/process |\n'
printf '|---:|---:|---:|---:|---:|---:|\n'
for ranks in 1 2 4; do
  laer=$(timeout 600 mpirun $root --oversubscribe --bind-to none -np "$ranks" \
    "$build/bench/runtime/laer-fsep-layer-bench" --steps 10 --warmup 2 \
    --skew 0)
  torch=$(timeout 600 /usr/bin/python3 "$here/moe_layer_step.py" \
    --processes "$ranks" --steps 10 --warmup 2)
  awk -v r="$ranks" -v l="$(step_ms <<<"$laer")" -v t="$(step_ms <<<"$torch")" \
    -v lm="$(peak_mib <<<"$laer")" -v tm="$(peak_mib <<<"$torch")" \
    'BEGIN { printf "| %d | %.1f | %.1f | %.2fx | %.0f | %.0f |\n", r, l, t, t / l, lm, tm }'
  grep -E '^(expert GEMMs|whole step)' <<<"$laer" | sed "s/^/  $ranks rank(s): /" >&2
done
