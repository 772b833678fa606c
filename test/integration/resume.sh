#!/usr/bin/env bash
# Kill a training run mid-way, resume it from its last checkpoint: the
# losses and load balance of the resumed steps, and the final weights,
# optimizer state and kept layouts (every rank's checkpoint file, byte for
# byte), equal those of an uninterrupted run.
# Usage: resume.sh <scratch dir> <sequence> <mpirun command...> <training
#        binary> [training options...] <data dir>
set -u -o pipefail
scratch=$1
sequence=$2
shift 2
data=${*: -1}
launch=("${@:1:$#-1}")
common=(--data "$data" --suffix .cpp --steps 12 --log-every 1 --batch 8
        --sequence "$sequence" --no-progress)
# Step, loss and each layer's max/mean load (the layout's mark).
losses() {
  grep -E '^step +[0-9]+ +loss' |
    awk '{line = $2 " " $4; for (i = 12; i <= NF; i++) line = line " " $i;
          print line}'
}
fail() { echo "resume: FAIL: $*"; exit 1; }

rm -rf "$scratch" && mkdir -p "$scratch"
straight=$(timeout 120 "${launch[@]}" "${common[@]}" \
  --checkpoint-dir "$scratch/straight" --checkpoint-every 100 | losses) \
  || fail "the uninterrupted run failed"
timeout 120 "${launch[@]}" "${common[@]}" --checkpoint-dir "$scratch" \
  --checkpoint-every 4 --crash-at-step 9 > "$scratch/crashed.log" 2>&1
[ $? -ne 0 ] || fail "the run that should crash exited 0"
grep -q "crashing after step 9" "$scratch/crashed.log" || fail "no crash"
[ "$(cat "$scratch/latest")" = step-7 ] || fail "latest is not step-7"
resumed=$(timeout 120 "${launch[@]}" "${common[@]}" --checkpoint-dir "$scratch" \
  --checkpoint-every 4 --resume | tee "$scratch/resumed.log" | losses) \
  || fail "the resumed run failed"
grep -q "resumed from .*step-7 at step 8" "$scratch/resumed.log" \
  || fail "did not resume at step 8"
expected=$(echo "$straight" | awk '$1 >= 8')
echo "uninterrupted (steps 8-11):"; echo "$expected"
echo "resumed:"; echo "$resumed"
[ -n "$resumed" ] && [ "$resumed" = "$expected" ] || fail "losses or loads differ"
for file in "$scratch"/straight/step-11/rank*.safetensors; do
  cmp "$file" "$scratch/step-11/$(basename "$file")" \
    || fail "final state differs: $(basename "$file")"
done
echo "final checkpoints (weights + AdamW moments) identical"
echo "resume: PASS"
