#!/usr/bin/env python3
"""Planner wall time next to the paper's (planner_results_backup.csv).

Usage: compare.py <google-benchmark JSON> <planner_results_backup.csv>
Prints a Markdown table: per (N, C), the paper's time, ours per planner,
and the speed-up of laer+ over the paper's figure.
"""
import csv
import json
import sys


def main(bench_json, paper_csv):
    ours = {}
    quality = {}
    for b in json.load(open(bench_json))["benchmarks"]:
        if b.get("run_type") == "aggregate":
            continue
        name, n, c = b["name"].split("/")[:3]
        ours[(name, int(n), int(c))] = b["real_time"]  # ms
        quality[(name, int(n), int(c))] = b.get("critical_path_ms")
    paper = {}
    for row in csv.DictReader(open(paper_csv)):
        paper[(int(row["n_device"]), int(row["C_e"]))] = 1e3 * float(row["time"])
    print("| N | C | paper (ms) | laer+ (ms) | laer (ms) | flexmoe (ms) "
          "| paper / laer+ |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for (n, c), ms in sorted(paper.items()):
        plus = ours.get(("laer+", n, c))
        cells = [ours.get((p, n, c)) for p in ("laer+", "laer", "flexmoe")]
        text = ["%.3f" % v if v is not None else "-" for v in cells]
        ratio = "%.0fx" % (ms / plus) if plus else "-"
        print("| %d | %d | %.3f | %s | %s |" % (n, c, ms, " | ".join(text),
                                                ratio))
    print()
    print("Plan quality: critical path of the MoE layer step (ms) in the cost "
          "model, same load")
    print()
    print("| N | C | flexmoe | laer | laer+ "
          "| laer+ / laer |")
    print("|---:|---:|---:|---:|---:|---:|")
    for (n, c) in sorted(paper):
        f, l, p = (quality.get((x, n, c)) for x in ("flexmoe", "laer", "laer+"))
        if None in (f, l, p):
            continue
        print("| %d | %d | %.1f | %.1f | %.1f | %.2f |" % (n, c, f, l, p,
                                                        p / l))


if __name__ == "__main__":
    main(*sys.argv[1:3])
