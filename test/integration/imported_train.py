#!/usr/bin/env python3
"""A model imported from a HF config.json trains, and FSEP does not change it.

laer-import turns a small config of one MoE family (Mixtral, Qwen2-MoE,
Qwen3-MoE, OLMoE: biases, QK-norm, head sizes other than H / heads, gated
shared experts, dense MLP layers) into model IR at a byte-level vocabulary;
laer-compile makes it a training binary; then, with the same seed and data
and the laer+ planner re-planning every step:
  - 2 ranks and 1 rank: losses equal to 1e-4 relative (the dense gradients
    are all-reduced, the experts sharded and restored: same math);
  - the FSEP program compiled op by op (--ranks 2 --chunks 2) on 2 ranks:
    the same losses as the fused binary;
  - the loss falls (mean of the first 10 steps vs the last 10).
Usage: imported_train.py SCRATCH LAER_IMPORT LAER_COMPILE CONFIG DATA MPIRUN...
DATA: a folder of text (.py files; the Python standard library).
"""
import os
import re
import subprocess
import sys

STEPS = 20


def fail(message):
    print("imported_train: FAIL:", message)
    sys.exit(1)


scratch, importer, compiler, config, data = sys.argv[1:6]
mpirun = sys.argv[6:]


def run(command, timeout=240):
    done = subprocess.run(command, capture_output=True, text=True,
                          timeout=timeout)
    if done.returncode != 0:
        fail("%s exited %d:\n%s%s" % (" ".join(command), done.returncode,
                                        done.stdout, done.stderr))
    return done.stdout


def losses(binary, ranks):
    out = run(mpirun + ["--timeout", "200", "-np", str(ranks), binary,
                        "--data", data, "--suffix", ".py",
                        "--steps", str(STEPS), "--log-every", "1",
                        "--batch", "4", "--sequence", "32",
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
    print("%-34s max relative difference %.2e" % (name, worst))
    if worst > tolerance:
        fail("%s: losses differ by %.2e relative\n%s\n%s"
             % (name, worst, a, b))


os.makedirs(scratch, exist_ok=True)
model = os.path.join(scratch, "model.mlir")
run([importer, config, "--vocab", "256", "--seq-len", "32", "-o", model])
binary = os.path.join(scratch, "train")
run([compiler, model, "-o", binary])
two = losses(binary, 2)
one = losses(binary, 1)
print("losses (2 ranks):", " ".join("%.4f" % x for x in two))
compare("2 ranks vs 1 rank", two, one)
fsep = os.path.join(scratch, "train-fsep2")
run([compiler, model, "--ranks", "2", "--chunks", "2", "-o", fsep])
compare("fsep program 2 ranks vs fused", losses(fsep, 2), one)
first, last = sum(two[:10]) / 10, sum(two[-10:]) / 10
print("mean loss, steps 0-9: %.4f, steps 10-19: %.4f" % (first, last))
if not last < first - 0.1:
    fail("the loss did not fall")
print("imported_train: PASS")
