#!/usr/bin/env bash
# laer-train on 4 CPU ranks with the static layout, then with laer+, same
# seed and data, one after the other in one invocation.
# Usage: bench/runtime/train.sh [build dir] [extra laer-train flags...]
set -euo pipefail
build=${1:-build}
shift || true
root=$([ "$(id -u)" = 0 ] && echo --allow-run-as-root || true)
stdlib=$(/usr/bin/python3 -c 'import sysconfig; print(sysconfig.get_paths()["stdlib"])')
for planner in static laer+; do
  OPENBLAS_NUM_THREADS=1 timeout 900 mpirun $root --oversubscribe \
    --bind-to none -np 4 "$build/bin/laer-train" --data "$stdlib" \
    --steps 200 --log-every 50 --planner "$planner" "$@"
done
