"""laer.torch.MoE inside a PyTorch model trains like a plain PyTorch MoE.

Run on N ranks: mpirun -np N python3 torch_moe.py (PYTHONPATH holding the
built laer package). A small Mixtral-style language model (embedding, two
pre-norm MoE blocks, head) is built twice from the same weights: once with
laer.torch.MoE layers (FSEP over the N ranks, laer+ re-planning every
step), once with a plain PyTorch MoE written here after HF Mixtral's
sparse block (softmax router, top-k renormalised, SwiGLU experts). Each
rank trains on its own batches; the dense gradients of both models are
averaged over the ranks with mpi4py, as DistributedDataParallel would.
Three AdamW steps: every rank's loss and every gradient (the experts'
gathered from their shards) agree within 1e-5 relative; then the same with
the layers' load-balancing and z losses in the training loss. Then bad inputs
are clear Python errors, and importing laer.torch did not load the
compiler (LLVM).
"""

import sys

import numpy as np
import torch
import torch.nn.functional as F
from mpi4py import MPI

import laer.torch

H, FFN, E, K, V, S, BATCH, LAYERS, STEPS = 32, 48, 8, 2, 64, 16, 3, 2, 3
TOLERANCE = 1e-5

comm = MPI.COMM_WORLD
rank, size = comm.Get_rank(), comm.Get_size()


def fail(message):
    print(f"torch_moe (rank {rank} of {size}): FAIL: {message}", flush=True)
    comm.Abort(1)


class PlainMoE(torch.nn.Module):
    """HF Mixtral's sparse MoE block, per expert, in plain PyTorch."""

    def __init__(self):
        super().__init__()
        self.gate = torch.nn.Linear(H, E, bias=False)
        self.w1 = torch.nn.Parameter(torch.zeros(E, FFN, H))
        self.w3 = torch.nn.Parameter(torch.zeros(E, FFN, H))
        self.w2 = torch.nn.Parameter(torch.zeros(E, H, FFN))

    def forward(self, x):
        rows = x.reshape(-1, H)
        logits = self.gate(rows)
        probs = F.softmax(logits, dim=-1)
        weights, chosen = torch.topk(probs, K, dim=-1)
        # The Switch/Mixtral load-balancing loss E / k * sum_e f_e P_e (f_e:
        # the share of (token, choice) pairs on e) and the router z-loss.
        share = F.one_hot(chosen, E).sum((0, 1)).float() / rows.shape[0]
        self.aux_loss = E / K * (share * probs.mean(0)).sum()
        self.z_loss = (torch.logsumexp(logits, -1) ** 2).mean()
        weights = weights / weights.sum(dim=-1, keepdim=True)
        out = torch.zeros_like(rows)
        for e in range(E):
            token, slot = torch.where(chosen == e)
            if token.numel() == 0:
                continue
            h = rows[token]
            y = (F.silu(h @ self.w1[e].T) * (h @ self.w3[e].T)) @ self.w2[e].T
            out.index_add_(0, token, y * weights[token, slot, None])
        return out.reshape(x.shape)


class RMSNorm(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(H))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * \
            self.weight


class Model(torch.nn.Module):
    def __init__(self, moe_layers):
        super().__init__()
        self.embed = torch.nn.Embedding(V, H)
        self.norms = torch.nn.ModuleList(RMSNorm() for _ in range(LAYERS))
        self.moe = torch.nn.ModuleList(moe_layers)
        self.final = RMSNorm()
        self.head = torch.nn.Linear(H, V, bias=False)

    def forward(self, ids):
        x = self.embed(ids)
        for norm, moe in zip(self.norms, self.moe):
            x = x + moe(norm(x))
        return self.head(self.final(x))


def dense_parameters(model):
    return [(name, p) for name, p in model.named_parameters()
            if not name.startswith("moe.")]


def average(grad):
    """The mean of `grad` over the ranks (what DDP's all-reduce gives)."""
    buffer = grad.detach().numpy().copy()
    comm.Allreduce(MPI.IN_PLACE, buffer, op=MPI.SUM)
    grad.copy_(torch.from_numpy(buffer / size))


def experts_from_shards(shards):
    """(w1, w3, w2) in nn.Linear layout from every rank's E shards (this
    rank's expert_shards or their gradients), gathered."""
    parts = comm.allgather(torch.stack(list(shards)).detach().numpy())
    full = torch.from_numpy(np.concatenate(parts, axis=1)[:, :3 * H * FFN])
    w1 = full[:, :H * FFN].reshape(E, H, FFN).transpose(1, 2)
    w3 = full[:, H * FFN:2 * H * FFN].reshape(E, H, FFN).transpose(1, 2)
    w2 = full[:, 2 * H * FFN:].reshape(E, FFN, H).transpose(1, 2)
    return w1, w3, w2


def relative_error(got, want):
    got, want = got.detach().double(), want.detach().double()
    return float((got - want).norm() / max(float(want.norm()), 1e-30))


