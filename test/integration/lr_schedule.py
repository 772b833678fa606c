#!/usr/bin/env python3
"""The learning-rate schedule of a training run equals PyTorch's.

laer-train runs 12 steps with --warmup 3 and each --lr-decay, writing the
learning rate of every step into its --metrics file; torch.optim's
LinearLR (warm-up from lr / 3), then CosineAnnealingLR or LinearLR to
--min-lr, chained by SequentialLR, give the same rates (1e-6 relative).
Usage: lr_schedule.py SCRATCH LAER_TRAIN DATA MPIRUN...
"""
import json
import os
import subprocess
import sys

import torch

scratch, train, data = sys.argv[1:4]
mpirun = sys.argv[4:] + ["--timeout", "120"]
os.makedirs(scratch, exist_ok=True)
STEPS, WARMUP, LR, MIN_LR = 12, 3, 0.01, 0.001


def torch_rates(decay):
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.AdamW([parameter], lr=LR)
    warmup = torch.optim.lr_scheduler.LinearLR(
        optimizer, start_factor=1.0 / WARMUP, end_factor=1.0,
        total_iters=WARMUP - 1)
    span = STEPS - WARMUP
    if decay == "cosine":
        after = torch.optim.lr_scheduler.CosineAnnealingLR(
            optimizer, T_max=span, eta_min=MIN_LR)
    else:
        after = torch.optim.lr_scheduler.LinearLR(
            optimizer, start_factor=1.0, end_factor=MIN_LR / LR,
            total_iters=span)
    schedule = torch.optim.lr_scheduler.SequentialLR(
        optimizer, [warmup, after], milestones=[WARMUP])
    rates = []
    for _ in range(STEPS):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    return rates


for decay in ("cosine", "linear"):
    metrics = os.path.join(scratch, "metrics-%s.jsonl" % decay)
    result = subprocess.run(
        mpirun + ["-np", "1", train, "--data", data, "--suffix", ".cpp",
                  "--steps", str(STEPS), "--batch", "2", "--lr", str(LR),
                  "--warmup", str(WARMUP), "--lr-decay", decay, "--min-lr",
                  str(MIN_LR), "--metrics", metrics, "--no-progress"],
        capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        sys.exit("lr_schedule: laer-train failed:\n" + result.stdout +
                 result.stderr)
    laer = [json.loads(line)["lr"] for line in open(metrics)]
    want = torch_rates(decay)
    for step, (got, expected) in enumerate(zip(laer, want)):
        if abs(got - expected) > 1e-6 * expected:
            sys.exit("lr_schedule: %s step %d: laer %.9g, torch %.9g"
                     % (decay, step, got, expected))
    if len(laer) != STEPS:
        sys.exit("lr_schedule: %d metrics lines for %d steps"
                 % (len(laer), STEPS))
    print("%s: %s" % (decay, " ".join("%.6g" % r for r in laer)))
print("lr_schedule: PASS")
