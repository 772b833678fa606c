#!/usr/bin/env bash
# One FSEP MoE layer step on 4 CPU ranks for every routing workload of
# laer/planner/Workloads.h (the router's choices forced step by step),
# under the static layout and under laer+ through the runtime's relayout
# path (2-step history, as laer-train), one after the other in one
# invocation so the figures are comparable.
# Usage: bench/runtime/workloads.sh [build dir] [extra benchmark flags...]
set -euo pipefail
build=${1:-build}
shift || true
root=$([ "$(id -u)" = 0 ] && echo --allow-run-as-root || true)
printf "%-10s %-8s %10s %10s %10s\n" workload planner "step ms" "compute ms" \
  "max/mean"
for workload in uniform zipf dominant drift rotating shift bursts correlated; do
  for planner in static laer+; do
    out=$(OPENBLAS_NUM_THREADS=1 timeout 600 mpirun $root --oversubscribe \
      --bind-to none -np 4 "$build/bench/runtime/laer-fsep-layer-bench" \
      --experts 16 --topk 2 --slots 5 --tokens 512 --steps 12 --warmup 2 \
      --planner "$planner" --workload "$workload" "$@")
    step=$(awk '$1 == "step" {print $2}' <<<"$out")
    experts=$(awk '$1 == "compute" {print $2}' <<<"$out")
    balance=$(sed -n 's/.*max\/mean = \([0-9.]*\).*/\1/p' <<<"$out")
    printf "%-10s %-8s %10s %10s %10s\n" "$workload" "$planner" "$step" \
      "$experts" "$balance"
  done
done
