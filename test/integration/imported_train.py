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
With router losses (--set output_router_logits=true ...) the aux loss of a
micro-batch depends on how the batch is split, so 2 ranks equal 1 rank
only with --aux-loss-batch global (loads over all ranks); the FSEP program
equals the fused binary on 2 ranks either way.
Usage: imported_train.py SCRATCH LAER_IMPORT LAER_COMPILE CONFIG DATA
           [--set FIELD=JSON]... [--import-option OPT]... MPIRUN...
DATA: a folder of text (.py files; the Python standard library).
"""
import json
import os
import sys

from train_runs import TrainRuns, model_options

scratch, importer, compiler, config, data = sys.argv[1:6]
fields, import_options, rest = model_options(sys.argv[6:])
runs = TrainRuns("imported_train", rest, data, batch=4, sequence=32)

os.makedirs(scratch, exist_ok=True)
if fields:
    with open(config) as f:
        settings = json.load(f)
    settings.update(fields)
    config = os.path.join(scratch, "config.json")
    with open(config, "w") as f:
        json.dump(settings, f)
model = os.path.join(scratch, "model.mlir")
runs.run([importer, config, "--vocab", "256", "--seq-len", "32", "-o", model]
         + import_options)
micro_batch_losses = "aux_loss<micro_batch>" in open(model).read()
binary = os.path.join(scratch, "train")
runs.run([compiler, model, "-o", binary])
two = runs.losses(binary, 2)
print("losses (2 ranks):", " ".join("%.4f" % x for x in two))
if not micro_batch_losses:
    runs.compare("2 ranks vs 1 rank", two, runs.losses(binary, 1))
fsep = os.path.join(scratch, "train-fsep2")
runs.run([compiler, model, "--ranks", "2", "--chunks", "2", "-o", fsep])
runs.compare("fsep program 2 ranks vs fused", runs.losses(fsep, 2), two)
runs.expect_falling(two)
print("imported_train: PASS")
