#!/usr/bin/env python3
"""The PyTorch twin of a compiled Mixtral-family laer model (the tiny LM).

The model as HF's modelling code writes it (MixtralForCausalLM: token
embedding, per layer RMSNorm, grouped-query causal attention with rotary
embedding, RMSNorm, the sparse MoE block with SwiGLU experts; final norm,
LM head), its module names those of the HF checkpoint, so it loads the
weights a laer binary exports (`--steps 0 --export-weights DIR`) as they
are. It trains on the same token file with laer's sequential data order
(global step s takes windows s * B .. s * B + B - 1 of L + 1 tokens; rank r
of P the r-th B / P of them) and the same AdamW (lr 3e-3 unless given,
betas 0.9 / 0.999, eps 1e-8, no weight decay): the same computation, so its
losses follow laer's (--losses writes them for a comparison).

With --processes P > 1 it is DistributedDataParallel over gloo, the way a
PyTorch user scales this model on CPU processes.

Usage: /usr/bin/python3 bench/pytorch/tiny_lm_step.py --config CONFIG.json
    --weights DIR --tokens FILE.u16 [--steps 20] [--batch 16]
    [--sequence 64] [--lr 0.003] [--warmup 2] [--processes 1]
    [--threads 1] [--losses FILE] [--port 29518]
"""

import argparse
import json
import math
import os
import statistics
import struct
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

# The MoE block of the layer twin (same directory): HF Mixtral's, with its
# module names.
from moe_layer_step import SparseMoE


