#!/usr/bin/env python3
"""laer.torch.MoE against the plain PyTorch MoE layer, in one run.

Under mpirun -np R (one BLAS thread per process): each rank routes its own
fresh random tokens through one MoE layer, forward, backward from a given
output gradient, then torch.optim.AdamW, alternating between
- laer.torch.MoE: laer's FSEP layer over the R ranks (every expert's
  weights, gradients and AdamW state sharded 1/R, laer+ re-planning every
  step), and
- the plain PyTorch layer users write (HF Mixtral's sparse block,
  bench/pytorch/moe_layer_step.py's SparseMoE), data-parallel as
  DistributedDataParallel runs it: every rank holds every expert, the
  gradients are averaged over the ranks (mpi4py all-reduce, one bucket).
Prints the median over the timed steps of the slowest rank's step time for
each, and the ratio.

Usage: mpirun -np R python3 bench/pytorch/torch_moe_step.py [--tokens 512]
    [--hidden 256] [--ffn 896] [--experts 8] [--topk 2] [--steps 10]
    [--warmup 2]   (PYTHONPATH holding the built laer package)
"""

import argparse
import os
import statistics
import sys
import time

import numpy as np
import torch
from mpi4py import MPI

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from moe_layer_step import (SparseMoE, add_layer_arguments,  # noqa: E402
                            check_layer_arguments)

import laer.torch  # noqa: E402


def averaged(module, comm):
    """DDP's gradient all-reduce, as one flat bucket."""
    grads = [p.grad for p in module.parameters()]
    flat = torch.cat([g.reshape(-1) for g in grads]).numpy()
    comm.Allreduce(MPI.IN_PLACE, flat, op=MPI.SUM)
    flat /= comm.Get_size()
    offset = 0
    for g in grads:
        g.copy_(torch.from_numpy(flat[offset:offset + g.numel()])
                .reshape(g.shape))
        offset += g.numel()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_layer_arguments(parser)
    args = parser.parse_args()
    check_layer_arguments(parser, args)
    torch.set_num_threads(1)
    comm = MPI.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()

    ours = laer.torch.MoE(args.hidden, args.ffn, args.experts, args.topk)
    plain = SparseMoE(args.hidden, args.ffn, args.experts, args.topk)
    opt_ours = torch.optim.AdamW(ours.parameters(), lr=1e-3)
    opt_plain = torch.optim.AdamW(plain.parameters(), lr=1e-3)
    data = torch.Generator().manual_seed(rank)

    def step(module, opt, x, d_out, reduce):
        comm.Barrier()
        start = time.perf_counter()
        opt.zero_grad()
        module(x).backward(d_out)
        if reduce:
            averaged(module, comm)
        opt.step()
        elapsed = time.perf_counter() - start
        return comm.allreduce(elapsed, op=MPI.MAX)

    times = {"laer": [], "plain": []}
    for i in range(args.warmup + args.steps):
        x = torch.randn(args.tokens, args.hidden, generator=data)
        d_out = torch.randn(args.tokens, args.hidden, generator=data)
        for name, module, opt, reduce in (("laer", ours, opt_ours, False),
                                          ("plain", plain, opt_plain,
                                           size > 1)):
            t = step(module, opt, x, d_out, reduce)
            if i >= args.warmup:
                times[name].append(t)
    if rank == 0:
        laer_ms = 1e3 * statistics.median(times["laer"])
        plain_ms = 1e3 * statistics.median(times["plain"])
        print(f"ranks {size} laer.torch.MoE {laer_ms:.1f} ms plain "
              f"{plain_ms:.1f} ms laer speed-up {plain_ms / laer_ms:.2f}x")


if __name__ == "__main__":
    main()
