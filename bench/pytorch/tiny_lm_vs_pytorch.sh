#!/usr/bin/env bash
# A compiled Mixtral-family LM against its PyTorch twin
# (bench/pytorch/tiny_lm_step.py: one process, then DDP over gloo) at 1, 2
# and 4 ranks / processes, one after the other in one invocation, one BLAS
# thread each: the same initial weights (laer's, exported), the same
# byte-level text (the Python standard library's first 2 MB) in the same
# sequential order, batch 16, AdamW 3e-3. By default the tiny LM
# (examples/tiny_moe_lm.mlir, sequence 64); given a HF config.json (and a
# sequence length), that model through laer-import. Prints median step
# times, tokens/s and laer's speed-up.
# Usage: bench/pytorch/tiny_lm_vs_pytorch.sh [build dir] [steps]
#            [config.json sequence]
set -euo pipefail
build=${1:-build}
steps=${2:-30}
here=$(cd "$(dirname "$0")" && pwd)
config=${3:-$here/../../examples/configs/tiny.json}
sequence=${4:-64}
case $steps$sequence in *[!0-9]*) echo "tiny_lm_vs_pytorch.sh: steps and sequence must be whole numbers" >&2; exit 2 ;; esac
root=$([ "$(id -u)" = 0 ] && echo --allow-run-as-root || true)
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 GLOG_minloglevel=2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [ $# -ge 3 ]; then
  "$build/bin/laer-import" "$config" --seq-len "$sequence" -o "$work/model.mlir"
else
  cp "$here/../../examples/tiny_moe_lm.mlir" "$work/model.mlir"
fi
timeout 600 "$build/bin/laer-compile" "$work/model.mlir" -o "$work/tiny"
/usr/bin/python3 - "$work/tokens.u16" <<'PY'
import pathlib, struct, sys, sysconfig
data = b"".join(p.read_bytes() for p in
                sorted(pathlib.Path(sysconfig.get_paths()["stdlib"]).glob("*.py")))
data = data[:2_000_000]
open(sys.argv[1], "wb").write(struct.pack("<%dH" % len(data), *data))
PY
mpi() { timeout 600 mpirun $root --oversubscribe --bind-to none "$@"; }
mpi -np 1 "$work/tiny" --tokens "$work/tokens.u16" --steps 0 \
  --export-weights "$work/initial" --no-progress >/dev/null
printf '| ranks | laer step (ms) | laer tokens/s | PyTorch step (ms) | PyTorch tokens/s | laer speed-up |\n'
printf '|---:|---:|---:|---:|---:|---:|\n'
for ranks in 1 2 4; do
  mpi -np "$ranks" "$work/tiny" --tokens "$work/tokens.u16" \
    --steps $((steps + 2)) --batch 16 --data-order sequential \
    --load-weights "$work/initial" --metrics "$work/m$ranks.jsonl" \
    --no-progress >/dev/null
  laer=$(/usr/bin/python3 -c '
import json, statistics, sys
steps = [json.loads(l)["step_ms"] for l in open(sys.argv[1])][2:]
print(statistics.median(steps))' "$work/m$ranks.jsonl")
  torch=$(timeout 600 /usr/bin/python3 "$here/tiny_lm_step.py" \
    --config "$config" --sequence "$sequence" \
    --weights "$work/initial" --tokens "$work/tokens.u16" --steps "$steps" \
    --warmup 2 --batch 16 --processes "$ranks" | awk '/^step/ { print $2 }')
  awk -v r="$ranks" -v l="$laer" -v t="$torch" -v n=$((16 * sequence)) 'BEGIN {
    printf "| %d | %.1f | %.0f | %.1f | %.0f | %.2fx |\n",
      r, l, n / l * 1e3, t, n / t * 1e3, t / l }'
done
