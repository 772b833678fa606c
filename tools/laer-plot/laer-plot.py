#!/usr/bin/env python3
"""laer-plot: pictures of a training run from its --metrics file.

    laer-plot METRICS.jsonl [-o DIR]

Reads the JSON lines a training binary (or laer-train) writes with
--metrics FILE and draws, into DIR (default: beside the file):
  loss.png          the loss per step (and the held-out loss, if any)
  grad-norm.png     the gradients' global norm per step (when recorded)
  throughput.png    tokens/s and step time per step
  balance.png       each MoE layer's max/mean rank load per step
  expert-loads-layer<L>.png
                    per MoE layer, each expert's share of the tokens over
                    the steps that recorded them (--metrics-loads-every)
and prints the files it wrote. A line that is not a metrics record is an
error naming its number.
"""
import argparse
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402


def read_metrics(path):
    records = []
    with open(path) as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError as error:
                sys.exit("laer-plot: %s:%d: not JSON: %s" % (path, number, error))
            for field in ("step", "loss", "tokens_per_s", "max_over_mean"):
                if field not in record:
                    sys.exit("laer-plot: %s:%d: no '%s' (a --metrics line has "
                             "step, loss, tokens_per_s, max_over_mean)"
                             % (path, number, field))
            records.append(record)
    if not records:
        sys.exit("laer-plot: %s: no records" % path)
    return records


def save(figure, directory, name, written):
    path = os.path.join(directory, name)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    written.append(path)


def main():
    parser = argparse.ArgumentParser(
        prog="laer-plot", description="Pictures of a training run's metrics.")
    parser.add_argument("metrics", help="the --metrics JSON-lines file")
    parser.add_argument("-o", "--out", help="output folder (default: the "
                        "metrics file's folder)")
    args = parser.parse_args()
    records = read_metrics(args.metrics)
    out = args.out or os.path.dirname(os.path.abspath(args.metrics))
    os.makedirs(out, exist_ok=True)
    steps = [r["step"] for r in records]
    written = []

    def values(field):
        # null (a skipped step's non-finite value) draws as a gap.
        return [float("nan") if r.get(field) is None else r[field]
                for r in records]

    figure, axes = plt.subplots(figsize=(6, 4))
    axes.plot(steps, values("loss"), label="training")
    held_out = [r for r in records if r.get("eval_loss") is not None]
    if held_out:
        axes.plot([r["step"] for r in held_out],
                  [r["eval_loss"] for r in held_out], "o-", label="held out")
        axes.legend()
    axes.set_xlabel("step")
    axes.set_ylabel("loss")
    axes.set_title("loss")
    save(figure, out, "loss.png", written)

    if any("grad_norm" in r for r in records):
        figure, axes = plt.subplots(figsize=(6, 4))
        axes.plot(steps, values("grad_norm"))
        axes.set_xlabel("step")
        axes.set_ylabel("global L2 norm")
        axes.set_yscale("log")
        axes.set_title("gradient norm (before clipping)")
        save(figure, out, "grad-norm.png", written)

    figure, axes = plt.subplots(figsize=(6, 4))
    axes.plot(steps, [r["tokens_per_s"] for r in records], label="tokens/s")
    axes.set_xlabel("step")
    axes.set_ylabel("tokens/s")
    if all("step_ms" in r for r in records):
        twin = axes.twinx()
        twin.plot(steps, [r["step_ms"] for r in records], color="tab:orange",
                  label="step ms")
        twin.set_ylabel("step time (ms)")
    axes.set_title("throughput")
    save(figure, out, "throughput.png", written)

    layers = max(len(r["max_over_mean"]) for r in records)
    figure, axes = plt.subplots(figsize=(6, 4))
    for layer in range(layers):
        axes.plot([r["step"] for r in records if len(r["max_over_mean"]) > layer],
                  [r["max_over_mean"][layer] for r in records
                   if len(r["max_over_mean"]) > layer],
                  label="layer %d" % layer)
    axes.axhline(1.0, color="grey", linewidth=0.5)
    axes.set_xlabel("step")
    axes.set_ylabel("max/mean rank load")
    axes.set_title("load balance per MoE layer")
    if layers <= 12:
        axes.legend(fontsize="small")
    save(figure, out, "balance.png", written)

    loads = [r for r in records if r.get("expert_loads")]
    for layer in range(layers):
        rows = [(r["step"], r["expert_loads"][layer]) for r in loads
                if len(r["expert_loads"]) > layer and r["expert_loads"][layer]]
        if not rows:
            continue
        shares = []
        for _, counts in rows:
            total = float(sum(counts)) or 1.0
            shares.append([c / total for c in counts])
        figure, axes = plt.subplots(figsize=(7, 4))
        image = axes.imshow(list(map(list, zip(*shares))), aspect="auto",
                            origin="lower", interpolation="nearest",
                            extent=(rows[0][0] - 0.5, rows[-1][0] + 0.5,
                                    -0.5, len(shares[0]) - 0.5))
        figure.colorbar(image, ax=axes, label="share of the layer's tokens")
        axes.set_xlabel("step")
        axes.set_ylabel("expert")
        axes.set_title("MoE layer %d: tokens per expert" % layer)
        save(figure, out, "expert-loads-layer%d.png" % layer, written)

    for path in written:
        print(path)


if __name__ == "__main__":
    main()
