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
  # The reduced sanitizer job (ASan + UBSan laer-opt over the compiler's
  # lit tests and 1000 IR mutants); scripts/sanitize.sh --full the whole.
  LAER_SANITIZE_DIR="$build/sanitize" "$root/scripts/sanitize.sh"
  echo "setup: build and tests took $(( $(date +%s) - start )) s"
  exit 0
fi

# Main job: compile the example MoE language model IR into a training
# binary with laer-compile (autodiff, the chunked and scheduled FSEP program
# of 4 ranks, lowering to the runtime's C ABI, LLVM, linked with the
# runtime), then train it on 4 CPU ranks on real text (the
# Python standard library's sources) with the laer+ planner re-laying
# experts every step, printing the loss falling and the per-layer load
# balance.
example="$root/examples/tiny_moe_lm.mlir"
train="$build/tiny_moe_lm-train"
echo "== laer-compile $example -o $train"
"$build/bin/laer-compile" "$example" --ranks 4 --chunks 2 -o "$train" --time
stdlib=$(/usr/bin/python3 -c 'import sysconfig; print(sysconfig.get_paths()["stdlib"])')
root_flag=$([ "$(id -u)" = 0 ] && echo --allow-run-as-root || true)
echo "== training on 4 CPU ranks, text from $stdlib"
OPENBLAS_NUM_THREADS=1 timeout 900 mpirun $root_flag --oversubscribe \
  --bind-to none -np 4 "$train" --data "$stdlib" \
  --steps 300 --log-every 25 --planner laer+
