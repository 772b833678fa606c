#!/usr/bin/env python3
"""The PyTorch twin of laer-fsep-layer-bench on one process.

One MoE layer as a PyTorch user writes it (the sparse MoE block of HF's
Mixtral: a linear gate, softmax, top-k renormalised, a loop over the
experts, each a SwiGLU, the outputs scattered back weighted), the same
shapes and step as the laer bench: fresh random tokens each step, forward,
backward from a given output gradient to the input and every parameter,
AdamW on the gate and the experts.
Prints the median step time of the timed steps.

Usage: /usr/bin/python3 bench/pytorch/moe_layer_step.py [--tokens 512]
    [--hidden 256] [--ffn 896] [--experts 8] [--topk 2] [--steps 10]
    [--warmup 2] [--threads 1]
"""

import argparse
import statistics
import time

import torch


class Expert(torch.nn.Module):
    """A SwiGLU expert as HF's MixtralBlockSparseTop2MLP."""

    def __init__(self, hidden, ffn):
        super().__init__()
        self.w1 = torch.nn.Linear(hidden, ffn, bias=False)
        self.w3 = torch.nn.Linear(hidden, ffn, bias=False)
        self.w2 = torch.nn.Linear(ffn, hidden, bias=False)

    def forward(self, x):
        return self.w2(torch.nn.functional.silu(self.w1(x)) * self.w3(x))


class SparseMoE(torch.nn.Module):
    """HF's MixtralSparseMoeBlock: softmax, top-k renormalised, a loop over
    the experts, outputs added back weighted."""

    def __init__(self, hidden, ffn, experts, topk):
        super().__init__()
        self.topk = topk
        self.gate = torch.nn.Linear(hidden, experts, bias=False)
        self.experts = torch.nn.ModuleList(Expert(hidden, ffn) for _ in range(experts))

    def forward(self, x):
        probs = torch.softmax(self.gate(x), dim=-1)
        weights, chosen = torch.topk(probs, self.topk, dim=-1)
        weights = weights / weights.sum(dim=-1, keepdim=True)
        out = torch.zeros_like(x)
        for e, expert in enumerate(self.experts):
            token, choice = torch.where(chosen == e)
            if token.numel() == 0:
                continue
            ye = expert(x[token]) * weights[token, choice].unsqueeze(1)
            out.index_add_(0, token, ye)
        return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=512)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--ffn", type=int, default=896)
    parser.add_argument("--experts", type=int, default=8)
    parser.add_argument("--topk", type=int, default=2)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    for name in ("tokens", "hidden", "ffn", "experts", "topk", "steps", "threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if args.warmup < 0 or args.topk > args.experts:
        parser.error("--warmup must be >= 0 and --topk <= --experts")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    layer = SparseMoE(args.hidden, args.ffn, args.experts, args.topk)
    # The per-tensor AdamW (PyTorch's CPU default; its foreach variant was
    # slower here, 36 vs 10 ms a step).
    optimizer = torch.optim.AdamW(layer.parameters(), lr=1e-3, weight_decay=0.0)
    generator = torch.Generator().manual_seed(1)
    seconds = []
    for step in range(args.warmup + args.steps):
        x = torch.rand(args.tokens, args.hidden, generator=generator) * 2 - 1
        x[:, 0] = 1.0
        # Inside a model the layer's input gradient is needed (laer computes
        # it): without it PyTorch would skip two of the experts' GEMMs.
        x.requires_grad_(True)
        d_out = (torch.rand(args.tokens, args.hidden, generator=generator) * 2 - 1) * 1e-3
        start = time.perf_counter()
        optimizer.zero_grad()
        layer(x).backward(d_out)
        optimizer.step()
        if step >= args.warmup:
            seconds.append(time.perf_counter() - start)
    print(f"pytorch {torch.__version__} threads={args.threads} tokens={args.tokens} "
          f"H={args.hidden} F={args.ffn} E={args.experts} k={args.topk}")
    print(f"step {1e3 * statistics.median(seconds):8.2f}  (median wall time of a whole step, ms)")


if __name__ == "__main__":
    main()
