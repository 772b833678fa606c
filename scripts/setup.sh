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

# Main job. For now: compile the example model IR down to the four MoE
# stages, printing the IR before and after.
example="$root/examples/tiny_moe_model.mlir"
echo "== $example (as parsed and verified)"
"$build/bin/laer-opt" "$example"
echo "== after --moe-decompose"
"$build/bin/laer-opt" "$example" --moe-decompose
