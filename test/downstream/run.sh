#!/usr/bin/env bash
# Installs laer from BUILD_DIR into a fresh prefix under SCRATCH, then, from
# the prefix alone: builds test/downstream against find_package(laer) and
# runs it, compiles the tiny model with the installed laer-compile (which
# finds the runtime at ../lib) and trains it one step, and imports
# laer.torch from the installed Python package.
# Usage: test/downstream/run.sh BUILD_DIR SOURCE_DIR SCRATCH [python]
# ("python": the build has the Python package, which must be installed)
set -euo pipefail
build=$1 source=$2 scratch=$3 python=${4:-}
rm -rf "$scratch"
mkdir -p "$scratch"
prefix=$scratch/prefix
cmake --install "$build" --prefix "$prefix" >/dev/null
cmake -S "$source/test/downstream" -B "$scratch/consumer" -G Ninja \
  -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$scratch/consumer" >/dev/null
"$scratch/consumer/consumer"
"$prefix/bin/laer-compile" "$source/examples/tiny_moe_lm.mlir" \
  -o "$scratch/tiny-train"
"$scratch/tiny-train" --data "$source/runtime" --suffix .cpp --steps 1 \
  --batch 2 --no-progress | grep -q "step"
echo "downstream: installed laer-compile built a training binary that trains"
if [ -n "$python" ]; then
  PYTHONPATH="$prefix/lib/python3/dist-packages" /usr/bin/python3 -c \
    "import laer.torch, sys; assert 'laer._laer' not in sys.modules; print('downstream: import laer.torch from the prefix')"
fi
echo "downstream: PASS"
