#!/usr/bin/env bash
# laer-run: mpirun with what laer's runs need, the same as root or as a
# user.
#
#   laer-run -np N PROGRAM [ARGS...]      (any mpirun option before PROGRAM)
#
# Adds --oversubscribe (more ranks than cores, as on a laptop or CI box),
# one BLAS thread per rank (OPENBLAS_NUM_THREADS=1 unless set: ranks are
# the parallelism) and, as root, Open MPI's consent to run as root, which
# it refuses without. LAER_MPIRUN names another launcher.
set -euo pipefail
if [ $# -eq 0 ] || [ "$1" = --help ] || [ "$1" = -h ]; then
  sed -n '2,11s/^# \{0,1\}//p' "$0"
  exit 0
fi
mpirun=${LAER_MPIRUN:-mpirun}
if ! command -v "$mpirun" >/dev/null; then
  echo "laer-run: '$mpirun' not found (install openmpi-bin, or set LAER_MPIRUN)" >&2
  exit 1
fi
args=(--oversubscribe -x "OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}")
if [ "$(id -u)" = 0 ]; then
  args+=(--allow-run-as-root)
fi
exec "$mpirun" "${args[@]}" "$@"
