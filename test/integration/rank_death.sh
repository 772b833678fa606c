#!/usr/bin/env bash
# A rank that dies or stalls mid-step must make the whole run exit
# non-zero, with a message, within 30 s.
# Usage: rank_death.sh exit|stall <mpirun command...> <binary>
set -u
mode=$1
shift
start=$(date +%s)
output=$(timeout 60 "$@" 1 10 "$mode" 2>&1)
status=$?
elapsed=$(( $(date +%s) - start ))
echo "$output"
echo "rank_death($mode): exit status $status after ${elapsed}s"
fail() { echo "rank_death($mode): FAIL: $*"; exit 1; }
[ "$status" -ne 0 ] || fail "the run succeeded although rank 1 failed"
[ "$status" -ne 124 ] || fail "the run hung (killed by timeout)"
[ "$elapsed" -le 30 ] || fail "took ${elapsed}s, more than 30s"
if [ "$mode" = exit ]; then
  grep -q "rank 1: exiting abruptly at step 2" <<<"$output" \
    || fail "the dying rank did not get to step 2"
  grep -Eq "exited on signal|non-zero (exit )?status" <<<"$output" \
    || fail "no message reports the dead rank"
else
  grep -q "rank 1: stalling at step 2" <<<"$output" \
    || fail "the stalling rank did not get to step 2"
  # laer's own message from a survivor, naming rank, layer, step, operation.
  grep -Eq "laer: rank [023], layer 0, step 2: .* did not complete within 10000 ms; no word from rank 1 " <<<"$output" \
    || fail "no survivor reported the stalled collective and its silent rank"
fi
echo "rank_death($mode): PASS"
