#!/usr/bin/env python3
"""A model IR compiled by laer-compile trains like the runtime's reference.

Compiles examples/tiny_moe_lm.mlir into a training binary, then with the
same seed and data (the laer+ planner re-planning every step):
  - 4 ranks and 1 rank: losses equal to 1e-4 relative for 20 steps (FSEP
    and the planner must not change the math);
  - the compiled binary and laer-train (the model wired by hand on the
    runtime's kernels, an independent implementation of the same
    forward/backward/AdamW) on 4 ranks: the same losses;
  - the FSEP program compiled op by op (laer-compile --ranks N: chunked,
    scheduled fsep ops, one runtime call each) on 4 ranks with 2 chunks
    and on 1 rank with 3 chunks: the same losses as the fused binary;
  - the 4-rank FSEP binary started on 2 ranks: a clear error, no hang;
  - the loss falls (mean of the first 10 steps vs the last 10).
Usage: compiled_train.py [--reference-args=ARGS] [--suffix=S] SCRATCH
                         LAER_COMPILE MODEL LAER_TRAIN DATA MPIRUN...
ARGS (split at spaces) go to laer-train only, to give it the model's shape
(--shared-ffn S for a model with shared experts). DATA: the text, files
ending in S (default .py) under a folder that does not change from commit
to commit (the Python standard library): the runs sum in different
orders, so a router near-tie that flips between them turns a rounding
difference into a visible one, and whether the batches hold one must not
depend on what was last edited.
"""
import os
import subprocess
import sys

from train_runs import TrainRuns

args = sys.argv[1:]
reference_args = []
suffix = ".py"
while args and args[0].startswith("--"):
    option, value = args.pop(0).split("=", 1)
    if option == "--reference-args":
        reference_args = value.split()
    elif option == "--suffix":
        suffix = value
    else:
        print("compiled_train: FAIL: unknown option " + option)
        sys.exit(1)
scratch, compiler, model, reference, data = args[:5]
runs = TrainRuns("compiled_train", args[5:], data, suffix=suffix)
run, losses, compare, fail = runs.run, runs.losses, runs.compare, runs.fail


os.makedirs(scratch, exist_ok=True)
binary = os.path.join(scratch, "train")
run([compiler, model, "-o", binary])
four = losses(binary, 4)
one = losses(binary, 1)
hand = losses(reference, 4, reference_args)
print("losses (compiled, 4 ranks):", " ".join("%.4f" % x for x in four))
compare("compiled 4 ranks vs 1 rank", four, one)
compare("compiled vs laer-train", four, hand)

fsep4 = os.path.join(scratch, "train-fsep4")
fsep1 = os.path.join(scratch, "train-fsep1")
run([compiler, model, "--ranks", "4", "--chunks", "2", "-o", fsep4])
run([compiler, model, "--ranks", "1", "--chunks", "3", "-o", fsep1])
compare("fsep program 4 ranks vs fused", losses(fsep4, 4), one)
compare("fsep program 1 rank vs fused", losses(fsep1, 1), one)
wrong = subprocess.run(runs.train_command(fsep4, 2), capture_output=True,
                       text=True, timeout=120)
expected = "compiled for 4 ranks (laer-compile --ranks 4) but runs on 2"
if wrong.returncode == 0 or expected not in wrong.stdout + wrong.stderr:
    fail("the 4-rank program on 2 ranks: expected an error naming the "
         "rank count, got exit %d:\n%s%s"
         % (wrong.returncode, wrong.stdout, wrong.stderr))
print("4-rank program on 2 ranks: clear error")
runs.expect_falling(four)
print("compiled_train: PASS")
