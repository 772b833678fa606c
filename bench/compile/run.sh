#!/usr/bin/env bash
# laer-compile's benchmark: compile time of the Mixtral-8x7B-shaped IR, then
# the compiled tiny model trained on 1, 2 and 4 CPU ranks with the static
# layout and with laer+, same seed and data, one after the other in one
# invocation. Prints tokens/s and the mean per-layer max/mean rank load.
# Usage: bench/compile/run.sh [build dir] [steps]
set -euo pipefail
build=${1:-build}
steps=${2:-200}
root=$([ "$(id -u)" = 0 ] && echo --allow-run-as-root || true)
stdlib=$(/usr/bin/python3 -c 'import sysconfig; print(sysconfig.get_paths()["stdlib"])')
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

echo "== compile time (best of 3)"
for model in mixtral_8x7b tiny_moe_lm; do
  for i in 1 2 3; do
    /usr/bin/time -f "%e" "$build/bin/laer-compile" "examples/$model.mlir" \
      -o "$scratch/$model" --time 2>&1 | tr '\n' ' '
    echo
  done | sort -t' ' -k11 -n | head -1 | sed "s/^/$model: /"
done

echo "== tokens/s of the compiled tiny model, $steps steps"
printf '%-6s %-7s %10s %10s  %s\n' ranks planner tokens/s final-loss \
  "mean max/mean load per layer"
for ranks in 1 2 4; do
  for planner in static laer+; do
    log=$(OPENBLAS_NUM_THREADS=1 timeout 900 mpirun $root --oversubscribe \
      --bind-to none -np "$ranks" "$scratch/tiny_moe_lm" --data "$stdlib" \
      --steps "$steps" --log-every 1 --planner "$planner" --no-progress)
    echo "$log" | awk -v r="$ranks" -v p="$planner" '
      /^step/ { n++; tps=$5; loss=$4
                for (i = 12; i <= NF; i++) sum[i] += $i; last = NF }
      END { printf "%-6s %-7s %10.0f %10.4f ", r, p, tps, loss
            for (i = 12; i <= last; i++) printf " %.2f", sum[i] / n
            printf "\n" }'
  done
done
