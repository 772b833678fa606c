#!/usr/bin/env bash
# A training run whose rank 1 is stopped (SIGSTOP: alive, silent) must end
# within its --collective-timeout plus a little, non-zero, with every other
# rank naming rank 1, instead of waiting forever.
# Usage: rank_stop.sh <laer-train> <data dir> <mpirun command...>
set -u
train=$1 data=$2
shift 2
log=$(mktemp)
trap 'rm -f "$log"' EXIT
fail() { cat "$log"; echo "rank_stop: FAIL: $*"; exit 1; }
timeout 90 "$@" -np 2 "$train" --data "$data" --suffix .cpp --steps 100000 \
  --batch 2 --log-every 1 --no-progress --collective-timeout 4 >"$log" 2>&1 &
job=$!
# Wait for the first step, then stop rank 1.
for _ in $(seq 100); do
  grep -q "^step" "$log" && break
  sleep 0.2
done
grep -q "^step" "$log" || fail "the run did not start"
victim=""
for pid in $(pgrep -f -- "$train --data $data"); do
  if tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null |
      grep -qx "OMPI_COMM_WORLD_RANK=1"; then
    victim=$pid
  fi
done
[ -n "$victim" ] || fail "no rank 1 process found"
kill -STOP "$victim"
start=$(date +%s)
wait "$job"
status=$?
elapsed=$(( $(date +%s) - start ))
kill -KILL "$victim" 2>/dev/null
[ "$status" -ne 0 ] || fail "the run succeeded"
[ "$status" -ne 124 ] || fail "the run hung (killed by timeout)"
[ "$elapsed" -le 30 ] || fail "took ${elapsed}s after the stop"
grep -Eq "laer: rank 0, .*did not complete within 4000 ms; no word from rank 1 " "$log" \
  || fail "rank 0 did not name the silent rank"
echo "rank_stop: stopped rank 1, the run ended after ${elapsed}s:"
grep "no word from" "$log" | head -1
echo "rank_stop: PASS"
