#!/usr/bin/env python3
"""The PyTorch twin of laer-fsep-layer-bench.

One MoE layer as a PyTorch user writes it (the sparse MoE block of HF's
Mixtral: a linear gate, softmax, top-k renormalised, a loop over the
experts, each a SwiGLU, the outputs scattered back weighted), the same
shapes and step as the laer bench: fresh random tokens each step (per
process), forward, backward from a given output gradient to the input and
every parameter, AdamW on the gate and the experts.

With --processes P > 1, expert parallelism as users build it on CPU: P
processes (gloo), each owning E / P experts and routing its own tokens;
(token, choice) rows go to their expert's owner and back through
all_to_all_single (torch.distributed.nn, so autograd carries the gradients
back the same way), the replicated gate's gradient is all-reduced.

Prints the median step time of the timed steps (the slowest process's).

Usage: /usr/bin/python3 bench/pytorch/moe_layer_step.py [--processes 1]
    [--tokens 512] [--hidden 256] [--ffn 896] [--experts 8] [--topk 2]
    [--steps 10] [--warmup 2] [--threads 1] [--port 29517]
"""

import argparse
import resource
import statistics
import time

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_nn
import torch.multiprocessing as mp


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


class ExpertParallelMoE(torch.nn.Module):
    """SparseMoE with the experts spread over the processes of the default
    group: this process owns experts [rank * E/P, (rank + 1) * E/P)."""

    def __init__(self, hidden, ffn, experts, topk, rank, processes):
        super().__init__()
        self.topk, self.experts_total = topk, experts
        self.per_rank, self.rank, self.processes = experts // processes, rank, processes
        torch.manual_seed(0)  # the same gate everywhere
        self.gate = torch.nn.Linear(hidden, experts, bias=False)
        torch.manual_seed(1 + rank)
        self.experts = torch.nn.ModuleList(Expert(hidden, ffn) for _ in range(self.per_rank))

    def forward(self, x):
        probs = torch.softmax(self.gate(x), dim=-1)
        weights, chosen = torch.topk(probs, self.topk, dim=-1)
        weights = weights / weights.sum(dim=-1, keepdim=True)
        # (token, choice) rows ordered by their expert, hence by its owner.
        flat = chosen.reshape(-1)
        order = torch.argsort(flat, stable=True)
        token = order // self.topk
        expert = flat[order]
        send_counts = torch.bincount(expert // self.per_rank, minlength=self.processes)
        recv_counts = torch.empty_like(send_counts)
        dist.all_to_all_single(recv_counts, send_counts)
        send_splits, recv_splits = send_counts.tolist(), recv_counts.tolist()
        rows = sum(recv_splits)
        recv_expert = torch.empty(rows, dtype=expert.dtype)
        dist.all_to_all_single(recv_expert, expert, recv_splits, send_splits)
        received = dist_nn.all_to_all_single(
            torch.empty(rows, x.shape[1]), x[token], recv_splits, send_splits)
        computed = torch.zeros_like(received)
        for local, module in enumerate(self.experts):
            (index,) = torch.where(recv_expert == self.rank * self.per_rank + local)
            if index.numel():
                computed = computed.index_add(0, index, module(received[index]))
        returned = dist_nn.all_to_all_single(
            torch.empty(len(token), x.shape[1]), computed, send_splits, recv_splits)
        weight = weights.reshape(-1)[order].unsqueeze(1)
        return torch.zeros_like(x).index_add(0, token, returned * weight)


def run(rank, args):
    torch.set_num_threads(args.threads)
    distributed = args.processes > 1
    if distributed:
        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{args.port}",
                                rank=rank, world_size=args.processes)
        layer = ExpertParallelMoE(args.hidden, args.ffn, args.experts, args.topk,
                                  rank, args.processes)
    else:
        torch.manual_seed(0)
        layer = SparseMoE(args.hidden, args.ffn, args.experts, args.topk)
    # The per-tensor AdamW (PyTorch's CPU default; its foreach variant was
    # slower here, 36 vs 10 ms a step).
    optimizer = torch.optim.AdamW(layer.parameters(), lr=1e-3, weight_decay=0.0)
    generator = torch.Generator().manual_seed(1000 + rank)
    seconds = []
    for step in range(args.warmup + args.steps):
        x = torch.rand(args.tokens, args.hidden, generator=generator) * 2 - 1
        x[:, 0] = 1.0
        # Inside a model the layer's input gradient is needed (laer computes
        # it): without it PyTorch would skip two of the experts' GEMMs.
        x.requires_grad_(True)
        d_out = (torch.rand(args.tokens, args.hidden, generator=generator) * 2 - 1) * 1e-3
        if distributed:
            dist.barrier()
        start = time.perf_counter()
        optimizer.zero_grad()
        layer(x).backward(d_out)
        if distributed:
            dist.all_reduce(layer.gate.weight.grad)
        optimizer.step()
        if distributed:
            dist.barrier()
        if step >= args.warmup:
            seconds.append(time.perf_counter() - start)
    # Peak resident memory (KiB on Linux), the largest process's.
    peak = torch.tensor([float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)])
    if distributed:
        dist.all_reduce(peak, op=dist.ReduceOp.MAX)
    if rank == 0:
        print(f"pytorch {torch.__version__} processes={args.processes} "
              f"threads={args.threads} tokens={args.tokens} H={args.hidden} "
              f"F={args.ffn} E={args.experts} k={args.topk}")
        print(f"step {1e3 * statistics.median(seconds):8.2f}  "
              "(median wall time of a whole step, ms)")
        print(f"peak memory per process: {peak.item() / 1024:.1f} MiB")
    if distributed:
        dist.destroy_process_group()


def add_layer_arguments(parser):
    """The layer's shape and the step counts, shared with the benches that
    time this layer beside laer's."""
    parser.add_argument("--tokens", type=int, default=512)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--ffn", type=int, default=896)
    parser.add_argument("--experts", type=int, default=8)
    parser.add_argument("--topk", type=int, default=2)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)


def check_layer_arguments(parser, args):
    for name in ("tokens", "hidden", "ffn", "experts", "topk", "steps"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if args.warmup < 0 or args.topk > args.experts:
        parser.error("--warmup must be >= 0 and --topk <= --experts")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=1)
    add_layer_arguments(parser)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--port", type=int, default=29517)
    args = parser.parse_args()
    check_layer_arguments(parser, args)
    for name in ("processes", "threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if args.experts % args.processes:
        parser.error("--experts must be a multiple of --processes")
    if not 1024 <= args.port <= 65535:
        parser.error("--port must be in [1024, 65535]")
    if args.processes == 1:
        run(0, args)
    else:
        mp.spawn(run, args=(args,), nprocs=args.processes)


if __name__ == "__main__":
    main()
