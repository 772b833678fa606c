#!/usr/bin/env bash
# libFuzzer over laer-opt's pipelines: builds laer-opt-fuzzer with clang-22
# (-fsanitize=fuzzer, AddressSanitizer and UndefinedBehaviorSanitizer with
# every signed overflow fatal) and fuzzes it for SECONDS (default 300),
# starting from the repository's IR files. A crash leaves its input as
# crash-* in the working directory (rerun: laer-opt-fuzzer FILE).
# Usage: scripts/fuzz.sh [SECONDS]
# Build directory: $LAER_FUZZ_DIR (default: build/fuzz). Installs clang-22
# and libclang-rt-22-dev when they are missing (as root or through sudo).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${LAER_FUZZ_DIR:-$root/build/fuzz}
seconds=${1:-300}
case $seconds in '' | *[!0-9]*) echo "fuzz.sh: SECONDS must be a whole number, got '$seconds'" >&2; exit 2 ;; esac
# clang and its fuzzer/sanitizer runtimes, as root or through sudo.
"$root/scripts/install-deps.sh" clang-22 libclang-rt-22-dev
flags="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize=vptr -fno-sanitize-recover=undefined -fno-omit-frame-pointer -g1"
cmake -G Ninja -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_C_COMPILER=clang-22 -DCMAKE_CXX_COMPILER=clang++-22 \
  -DCMAKE_CXX_FLAGS="$flags" -DCMAKE_C_FLAGS="$flags" \
  -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" \
  -DCMAKE_SHARED_LINKER_FLAGS="-fsanitize=address,undefined" \
  -DLAER_LIBFUZZER=ON -DLAER_ENABLE_CUDA=OFF -DLAER_ENABLE_PYTHON=OFF >/dev/null
cmake --build "$build" -j "$(nproc)" --target laer-opt-fuzzer
corpus="$build/corpus"
mkdir -p "$corpus"
find "$root/test" "$root/examples" -name '*.mlir' -exec cp {} "$corpus/" \;
export UBSAN_OPTIONS=exitcode=86:print_stacktrace=1
export ASAN_OPTIONS=exitcode=86:detect_leaks=0
"$build/bin/laer-opt-fuzzer" "$corpus" -max_total_time="$seconds" \
  -timeout=20 -rss_limit_mb=4096 -print_final_stats=1
