#!/usr/bin/env bash
# The two set-up commands of the README:
#   scripts/setup.sh demo   install, build, run the main job
#   scripts/setup.sh test   install, build, run every test
# Build directory: $LAER_BUILD_DIR (default: build/ in the checkout).
set -euo pipefail

mode=${1:-demo}
case "$mode" in demo|test) ;; *)
  echo "usage: $0 demo|test" >&2; exit 2 ;;
esac

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${LAER_BUILD_DIR:-$root/build}
cd "$root"

"$root/scripts/install-deps.sh"

start=$(date +%s)
cmake -G Ninja -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release
cmake --build "$build" -j "$(nproc)"
echo "setup: build took $(( $(date +%s) - start )) s"

if [ "$mode" = test ]; then
  cd "$build"
  ctest --output-on-failure -j "$(nproc)" --timeout 900
  echo "setup: build and tests took $(( $(date +%s) - start )) s"
  exit 0
fi

# Main job: compile the example model IR down to the four MoE stages, then
# run one FSEP MoE layer on 4 CPU ranks under skewed routing, first with
# the static layout, then with the laer+ planner re-laying experts every
# step, and compare the load balance and step time.
example="$root/examples/tiny_moe_model.mlir"
echo "== $example, after --moe-decompose"
"$build/bin/laer-opt" "$example" --moe-decompose
root_flag=$([ "$(id -u)" = 0 ] && echo --allow-run-as-root || true)
for planner in static laer+; do
  echo "== FSEP MoE layer on 4 CPU ranks, skewed routing, planner $planner"
  OPENBLAS_NUM_THREADS=1 timeout 600 mpirun $root_flag --oversubscribe \
    --bind-to none -np 4 "$build/bench/runtime/laer-fsep-layer-bench" \
    --skew 3 --steps 10 --warmup 2 --planner "$planner"
done
