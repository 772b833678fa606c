#!/usr/bin/env python3
"""Gradient clipping, accumulation and skipped steps, against PyTorch.

For the compiled tiny MoE LM on 1 and on 2 ranks, one step on a fixed
batch (--data-order sequential) with --export-gradients:
  1. clipping: torch.nn.utils.clip_grad_norm_ over the unclipped run's
     exported gradients returns the norm laer's --metrics reports (1e-5
     relative), and clips them to what the run with --clip-grad-norm
     exports (1e-5 of the largest value);
  2. accumulation: --grad-accumulation 2 exports the gradients of the whole
     batch (1e-5), and over 3 steps its losses and gradient norms are the
     whole batch's; laer-train (whose tensors have no names to export)
     likewise on the losses and norms;
  3. a run whose steps go non-finite (--lr 1e30) stops with a non-zero exit
     naming the step; with --skip-nonfinite it skips them and finishes;
  4. held-out evaluation (--eval-every) leaves training as it is (the same
     losses with evaluations every 4 steps as with one), gives the same
     loss on 1 and 2 ranks, and falls as the model trains.
Usage: train_features.py SCRATCH LAER_COMPILE LAER_TRAIN MODEL_IR DATA
           MPIRUN...
"""
import json
import os
import subprocess
import sys

import torch

from train_runs import as_tensor, read_safetensors

scratch, compiler, laer_train, model_ir, data = sys.argv[1:6]
mpirun = sys.argv[6:] + ["--timeout", "240"]
os.makedirs(scratch, exist_ok=True)
BATCH = 4


def fail(message):
    print("train_features: FAIL: " + message)
    sys.exit(1)


def run(command, expect_failure=False):
    done = subprocess.run(command, capture_output=True, text=True,
                          timeout=300)
    if (done.returncode != 0) != expect_failure:
        fail("%s %s:\n%s%s" % (" ".join(command),
                               "succeeded" if expect_failure else "failed",
                               done.stdout, done.stderr))
    return done.stdout + done.stderr


def read_gradients(folder):
    """name -> float32 tensor, over every safetensors file of `folder`."""
    tensors = {name: as_tensor(entry)
               for name, entry in read_safetensors(folder).items()}
    if not tensors:
        fail("no gradients in " + folder)
    return tensors


def metrics(path):
    return [json.loads(line) for line in open(path)]


def close(what, got, want, tolerance=1e-5):
    scale = max(want.abs().max().item(), 1e-30)
    error = (got - want).abs().max().item() / scale
    if error > tolerance:
        fail("%s: max error %.3g of the largest value (tolerance %g)"
             % (what, error, tolerance))


binary = os.path.join(scratch, "train")
run([compiler, model_ir, "-o", binary])

