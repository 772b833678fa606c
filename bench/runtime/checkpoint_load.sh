#!/usr/bin/env bash
# Loading a multi-GB sharded HF checkpoint into a compiled model's FSEP
# shards (--load-weights), next to `cat` of the same bytes, in one run.
#
# The model: Mixtral-8x7B's config at half width, 2 layers (0.84 G
# parameters; the compiled binary also holds gradients and AdamW moments, so
# ~14 GB of RAM). Its checkpoint is written in HF's layout (F32, 1 GB shards
# + model.safetensors.index.json) with laer's own export, then read back
# by `cat` and by the binary on 1 and 2 ranks, each from a warm page cache
# (the same bytes `cat` just read) and, when the caches can be dropped
# (root), cold.
# Usage: bench/runtime/checkpoint_load.sh [build dir] [scratch dir]
set -euo pipefail
build=$(realpath "${1:-build}")
scratch=${2:-/tmp/laer-checkpoint-load}
root=$([ "$(id -u)" = 0 ] && echo --allow-run-as-root || true)
config=$(dirname "$(realpath "$0")")/../../test/Target/HFConfig/Inputs/mixtral-8x7b-v0.1.json
mkdir -p "$scratch"
cd "$scratch"
"$build/bin/laer-import" "$config" --layers 2 --hidden-div 2 --seq-len 64 \
  -o model.mlir 2>/dev/null
"$build/bin/laer-compile" model.mlir -o train
/usr/bin/python3 -c "import struct; open('tokens.u32', 'wb').write(struct.pack('<1024I', *range(1024)))"
run() { # ranks, then the binary's flags
  local ranks=$1
  shift
  OPENBLAS_NUM_THREADS=1 timeout 1800 mpirun $root --oversubscribe \
    --bind-to none -np "$ranks" ./train --tokens tokens.u32 --vocab 32000 \
    --batch 2 --no-progress "$@"
}
# The checkpoint: the binary's initial weights, exported (2 ranks, each
# writing its own expert shards).
rm -rf ckpt
run 2 --steps 0 --export-weights ckpt --export-dtype F32 --export-shard-size 1000000000 >/dev/null
du -sh ckpt
files=(ckpt/*.safetensors)
drop() { sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null; }
for cache in warm cold; do
  if [ $cache = cold ] && ! drop; then
    echo "cold: cannot drop the page cache (not root); skipped"
    continue
  fi
  [ $cache = warm ] && cat "${files[@]}" > /dev/null
  start=$(date +%s.%N)
  cat "${files[@]}" > /dev/null
  end=$(date +%s.%N)
  bytes=$(cat "${files[@]}" | wc -c)
  echo "$cache cat: $(echo "$bytes / 1000000 / ($end - $start)" | bc -l | xargs printf '%.0f') MB/s"
  for ranks in 1 2; do
    [ $cache = cold ] && drop
    run $ranks --steps 0 --load-weights ckpt | grep "loaded weights" |
      sed "s/^/$cache $ranks rank(s): /"
  done
done