def main(with_losses):
    """`with_losses`: the layers' aux and z losses enter the training
    loss."""
    torch.manual_seed(1234)
    router_losses = dict(aux_loss="micro", z_loss=True) if with_losses else {}
    laer_layers = [laer.torch.MoE(H, FFN, E, K, seed=7 + l, layer_index=l,
                                  **router_losses)
                   for l in range(LAYERS)]
    ours = Model(laer_layers)
    plain = Model([PlainMoE() for _ in range(LAYERS)])
    with torch.no_grad():
        for (name, mine), (_, theirs) in zip(dense_parameters(ours),
                                             dense_parameters(plain)):
            theirs.copy_(mine)
        for layer, ref in zip(laer_layers, plain.moe):
            w1, w3, w2 = layer.full_experts()
            ref.w1.copy_(w1)
            ref.w3.copy_(w3)
            ref.w2.copy_(w2)
            ref.gate.weight.copy_(layer.gate.T)
    if "laer._laer" in sys.modules:
        fail("import laer.torch loaded the compiler extension (LLVM)")

    # eps 1e-5 rather than 1e-8: AdamW's g / (|g| + eps) turns last-bit
    # differences of near-zero gradients into weight differences the next
    # steps' gradients carry (1e-5 of w3's gradient at step 2 on 4 ranks
    # with the router losses at eps 1e-8; 4e-7 at 1e-5).
    opt_ours = torch.optim.AdamW(ours.parameters(), lr=1e-2, eps=1e-5)
    opt_plain = torch.optim.AdamW(plain.parameters(), lr=1e-2, eps=1e-5)
    data = torch.Generator().manual_seed(100 + rank)
    worst = 0.0
    for step in range(STEPS):
        ids = torch.randint(0, V, (BATCH, S + 1), generator=data)
        # Ranks differ in their token counts too (T is per rank).
        if rank % 2 == 1:
            ids = ids[:-1]
        losses = []
        for model, opt in ((ours, opt_ours), (plain, opt_plain)):
            opt.zero_grad()
            logits = model(ids[:, :-1])
            loss = F.cross_entropy(logits.reshape(-1, V),
                                   ids[:, 1:].reshape(-1))
            if with_losses:
                loss = loss + sum(0.01 * m.aux_loss + 0.001 * m.z_loss
                                  for m in model.moe)
            loss.backward()
            for _, p in dense_parameters(model):
                average(p.grad)
            losses.append(loss.item())
        if abs(losses[0] - losses[1]) > TOLERANCE * abs(losses[1]):
            fail(f"step {step}: loss {losses[0]} vs plain {losses[1]}")
        for (name, mine), (_, theirs) in zip(dense_parameters(ours),
                                             dense_parameters(plain)):
            error = relative_error(mine.grad, theirs.grad)
            worst = max(worst, error)
            if error > TOLERANCE:
                fail(f"step {step}: gradient of {name}: {error:.2e}")
        for l, (layer, ref) in enumerate(zip(laer_layers, plain.moe)):
            for param in (ref.gate.weight, ref.w1, ref.w3, ref.w2):
                average(param.grad)
            # What the optimizer sees (this rank's shard gradients,
            # averaged), and the layer's own sums gathered by laer.
            seen = experts_from_shards(p.grad for p in layer.expert_shards)
            summed = layer.full_experts(grads=True)
            for name, g, total, want in zip(
                    ("w1", "w3", "w2"), seen, summed,
                    (ref.w1.grad, ref.w3.grad, ref.w2.grad)):
                error = max(relative_error(g, want),
                            relative_error(total / size, want))
                worst = max(worst, error)
                if error > TOLERANCE:
                    fail(f"step {step}: layer {l} {name} gradient: "
                         f"{error:.2e}")
            error = relative_error(layer.gate.grad.T, ref.gate.weight.grad)
            worst = max(worst, error)
            if error > TOLERANCE:
                fail(f"step {step}: layer {l} gate gradient: {error:.2e}")
        opt_ours.step()
        opt_plain.step()
    # The updated weights: the optimizer wrote the layer's own memory.
    for l, (layer, ref) in enumerate(zip(laer_layers, plain.moe)):
        for name, got, want in zip(("w1", "w3", "w2"), layer.full_experts(),
                                   (ref.w1, ref.w3, ref.w2)):
            error = relative_error(got, want)
            if error > TOLERANCE:
                fail(f"layer {l} {name} after {STEPS} steps: {error:.2e}")
    loads = laer_layers[0].last_loads()
    if sum(loads) != K * BATCH * S * size - K * S * (size // 2):
        fail(f"the last step routed {sum(loads)} tokens x k: {loads}")

    moe = laer_layers[0]
    bad = [
        (lambda: moe(torch.zeros(4, H, dtype=torch.float64)), ValueError,
         "float32"),
        (lambda: moe(torch.zeros(4, H + 1)), ValueError, f"[..., {H}]"),
        (lambda: moe(np.zeros((4, H), dtype=np.float32)), TypeError,
         "torch.Tensor"),
    ]
    # The layer keeps one step: the backward of an older forward is refused.
    x = torch.randn(4, H, requires_grad=True)
    first, second = moe(x), moe(x)
    bad.append((lambda: first.sum().backward(), RuntimeError,
                "one forward per backward"))
    for call, kind, words in bad:
        try:
            call()
            fail(f"no error for a bad input ({words})")
        except kind as error:
            if words not in str(error):
                fail(f"unclear error: {error}")
    return worst


if __name__ == "__main__":
    plain_worst = main(with_losses=False)
    losses_worst = main(with_losses=True)
    comm.Barrier()
    if rank == 0:
        print(f"torch_moe: PASS on {size} ranks, worst relative error "
              f"{plain_worst:.1e}, with the aux and z losses "
              f"{losses_worst:.1e}", flush=True)
