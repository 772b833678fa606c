#!/usr/bin/env python3
"""A model IR compiled by laer-compile trains like the runtime's reference.

Compiles examples/tiny_moe_lm.mlir into a training binary, then with the
same seed and data (the laer+ planner re-planning every step):
  - 4 ranks and 1 rank: losses equal to 1e-4 relative for 20 steps (FSEP
    and the planner must not change the math);
  - the compiled binary and laer-train (the model wired by hand on the
    runtime's kernels, an independent implementation of the same
    forward/backward/AdamW) on 4 ranks: the same losses;
  - the loss falls (mean of the first 10 steps vs the last 10).
Usage: compiled_train.py SCRATCH LAER_COMPILE MODEL LAER_TRAIN DATA MPIRUN...
"""
import os
import re
import subprocess
import sys

scratch, compiler, model, reference, data = sys.argv[1:6]
mpirun = sys.argv[6:]
STEPS = 20


def fail(message):
    print("compiled_train: FAIL:", message)
    sys.exit(1)


def run(command, timeout=240):
    done = subprocess.run(command, capture_output=True, text=True,
                          timeout=timeout)
    if done.returncode != 0:
        fail("%s exited %d:\n%s%s" % (" ".join(command), done.returncode,
                                        done.stdout, done.stderr))
    return done.stdout


def losses(binary, ranks):
    out = run(mpirun + ["--timeout", "200", "-np", str(ranks), binary,
                        "--data", data, "--suffix", ".cpp",
                        "--steps", str(STEPS), "--log-every", "1",
                        "--batch", "8", "--sequence", "64",
                        "--planner", "laer+", "--replan-every", "1",
                        "--no-progress"])
    found = [float(m.group(2)) for m in
             re.finditer(r"^step +(\d+) +loss +([0-9.]+)", out, re.M)]
    if len(found) != STEPS:
        fail("expected %d losses from %s on %d ranks, got:\n%s"
             % (STEPS, binary, ranks, out))
    return found


def compare(name, a, b, tolerance=1e-4):
    worst = max(abs(x - y) / abs(y) for x, y in zip(a, b))
    print("%-32s max relative difference %.2e" % (name, worst))
    if worst > tolerance:
        fail("%s: losses differ by %.2e relative\n%s\n%s"
             % (name, worst, a, b))


os.makedirs(scratch, exist_ok=True)
binary = os.path.join(scratch, "train")
run([compiler, model, "-o", binary])
four = losses(binary, 4)
one = losses(binary, 1)
hand = losses(reference, 4)
print("losses (compiled, 4 ranks):", " ".join("%.4f" % x for x in four))
compare("compiled 4 ranks vs 1 rank", four, one)
compare("compiled vs laer-train", four, hand)
first, last = sum(four[:10]) / 10, sum(four[-10:]) / 10
print("mean loss, steps 0-9: %.4f, steps 10-19: %.4f" % (first, last))
if not last < first - 0.1:
    fail("the loss did not fall")
print("compiled_train: PASS")
