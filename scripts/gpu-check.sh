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
#   GPU_CHECK_PARTS="tests sanitize bench train": what to run (default all)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
if [[ ${1:-} == --prebuilt ]]; then
  bundle=$(realpath "${2:?--prebuilt needs the bundle folder}")
  # cuBLASLt and NCCL stay on the device: in CUDA's folders or in the
  # image's PyTorch wheels (nvidia-*).
  folder_of() {
    for dir in /usr/local/cuda/lib64 /usr/local/cuda/lib; do
      [[ -e $dir/$1 ]] && { echo "$dir"; return; }
    done
    python3 -c "import glob, os, site
hits = [h for r in site.getsitepackages()
        for h in glob.glob(os.path.join(r, 'nvidia', '**', '$1'), recursive=True)]
print(os.path.dirname(hits[0]) if hits else '')"
  }
  libs=$bundle/lib
  for lib in libcublasLt.so.13 libnccl.so.2; do
    dir=$(folder_of "$lib")
    [[ -n $dir ]] || { echo "gpu-check: $lib is nowhere on this machine"; exit 1; }
    libs=$libs:$dir
  done
  export LD_LIBRARY_PATH="$libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  echo "library path: $LD_LIBRARY_PATH"
  if ldd "$bundle"/bin/* | grep 'not found'; then
    echo "gpu-check: the bundle misses the libraries above"; exit 1
  fi
  # The tests train on the Python standard library; this machine's lies
  # elsewhere than the build machine's.
  LAER_TEXT_DIR=$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["stdlib"])')
  export LAER_TEXT_DIR
  tests="$bundle/bin/laer-cuda-unittests"
  compiled="$bundle/bin/laer-cuda-compiled-unittests"
  imported="$bundle/bin/laer-cuda-imported-unittests"
  bench="$bundle/bin/laer-cuda-bench"
  train=
else
  build=${1:-build-gpu}
  cmake -G Ninja -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$build" --target laer-cuda-unittests \
    laer-cuda-compiled-unittests laer-cuda-imported-unittests \
    laer-cuda-bench laer-train
  tests="$build/test/unit/laer-cuda-unittests"
  compiled="$build/test/unit/laer-cuda-compiled-unittests"
  imported="$build/test/unit/laer-cuda-imported-unittests"
  bench="$build/bench/cuda/laer-cuda-bench"
  train="$build/bin/laer-train"
fi
# GPU_CHECK_PARTS picks what runs (default all; the device tool allows 10
# minutes a call, so a slow machine may need one call per part).
parts=" ${GPU_CHECK_PARTS:-tests sanitize bench train} "
# Every part runs even when an earlier one fails; the exit status says
# whether any did.
status=0
if [[ $parts == *" tests "* ]]; then
  "$tests" --gtest_brief=1 || status=1
  "$compiled" --gtest_brief=1 || status=1
  "$imported" --gtest_brief=1 || status=1
fi
if [[ $parts == *" sanitize "* ]]; then
  sanitizer=/usr/local/cuda/bin/compute-sanitizer
  # memcheck also covers the whole GPU layer (its NCCL transfers included)
  # and one bf16 training run through the GPU backend; racecheck checks
  # the kernels' shared-memory use. API errors are not reported: NCCL's
  # set-up asks for the attributes of its kernels built for other GPUs
  # and handles the "no kernel image" answers (80 on an H200).
  echo "== compute-sanitizer --tool memcheck"
  "$sanitizer" --tool memcheck --report-api-errors no --error-exitcode 1 \
    "$tests" --gtest_brief=1 \
    --gtest_filter='CudaKernels.*:GroupedGemm.*:GpuFsepMoELayer.*:GpuMoEBackend.TrainsLikeTheCpuLayersInBf16' ||
    status=1
  echo "== compute-sanitizer --tool racecheck"
  "$sanitizer" --tool racecheck --report-api-errors no --error-exitcode 1 \
    "$tests" --gtest_brief=1 --gtest_filter='CudaKernels.*:GroupedGemm.*' ||
    status=1
fi
if [[ $parts == *" bench "* ]]; then
  "$bench" --repeats "${LAER_BENCH_REPEATS:-20}" || status=1
fi
[[ -n $train && $parts == *" train "* ]] || exit $status
# One rank (a singleton MPI process): the same 20 steps with the MoE
# layers on the CPU, then on the GPU in fp32 (losses within 1e-5 of the
# CPU's) and bf16.
echo "== laer-train --device cpu | cuda"
for device in "cpu" "cuda --precision fp32" "cuda --precision bf16"; do
  echo "-- --device $device"
  # shellcheck disable=SC2086
  "$train" --data runtime --suffix .cpp --steps 20 --log-every 5 \
    --batch 8 --sequence 64 --token-chunks 2 --no-progress --device $device ||
    status=1
done
exit $status
