#!/usr/bin/env python3
"""Seeded mutation runner: laer-opt never crashes on mangled model IR.

Takes the project's example model IRs and dialect tests, mutates each
many times (numbers made zero, negative, huge or 64-bit-overflowing;
lines dropped, duplicated or swapped; tokens and bytes replaced), and runs
laer-opt on every mutant with one of the pipelines users run. Every run
must end with exit status 0 or 1 (a diagnostic), within its time limit,
and without a crash report. Deterministic: the seed and case count are
arguments, and a failure prints the seed, case and pipeline to rerun.
Usage: mutate_ir.py LAER_OPT SOURCE_ROOT [CASES] [SEED]
"""
import glob
import os
import random
import re
import subprocess
import sys
import tempfile

laer_opt, root = sys.argv[1:3]
cases = int(sys.argv[3]) if len(sys.argv) > 3 else 600
seed = int(sys.argv[4]) if len(sys.argv) > 4 else 2026

inputs = sorted(glob.glob(os.path.join(root, "examples", "*.mlir")) +
                glob.glob(os.path.join(root, "test", "Dialect", "*", "IR",
                                       "ops.mlir")))
sources = [(path, open(path).read()) for path in inputs]
pipelines = [
    [],
    ["--moe-decompose"],
    ["--laer-fsep-pipeline=num-devices=4 slots-per-device=2 chunks=2"],
    ["--laer-autodiff"],
    ["--canonicalize", "--cse"],
]
numbers = ["0", "-1", "1", "3", "4294967304", "9223372036854775807",
           "4611686018427387904", "65537", "-9223372036854775808", "1e309"]
tokens = ["tensor<?x?xf32>", "f16", "i32", "moe.layer", "}", "{", "(", ")",
          "top_k = 0", "score<sigmoid>", "x0x", "%undefined", ":", "->"]


def mutate(rng, text):
    lines = text.split("\n")
    for _ in range(rng.randint(1, 3)):
        kind = rng.randrange(6)
        if kind == 0:
            matches = list(re.finditer(r"\b\d+\b", text))
            if matches:
                m = rng.choice(matches)
                text = text[:m.start()] + rng.choice(numbers) + text[m.end():]
            lines = text.split("\n")
        elif kind == 1 and len(lines) > 1:
            del lines[rng.randrange(len(lines))]
            text = "\n".join(lines)
        elif kind == 2:
            i = rng.randrange(len(lines))
            lines.insert(i, lines[i])
            text = "\n".join(lines)
        elif kind == 3 and len(lines) > 2:
            i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
            lines[i], lines[j] = lines[j], lines[i]
            text = "\n".join(lines)
        elif kind == 4 and text:
            i = rng.randrange(len(text))
            text = text[:i] + rng.choice(tokens) + text[i + rng.randint(0, 8):]
            lines = text.split("\n")
        elif text:
            i = rng.randrange(len(text))
            text = text[:i] + chr(rng.randrange(32, 127)) + text[i + 1:]
            lines = text.split("\n")
    return text


rng = random.Random(seed)
crashes = 0
counts = {0: 0, 1: 0}
with tempfile.TemporaryDirectory() as scratch:
    path = os.path.join(scratch, "mutant.mlir")
    for case in range(cases):
        name, text = rng.choice(sources)
        mutant = mutate(rng, text)
        pipeline = rng.choice(pipelines)
        with open(path, "w") as f:
            f.write(mutant)
        try:
            done = subprocess.run([laer_opt, path] + pipeline,
                                  capture_output=True, text=True, timeout=60)
        except subprocess.TimeoutExpired:
            print("mutate_ir: case %d (seed %d) of %s with %s hung"
                  % (case, seed, os.path.basename(name), pipeline))
            crashes += 1
            continue
        crashed = (done.returncode not in (0, 1) or
                   "Stack dump" in done.stderr or
                   "PLEASE submit a bug report" in done.stderr)
        if crashed:
            crashes += 1
            keep = os.path.join(os.getcwd(), "mutate-ir-case-%d.mlir" % case)
            with open(keep, "w") as f:
                f.write(mutant)
            print("mutate_ir: case %d (seed %d) of %s with %s: exit %d, "
                  "kept as %s\n%s" % (case, seed, os.path.basename(name),
                                      pipeline, done.returncode, keep,
                                      done.stderr[-2000:]))
        else:
            counts[done.returncode] += 1
print("mutate_ir: %d cases: %d accepted, %d refused with a diagnostic, "
      "%d crashes or hangs" % (cases, counts[0], counts[1], crashes))
if crashes:
    sys.exit(1)
print("mutate_ir: PASS")