class RMSNorm(torch.nn.Module):
    def __init__(self, hidden, eps):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(hidden))
        self.eps = eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class Attention(torch.nn.Module):
    def __init__(self, config, sequence):
        super().__init__()
        hidden = config["hidden_size"]
        self.heads = config["num_attention_heads"]
        self.kv_heads = config.get("num_key_value_heads") or self.heads
        self.head_dim = config.get("head_dim") or hidden // self.heads
        self.q_proj = torch.nn.Linear(hidden, self.heads * self.head_dim, bias=False)
        self.k_proj = torch.nn.Linear(hidden, self.kv_heads * self.head_dim, bias=False)
        self.v_proj = torch.nn.Linear(hidden, self.kv_heads * self.head_dim, bias=False)
        self.o_proj = torch.nn.Linear(self.heads * self.head_dim, hidden, bias=False)
        inv_freq = 1.0 / config["rope_theta"] ** (
            torch.arange(0, self.head_dim, 2, dtype=torch.float64) / self.head_dim)
        angles = torch.outer(torch.arange(sequence, dtype=torch.float64), inv_freq)
        angles = torch.cat([angles, angles], dim=-1)
        # Constants, not module state (DDP would broadcast buffers, and
        # gloo has no bool).
        self.cos, self.sin = angles.cos().float(), angles.sin().float()
        self.mask = torch.triu(torch.ones(sequence, sequence, dtype=torch.bool), 1)

    def rope(self, x):
        half = x.shape[-1] // 2
        return x * self.cos + torch.cat([-x[..., half:], x[..., :half]], dim=-1) * self.sin

    def forward(self, x):
        batch, sequence, _ = x.shape
        q = self.q_proj(x).view(batch, sequence, self.heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(batch, sequence, self.kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(batch, sequence, self.kv_heads, self.head_dim).transpose(1, 2)
        q, k = self.rope(q), self.rope(k)
        group = self.heads // self.kv_heads
        k = k.repeat_interleave(group, dim=1)
        v = v.repeat_interleave(group, dim=1)
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.head_dim)
        scores = scores.masked_fill(self.mask, float("-inf"))
        out = torch.softmax(scores, dim=-1) @ v
        return self.o_proj(out.transpose(1, 2).reshape(batch, sequence, -1))


class Layer(torch.nn.Module):
    def __init__(self, config, sequence):
        super().__init__()
        eps = config["rms_norm_eps"]
        self.input_layernorm = RMSNorm(config["hidden_size"], eps)
        self.self_attn = Attention(config, sequence)
        self.post_attention_layernorm = RMSNorm(config["hidden_size"], eps)
        self.block_sparse_moe = SparseMoE(
            config["hidden_size"], config["intermediate_size"],
            config["num_local_experts"], config["num_experts_per_tok"])

    def forward(self, x):
        x = x + self.self_attn(self.input_layernorm(x))
        moe_in = self.post_attention_layernorm(x)
        moe_out = self.block_sparse_moe(moe_in.reshape(-1, moe_in.shape[-1]))
        return x + moe_out.reshape(moe_in.shape)


class Decoder(torch.nn.Module):
    def __init__(self, config, sequence):
        super().__init__()
        self.embed_tokens = torch.nn.Embedding(config["vocab_size"], config["hidden_size"])
        self.layers = torch.nn.ModuleList(
            Layer(config, sequence) for _ in range(config["num_hidden_layers"]))
        self.norm = RMSNorm(config["hidden_size"], config["rms_norm_eps"])

    def forward(self, ids):
        x = self.embed_tokens(ids)
        for layer in self.layers:
            x = layer(x)
        return self.norm(x)


class CausalLM(torch.nn.Module):
    def __init__(self, config, sequence):
        super().__init__()
        self.model = Decoder(config, sequence)
        self.lm_head = torch.nn.Linear(config["hidden_size"], config["vocab_size"], bias=False)

    def forward(self, ids, targets):
        logits = self.lm_head(self.model(ids))
        return torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


def read_weights(folder):
    """name -> tensor of every F32 tensor in the safetensors files of `folder`."""
    tensors = {}
    for file in sorted(os.listdir(folder)):
        if not file.endswith(".safetensors"):
            continue
        blob = open(os.path.join(folder, file), "rb").read()
        length = struct.unpack("<Q", blob[:8])[0]
        header = json.loads(blob[8:8 + length])
        for name, entry in header.items():
            if name == "__metadata__":
                continue
            if entry["dtype"] != "F32":
                raise SystemExit(f"{file}: tensor {name} is {entry['dtype']}, expected F32")
            begin, end = entry["data_offsets"]
            data = bytearray(blob[8 + length + begin:8 + length + end])
            tensors[name] = torch.frombuffer(data, dtype=torch.float32).reshape(entry["shape"])
    return tensors


def batch_of(tokens, step, batch, sequence, rank, processes):
    """laer's sequential order (TextData::batch): ids and targets of this
    rank's share of global step `step`."""
    windows = len(tokens) // (sequence + 1)
    local = batch // processes
    starts = [((step * batch + rank * local + w) % windows) * (sequence + 1)
              for w in range(local)]
    rows = torch.stack([tokens[s:s + sequence + 1] for s in starts])
    return rows[:, :-1], rows[:, 1:]


def run(rank, args, config):
    torch.set_num_threads(args.threads)
    distributed = args.processes > 1
    if distributed:
        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{args.port}",
                                rank=rank, world_size=args.processes)
    model = CausalLM(config, args.sequence)
    missing, unexpected = model.load_state_dict(read_weights(args.weights), strict=False)
    if missing or unexpected:
        raise SystemExit(f"{args.weights}: missing {missing}, unexpected {unexpected}")
    # An expert that no token of a rank chose has no gradient there that
    # step: DDP must look for unused parameters (without it such a step
    # hangs in the reduction, as it did on the stdlib text at 4 processes).
    trained = torch.nn.parallel.DistributedDataParallel(
        model, find_unused_parameters=True) if distributed else model
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.999),
                                  eps=1e-8, weight_decay=0.0)
    raw = open(args.tokens, "rb").read()
    tokens = torch.tensor(struct.unpack(f"<{len(raw) // 2}H", raw[:len(raw) // 2 * 2]),
                          dtype=torch.long)
    seconds, losses = [], []
    for step in range(args.warmup + args.steps):
        ids, targets = batch_of(tokens, step, args.batch, args.sequence, rank,
                                args.processes)
        if distributed:
            dist.barrier()
        start = time.perf_counter()
        optimizer.zero_grad()
        loss = trained(ids, targets)
        loss.backward()
        optimizer.step()
        if distributed:
            dist.barrier()
        if step >= args.warmup:
            seconds.append(time.perf_counter() - start)
        mean = loss.detach().clone()
        if distributed:
            dist.all_reduce(mean)
            mean /= args.processes
        losses.append(mean.item())
    if rank == 0:
        median = statistics.median(seconds)
        print(f"pytorch {torch.__version__} processes={args.processes} "
              f"threads={args.threads} batch={args.batch} x {args.sequence}")
        print(f"loss first {losses[0]:.4f} last {losses[-1]:.4f}")
        print(f"step {1e3 * median:8.2f}  (median wall time, ms; "
              f"{args.batch * args.sequence / median:.0f} tokens/s)")
        if args.losses:
            with open(args.losses, "w") as f:
                json.dump(losses, f)
    if distributed:
        dist.destroy_process_group()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--weights", required=True)
    parser.add_argument("--tokens", required=True)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--sequence", type=int, default=64)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--losses")
    parser.add_argument("--port", type=int, default=29518)
    args = parser.parse_args()
    for name in ("steps", "batch", "sequence", "processes", "threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if args.warmup < 0 or args.batch % args.processes:
        parser.error("--warmup must be >= 0 and --batch a multiple of --processes")
    if not args.tokens.endswith(".u16"):
        parser.error("--tokens must be little-endian uint16 ids (FILE.u16)")
    with open(args.config) as f:
        config = json.load(f)
    if config.get("model_type") != "mixtral":
        parser.error(f"{args.config}: model_type {config.get('model_type')!r}, "
                     "this twin is Mixtral's")
    if args.processes == 1:
        run(0, args, config)
    else:
        mp.spawn(run, args=(args, config), nprocs=args.processes)


if __name__ == "__main__":
    main()
