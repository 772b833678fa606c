#!/usr/bin/env python3
"""Checks a laer-train trace: Chrome trace JSON with, for every rank, one
'step N' event per step and the FSEP phases of every MoE layer inside it.

Usage: trace_check.py TRACE RANKS STEPS LAYERS
"""
import json
import sys

path, ranks, steps, layers = sys.argv[1], *map(int, sys.argv[2:5])
events = json.load(open(path))["traceEvents"]
complete = [e for e in events if e["ph"] == "X"]
problems = []
for rank in range(ranks):
    mine = [e for e in complete if e["pid"] == rank]
    step_events = sorted((e for e in mine if e["cat"] == "train"),
                         key=lambda e: e["ts"])
    if [e["name"] for e in step_events] != ["step %d" % s for s in range(steps)]:
        problems.append("rank %d: step events %s" % (
            rank, [e["name"] for e in step_events]))
        continue
    for phase in ("restore", "dispatch", "compute", "combine", "grad-a2a"):
        for layer in range(layers):
            name = "%s L%d" % (phase, layer)
            for step in step_events:
                inside = [e for e in mine if e["name"] == name
                          and step["ts"] <= e["ts"]
                          and e["ts"] + e["dur"] <= step["ts"] + step["dur"] + 1]
                if not inside:
                    problems.append("rank %d: no '%s' inside %s" % (
                        rank, name, step["name"]))
names = {e["args"]["name"] for e in events if e["ph"] == "M"}
if names != {"rank %d" % r for r in range(ranks)}:
    problems.append("process names %s" % sorted(names))
if problems:
    print("trace_check: FAIL\n  " + "\n  ".join(problems[:10]))
    sys.exit(1)
print("trace_check: PASS (%d events)" % len(complete))