for trainer_name, trainer in (("compiled", binary), ("laer-train",
                                                     laer_train)):
    exports = trainer_name == "compiled"
    for ranks in (1, 2):
        tag = "%s-%d" % (trainer_name, ranks)

        def train(name, steps=1, extra=()):
            out = os.path.join(scratch, "%s-%s" % (tag, name))
            command = mpirun + ["-np", str(ranks), trainer, "--data", data,
                                "--suffix", ".cpp", "--steps", str(steps),
                                "--batch", str(BATCH), "--data-order",
                                "sequential", "--no-progress", "--metrics",
                                out + ".jsonl"]
            if exports:
                command += ["--export-gradients", out]
            run(command + list(extra))
            return out

        # 1. Clipping against torch.nn.utils.clip_grad_norm_.
        plain = train("plain")
        norm = metrics(plain + ".jsonl")[0]["grad_norm"]
        limit = norm / 4
        clipped = train("clipped", extra=["--clip-grad-norm", str(limit)])
        if abs(metrics(clipped + ".jsonl")[0]["grad_norm"] - norm) > \
                1e-5 * norm:
            fail("%s: the clipped run reports another norm" % tag)
        if exports:
            gradients = read_gradients(plain)
            parameters = []
            for name in sorted(gradients):
                p = torch.nn.Parameter(torch.zeros_like(gradients[name]))
                p.grad = gradients[name].clone()
                parameters.append((name, p))
            total = torch.nn.utils.clip_grad_norm_(
                [p for _, p in parameters], limit).item()
            if abs(total - norm) > 1e-5 * total:
                fail("%s: laer's gradient norm %.9g, torch's %.9g"
                     % (tag, norm, total))
            laer_clipped = read_gradients(clipped)
            for name, p in parameters:
                close("%s clipped %s" % (tag, name), laer_clipped[name],
                      p.grad)

            # 2. Accumulation over 2 micro-batches equals the whole batch.
            summed = read_gradients(train("accumulated",
                                          extra=["--grad-accumulation", "2"]))
            for name in gradients:
                close("%s accumulated %s" % (tag, name), summed[name],
                      gradients[name])
        whole = train("whole3", steps=3)
        parts = train("parts3", steps=3, extra=["--grad-accumulation", "2"])
        for a, b in zip(metrics(whole + ".jsonl"), metrics(parts + ".jsonl")):
            for field in ("loss", "grad_norm"):
                if abs(a[field] - b[field]) > 1e-5 * abs(a[field]):
                    fail("%s: step %d %s %.9g with the whole batch, %.9g "
                         "accumulated" % (tag, a["step"], field, a[field],
                                          b[field]))
        print("%s: norm %.6g, clipped to %.6g, accumulation matches"
              % (tag, norm, limit))

# 3. Non-finite steps: stop, or skip with --skip-nonfinite.
diverge = ["--lr", "1e30", "--steps", "4"]
out = os.path.join(scratch, "diverged")
stopped = run(mpirun + ["-np", "1", binary, "--data", data, "--suffix",
                        ".cpp", "--batch", str(BATCH), "--no-progress"] +
              diverge, expect_failure=True)
if "training diverged" not in stopped or "step " not in stopped:
    fail("a diverged run says:\n" + stopped)
skipped = run(mpirun + ["-np", "1", binary, "--data", data, "--suffix",
                        ".cpp", "--batch", str(BATCH), "--no-progress",
                        "--skip-nonfinite", "--metrics", out + ".jsonl"] +
              diverge)
records = metrics(out + ".jsonl")
if len(records) != 4 or not any(r.get("skipped") for r in records):
    fail("--skip-nonfinite: %d records, none skipped:\n%s"
         % (len(records), skipped))
if "skipped:" not in skipped:
    fail("--skip-nonfinite logs no skipped step:\n" + skipped)

# 4. Held-out evaluation.
def evaluated(ranks, every):
    out = os.path.join(scratch, "eval-%d-%d.jsonl" % (ranks, every))
    log = run(mpirun + ["-np", str(ranks), binary, "--data", data,
                        "--suffix", ".cpp", "--batch", str(BATCH),
                        "--steps", "12", "--no-progress", "--eval-every",
                        str(every), "--metrics", out])
    if "eval loss" not in log or "after the last step" not in log:
        fail("--eval-every logs no final held-out loss:\n" + log)
    return metrics(out)


often, once = evaluated(1, 4), evaluated(1, 100)
for a, b in zip(often, once):
    if a["loss"] != b["loss"]:
        fail("evaluating changed training: step %d loss %.9g vs %.9g"
             % (a["step"], a["loss"], b["loss"]))
evals = {r["step"]: r["eval_loss"] for r in often if "eval_loss" in r}
if sorted(evals) != [0, 4, 8]:
    fail("held-out losses at steps %s, not 0, 4, 8" % sorted(evals))
if not evals[8] < evals[0]:
    fail("the held-out loss did not fall: %s" % evals)
two = {r["step"]: r["eval_loss"] for r in evaluated(2, 4) if "eval_loss" in r}
for step, loss in evals.items():
    if abs(two[step] - loss) > 1e-5 * loss:
        fail("held-out loss at step %d: %.9g on 1 rank, %.9g on 2"
             % (step, loss, two[step]))
print("held-out loss: %s" % " ".join("%d: %.4f" % kv for kv in
                                     sorted(evals.items())))
print("train_features: PASS")
