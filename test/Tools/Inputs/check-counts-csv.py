"""Checks a --counts-csv file against the --metrics file of the same run.

Each row's counts sum to the rank's tokens x top-k (argv[3]: tokens per
rank, top-2), and summed over the ranks they are the metrics' per-layer
tokens per expert.
"""
import collections
import json
import sys

counts_path, metrics_path, tokens = sys.argv[1], sys.argv[2], int(sys.argv[3])
sums = collections.defaultdict(lambda: None)
with open(counts_path) as f:
    header = f.readline().strip().split(",")
    experts = len(header) - 3
    for number, line in enumerate(f, start=2):
        fields = [int(v) for v in line.split(",")]
        step, layer, counts = fields[0], fields[1], fields[3:]
        if len(counts) != experts:
            sys.exit(f"line {number}: {len(counts)} counts, header has {experts}")
        if sum(counts) != 2 * tokens:
            sys.exit(f"line {number}: counts sum to {sum(counts)}, not {2 * tokens}")
        key = (step, layer)
        sums[key] = [a + b for a, b in zip(sums[key] or [0] * experts, counts)]
checked = 0
with open(metrics_path) as f:
    for line in f:
        record = json.loads(line)
        for layer, loads in enumerate(record["expert_loads"]):
            if sums[(record["step"], layer)] != loads:
                sys.exit(f"step {record['step']} layer {layer}: "
                         f"{sums[(record['step'], layer)]} != {loads}")
            checked += 1
steps = len({k[0] for k in sums})
print(f"{steps} steps x {checked // steps} layers agree with the metrics")
