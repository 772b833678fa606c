#!/usr/bin/env bash
# On a machine with an NVIDIA GPU (the device tool's H100/H200): build the
# CUDA backend, run its GPU-vs-CPU tests, run them again under
# compute-sanitizer (memcheck, racecheck), the GPU benchmark, and
# laer-train with its MoE layers on the GPU beside the same run on the CPU.
#   scripts/gpu-check.sh [BUILD_DIR]   (default build-gpu)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
build=${1:-build-gpu}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
cmake -G Ninja -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" --target laer-cuda-unittests laer-cuda-bench \
  laer-train
tests="$build/test/unit/laer-cuda-unittests"
"$tests" --gtest_brief=1
sanitizer=/usr/local/cuda/bin/compute-sanitizer
# memcheck also covers the whole GPU layer (its NCCL transfers included);
# racecheck checks the kernels' shared-memory use.
echo "== compute-sanitizer --tool memcheck"
"$sanitizer" --tool memcheck --error-exitcode 1 "$tests" --gtest_brief=1 \
  --gtest_filter='CudaKernels.*:GroupedGemm.*:GpuFsepMoELayer.*:GpuMoEBackend.TrainsLikeTheCpuLayersInBf16'
echo "== compute-sanitizer --tool racecheck"
"$sanitizer" --tool racecheck --error-exitcode 1 "$tests" --gtest_brief=1 \
  --gtest_filter='CudaKernels.*:GroupedGemm.*'
"$build/bench/cuda/laer-cuda-bench" --repeats "${LAER_BENCH_REPEATS:-20}"
# One rank (a singleton MPI process): the same 20 steps with the MoE
# layers on the CPU, then on the GPU in fp32 (losses within 1e-5 of the
# CPU's) and bf16.
echo "== laer-train --device cpu | cuda"
for device in "cpu" "cuda --precision fp32" "cuda --precision bf16"; do
  echo "-- --device $device"
  # shellcheck disable=SC2086
  "$build/bin/laer-train" --data runtime --suffix .cpp --steps 20 \
    --log-every 5 --batch 8 --sequence 64 --token-chunks 2 --no-progress \
    --device $device
done
