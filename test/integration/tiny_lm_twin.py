#!/usr/bin/env python3
"""The PyTorch twin of the tiny LM (bench/pytorch/tiny_lm_step.py) does
laer's computation, so the speed figures that compare them are fair.

The compiled tiny LM exports its initial weights (--steps 0
--export-weights); laer trains 6 steps on a token file in sequential order
from them, on 1 rank and on 2 ranks, and the twin does the same from the
same file on 1 process and under DDP on 2: the first step's loss (same
weights, same batch) agrees within 1e-5 relative, and every later one
within 1e-3 (Adam's first updates are +-lr wherever a gradient is near
zero, so rounding-level differences in the gradients move later losses by
~1e-4).
Usage: tiny_lm_twin.py SCRATCH LAER_COMPILE MODEL_IR CONFIG TWIN MPIRUN...
"""
import json
import os
import random
import struct
import subprocess
import sys

scratch, compiler, model_ir, config, twin = sys.argv[1:6]
mpirun = sys.argv[6:] + ["--timeout", "240"]
os.makedirs(scratch, exist_ok=True)
STEPS, BATCH = 6, 8


def fail(message):
    print("tiny_lm_twin: FAIL: " + message)
    sys.exit(1)


def run(command):
    result = subprocess.run(command, capture_output=True, text=True,
                            timeout=600)
    if result.returncode != 0:
        fail("%s exited %d:\n%s%s" % (" ".join(command), result.returncode,
                                     result.stdout, result.stderr))
    return result.stdout


binary = os.path.join(scratch, "tiny")
run([compiler, model_ir, "-o", binary])
tokens = os.path.join(scratch, "tokens.u16")
rng = random.Random(7)
with open(tokens, "wb") as f:
    f.write(struct.pack("<50000H", *(rng.randrange(256) for _ in range(50000))))
weights = os.path.join(scratch, "initial")
run(mpirun + ["-np", "1", binary, "--tokens", tokens, "--steps", "0",
              "--export-weights", weights, "--no-progress"])
for ranks in (1, 2):
    metrics = os.path.join(scratch, "metrics-%d.jsonl" % ranks)
    run(mpirun + ["-np", str(ranks), binary, "--tokens", tokens,
                  "--steps", str(STEPS), "--batch", str(BATCH),
                  "--data-order", "sequential", "--load-weights", weights,
                  "--metrics", metrics, "--no-progress"])
    laer = [json.loads(line)["loss"] for line in open(metrics)]
    losses = os.path.join(scratch, "torch-%d.json" % ranks)
    run([sys.executable, twin, "--config", config, "--weights", weights,
         "--tokens", tokens, "--steps", str(STEPS), "--warmup", "0",
         "--batch", str(BATCH), "--processes", str(ranks),
         "--port", str(29540 + ranks), "--losses", losses])
    torch_losses = json.load(open(losses))
    if len(laer) != STEPS or len(torch_losses) != STEPS:
        fail("%d laer and %d PyTorch losses for %d steps" %
             (len(laer), len(torch_losses), STEPS))
    for step, (a, b) in enumerate(zip(laer, torch_losses)):
        tolerance = 1e-5 if step == 0 else 1e-3
        if abs(a - b) > tolerance * abs(b):
            fail("%d rank(s), step %d: laer loss %.7f, PyTorch %.7f" %
                 (ranks, step, a, b))
    print("%d rank(s): losses %s (laer) vs %s (PyTorch)" %
          (ranks, " ".join("%.5f" % x for x in laer),
           " ".join("%.5f" % x for x in torch_losses)))
print("tiny_lm_twin: PASS")
