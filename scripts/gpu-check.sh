#!/usr/bin/env bash
# On a machine with an NVIDIA GPU (the device tool's H100/H200): build the
# CUDA backend, run its GPU-vs-CPU tests, run them again under
# compute-sanitizer (memcheck, racecheck), then the GPU benchmark.
#   scripts/gpu-check.sh [BUILD_DIR]   (default build-gpu)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
build=${1:-build-gpu}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
cmake -G Ninja -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" --target laer-cuda-unittests laer-cuda-bench
tests="$build/test/unit/laer-cuda-unittests"
"$tests" --gtest_brief=1
sanitizer=/usr/local/cuda/bin/compute-sanitizer
for tool in memcheck racecheck; do
  echo "== compute-sanitizer --tool $tool"
  "$sanitizer" --tool "$tool" --error-exitcode 1 "$tests" --gtest_brief=1 \
    --gtest_filter='CudaKernels.*:GroupedGemm.*'
done
"$build/bench/cuda/laer-cuda-bench" --repeats "${LAER_BENCH_REPEATS:-20}"
