#!/usr/bin/env bash
# Runs the FSEP layer benchmark on 1, 2 and 4 CPU ranks with balanced
# routing, then on 4 ranks with skewed routing under the static plan and
# under the laer+ planner, one after the other in one invocation, so the
# figures are comparable.
# Usage: bench/runtime/run.sh [build dir] [extra benchmark flags...]
set -euo pipefail
build=${1:-build}
shift || true
root=$([ "$(id -u)" = 0 ] && echo --allow-run-as-root || true)
run() {
  local ranks=$1
  shift
  OPENBLAS_NUM_THREADS=1 timeout 600 mpirun $root --oversubscribe \
    --bind-to none -np "$ranks" "$build/bench/runtime/laer-fsep-layer-bench" \
    --steps 10 --warmup 2 "$@"
  echo
}
for ranks in 1 2 4; do
  run "$ranks" --skew 0 "$@"
done
run 4 --skew 3 --planner static "$@"
run 4 --skew 3 --planner laer+ "$@"
