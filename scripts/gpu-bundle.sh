#!/usr/bin/env bash
# Here, on a build machine (no GPU needed): build the GPU tests and the GPU
# benchmark and pack them, with the shared libraries the device machines
# lack (OpenBLAS, GLPK and theirs), into a folder git ignores, to carry to
# a GPU machine, where `scripts/gpu-check.sh --prebuilt DIR` runs them.
# The device image has no MPI, OpenBLAS, GoogleTest or MLIR to build with;
# it has glibc, the C++ runtime, CUDA 13 (cuBLASLt) and NCCL (PyTorch's
# wheel), which stay behind: cuBLASLt and NCCL alone are 760 MB.
#   scripts/gpu-bundle.sh [BUILD_DIR] [BUNDLE_DIR]   (build, .gpu-bundle)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
build=${1:-build}
bundle=${2:-.gpu-bundle}
cmake --build "$build" --target laer-cuda-unittests \
  laer-cuda-compiled-unittests laer-cuda-imported-unittests laer-cuda-bench
rm -rf "$bundle"
mkdir -p "$bundle/bin" "$bundle/lib"
cp "$build/test/unit/laer-cuda-unittests" \
  "$build/test/unit/laer-cuda-compiled-unittests" \
  "$build/test/unit/laer-cuda-imported-unittests" \
  "$build/bench/cuda/laer-cuda-bench" "$bundle/bin/"
stays='^(linux-vdso|ld-linux|libc|libm|libdl|libpthread|librt|libgcc_s|libstdc\+\+|libcublas|libcublasLt|libnccl)\.so'
for binary in "$bundle"/bin/*; do
  ldd "$binary" | awk '$3 ~ /^\// {print $1, $3}' |
    while read -r name path; do
      [[ $name =~ $stays ]] || cp -L "$path" "$bundle/lib/$name"
    done
done
# The device tool carries ignored paths only (.gitignore has the default).
if ! git check-ignore -q "$bundle/bin"; then
  mkdir -p .git/info
  echo "/$bundle/" >>.git/info/exclude
fi
ls "$bundle/lib"
du -sh "$bundle"
