#!/usr/bin/env bash
# The sanitizer job: laer-opt built with AddressSanitizer and
# UndefinedBehaviorSanitizer (every signed overflow fatal), then the
# compiler's lit tests (dialects, conversions, transforms, pipelines) and
# the seeded mutation runner through it. `scripts/setup.sh test` runs the
# reduced job (1000 mutants); `scripts/sanitize.sh --full` the full one
# (also the unit tests of the dialects, 10000 mutants over three seeds).
# Build directory: $LAER_SANITIZE_DIR (default: build/sanitize).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${LAER_SANITIZE_DIR:-$root/build/sanitize}
full=false
[ "${1:-}" = --full ] && full=true
flags="-fsanitize=address,undefined -fno-sanitize=vptr -fno-sanitize-recover=undefined -fno-omit-frame-pointer -g1"
start=$(date +%s)
cmake -G Ninja -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_CXX_FLAGS="$flags" -DCMAKE_C_FLAGS="$flags" \
  -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" \
  -DCMAKE_SHARED_LINKER_FLAGS="-fsanitize=address,undefined" >/dev/null
targets=(laer-opt)
$full && targets+=(laer-dialect-unittests)
cmake --build "$build" -j "$(nproc)" --target "${targets[@]}"
# A sanitizer report exits 86: never mistaken for a diagnostic (exit 1).
export UBSAN_OPTIONS=exitcode=86:print_stacktrace=1
# LLVM's own allocations live as long as the process: leaks are not ours.
export ASAN_OPTIONS=exitcode=86:detect_leaks=0
/usr/lib/llvm-22/bin/lit -sv "$build/test/Dialect" "$build/test/Conversion" \
  "$build/test/Transforms" "$build/test/Pipelines"
if $full; then
  "$build/test/unit/laer-dialect-unittests"
  for seed in 2026 99 7; do
    /usr/bin/python3 "$root/test/fuzz/mutate_ir.py" "$build/bin/laer-opt" \
      "$root" 3400 "$seed"
  done
else
  /usr/bin/python3 "$root/test/fuzz/mutate_ir.py" "$build/bin/laer-opt" \
    "$root" 1000 2026
fi
echo "sanitize: took $(( $(date +%s) - start )) s"
