#!/usr/bin/env bash
# Installs everything laer needs on Debian 12 (bookworm), or with
# arguments just those packages (scripts/fuzz.sh: clang-22). Run as root,
# or as a user with sudo. Safe to run again: only missing packages are
# installed.
# Usage: scripts/install-deps.sh [PACKAGE...]
set -euo pipefail

packages=(
  # build
  cmake ninja-build g++ ccache git pkg-config
  # compiler: MLIR/LLVM 22, lit and FileCheck
  libmlir-22-dev mlir-22-tools llvm-22-dev llvm-22-tools
  # runtime: MPI for CPU ranks, OpenBLAS for CPU GEMMs
  libopenmpi-dev openmpi-bin libopenblas-dev
  # runtime: zlib's CRC-32 for checkpoint integrity
  zlib1g-dev
  # tests and Python bindings
  libgtest-dev libbenchmark-dev nlohmann-json3-dev libglpk-dev
  python3 python3-dev pybind11-dev python3-numpy python3-pytest
  # laer-plot's pictures
  python3-matplotlib
  # the PyTorch references of the HF families (tests); laer.torch.MoE
  # under mpirun (mpi4py starts MPI in the Python process)
  python3-torch python3-mpi4py
)
[ $# -gt 0 ] && packages=("$@")

as_root=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || {
    echo "install-deps: run as root (or install sudo)" >&2
    exit 1
  }
  as_root=(sudo)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" \
    || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
"${as_root[@]}" apt-get update -q
DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -q \
  --no-install-recommends "${missing[@]}"
