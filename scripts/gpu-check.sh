#!/usr/bin/env bash
# On a machine with an NVIDIA GPU (the device tool's H100/H200): the CUDA
# backend's GPU-vs-CPU tests, the same under compute-sanitizer (memcheck,
# racecheck), the GPU benchmark, and laer-train with its MoE layers on the
# GPU beside the same run on the CPU.
#   scripts/gpu-check.sh [BUILD_DIR]          build here (default build-gpu;
#                                             needs MPI, OpenBLAS, GoogleTest
#                                             and MLIR 22 installed)
#   scripts/gpu-check.sh --prebuilt BUNDLE    run what scripts/gpu-bundle.sh
#                                             packed on a build machine (the
#                                             device machines have none of
#                                             those; no laer-train then)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
if [[ ${1:-} == --prebuilt ]]; then
  bundle=${2:?--prebuilt needs the bundle folder}
  # NCCL comes with the image's PyTorch (its nvidia-nccl wheel).
  nccl=$(python3 -c 'import nvidia.nccl as m; print(m.__path__[0])')/lib
  export LD_LIBRARY_PATH="$bundle/lib:/usr/local/cuda/lib64:$nccl${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  # The tests read text from this checkout, wherever it lies.
  export LAER_SOURCE_DIR=$PWD
  tests="$bundle/bin/laer-cuda-unittests"
  bench="$bundle/bin/laer-cuda-bench"
  train=
else
  build=${1:-build-gpu}
  cmake -G Ninja -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$build" --target laer-cuda-unittests laer-cuda-bench \
    laer-train
  tests="$build/test/unit/laer-cuda-unittests"
  bench="$build/bench/cuda/laer-cuda-bench"
  train="$build/bin/laer-train"
fi
"$tests" --gtest_brief=1
sanitizer=/usr/local/cuda/bin/compute-sanitizer
# memcheck also covers the whole GPU layer (its NCCL transfers included)
# and one bf16 training run through the GPU backend; racecheck checks the
# kernels' shared-memory use.
echo "== compute-sanitizer --tool memcheck"
"$sanitizer" --tool memcheck --error-exitcode 1 "$tests" --gtest_brief=1 \
  --gtest_filter='CudaKernels.*:GroupedGemm.*:GpuFsepMoELayer.*:GpuMoEBackend.TrainsLikeTheCpuLayersInBf16'
echo "== compute-sanitizer --tool racecheck"
"$sanitizer" --tool racecheck --error-exitcode 1 "$tests" --gtest_brief=1 \
  --gtest_filter='CudaKernels.*:GroupedGemm.*'
"$bench" --repeats "${LAER_BENCH_REPEATS:-20}"
[[ -n $train ]] || exit 0
# One rank (a singleton MPI process): the same 20 steps with the MoE
# layers on the CPU, then on the GPU in fp32 (losses within 1e-5 of the
# CPU's) and bf16.
echo "== laer-train --device cpu | cuda"
for device in "cpu" "cuda --precision fp32" "cuda --precision bf16"; do
  echo "-- --device $device"
  # shellcheck disable=SC2086
  "$train" --data runtime --suffix .cpp --steps 20 --log-every 5 \
    --batch 8 --sequence 64 --token-chunks 2 --no-progress --device $device
done
