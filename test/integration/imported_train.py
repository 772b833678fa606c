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
import sys

from train_runs import TrainRuns

scratch, importer, compiler, config, data = sys.argv[1:6]
runs = TrainRuns("imported_train", sys.argv[6:], data, batch=4, sequence=32)

os.makedirs(scratch, exist_ok=True)
model = os.path.join(scratch, "model.mlir")
runs.run([importer, config, "--vocab", "256", "--seq-len", "32", "-o", model])
binary = os.path.join(scratch, "train")
runs.run([compiler, model, "-o", binary])
two = runs.losses(binary, 2)
one = runs.losses(binary, 1)
print("losses (2 ranks):", " ".join("%.4f" % x for x in two))
runs.compare("2 ranks vs 1 rank", two, one)
fsep = os.path.join(scratch, "train-fsep2")
runs.run([compiler, model, "--ranks", "2", "--chunks", "2", "-o", fsep])
runs.compare("fsep program 2 ranks vs fused", runs.losses(fsep, 2), one)
runs.expect_falling(two)
print("imported_train: PASS")
