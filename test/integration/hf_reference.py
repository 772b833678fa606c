#!/usr/bin/env python3
"""A HF-format model trains in laer exactly as PyTorch computes it.

For one family's tiny config (Mixtral, Qwen2-MoE, Qwen3-MoE, OLMoE,
DeepSeek-V2, DeepSeek-V3):
  1. random weights under the family's HF tensor names (the names and
     shapes laer-import gives the parameters, one tensor per expert), in
     nn.Linear's [out, in] layout, written as two safetensors shards with
     model.safetensors.index.json;
  2. laer-import + laer-compile; the binary loads the shards
     (--load-weights), takes one step on a fixed batch (--data-order
     sequential) and exports the step's gradients by the same names;
  3. a plain PyTorch implementation of the family's forward pass, written
     here after the family's HF modelling code (RMSNorm, rotary embedding
     with rotate_half, grouped-query causal attention with q/k/v biases and
     QK-norm, softmax top-k routing with or without renormalisation, SwiGLU
     experts, Qwen's sigmoid-gated shared expert, dense MLP layers, HF's
     load-balancing loss and OLMoE's z-loss; DeepSeek's multi-head latent
     attention with its interleaved YaRN rotation, softmax or sigmoid
     scores with group-limited top-k, routed_scaling_factor and the
     selection-only e_score_correction_bias) gives the loss and every
     gradient by autograd: laer's equal them within 1e-5 relative (max
     error over the tensor's largest value), on 1 rank and on 4 ranks with
     the laer+ planner re-planning, and as the FSEP program compiled op by
     op (laer-compile --ranks 2 --chunks 2) on 2 ranks;
  4. weights round-trip bit-exactly: BF16 shards loaded on 1, 2 and 4 ranks
     and exported again as BF16 (--steps 0) equal the originals byte for
     byte; F32 exports from 1, 2 and 4 ranks are identical;
  5. a truncated shard and a tensor of the wrong shape are refused with
     errors naming the file and the tensor.
Usage: hf_reference.py SCRATCH LAER_IMPORT LAER_COMPILE CONFIG
           [--set FIELD=JSON]... [--import-option OPT]... MPIRUN...
"""
import json
import math
import os
import re
import shutil
import struct
import subprocess
import sys

import torch

from train_runs import as_tensor, model_options, read_safetensors

torch.manual_seed(0)
scratch, importer, compiler, config_path = sys.argv[1:5]
fields, import_options, rest = model_options(sys.argv[5:])
mpirun = rest + ["--timeout", "300"]
os.makedirs(scratch, exist_ok=True)
with open(config_path) as f:
    config = json.load(f)
config.update(fields)
with open(os.path.join(scratch, "config.json"), "w") as f:
    json.dump(config, f)
family = config["model_type"]
SEQ, BATCH = 16, 4


def run(command, expect_failure=False):
    result = subprocess.run(command, capture_output=True, text=True,
                            timeout=600)
    if (result.returncode != 0) != expect_failure:
        sys.exit("hf_reference: %s %s:\n%s%s" % (
            " ".join(command), "succeeded" if expect_failure else "failed",
            result.stdout, result.stderr))
    return result.stdout + result.stderr


# --- the model IR and its parameters' names -------------------------------
model_ir = os.path.join(scratch, "model.mlir")
run([importer, os.path.join(scratch, "config.json"), "--seq-len", str(SEQ),
     "-o", model_ir] + import_options)
parameters = []  # (name, file shape, per-expert count or 0)
pattern = re.compile(r'%\w+: tensor<([0-9x]+)xf32> \{moe.parameter = '
                     r'#moe.parameter<"([^"]+)"(, transposed)?>\}')
for shape_text, name, transposed in pattern.findall(open(model_ir).read()):
    shape = [int(d) for d in shape_text.split("x")]
    experts = 0
    if len(shape) == 3:
        experts, shape = shape[0], shape[1:]
    if transposed:
        shape = shape[::-1]
    parameters.append((name, shape, experts))
assert parameters, "laer-import named no parameter"

weights = {}
for name, shape, experts in parameters:
    names = [name.replace("*", str(e)) for e in range(experts)] if experts \
        else [name]
    for n in names:
        if n.endswith("norm.weight") or "layernorm" in n:
            weights[n] = 1.0 + 0.2 * torch.randn(shape)
        elif n.endswith(".bias"):
            weights[n] = 0.1 * torch.randn(shape)
        elif n.endswith("e_score_correction_bias"):
            weights[n] = 0.05 * torch.randn(shape)
        else:
            weights[n] = torch.randn(shape) / math.sqrt(shape[-1])


def write_safetensors(path, tensors, dtype):
    header, blobs, offset = {"__metadata__": {"format": "pt"}}, [], 0
    for name, t in tensors.items():
        if dtype == "BF16":
            data = t.to(torch.bfloat16).view(torch.int16).numpy().tobytes()
        else:
            data = t.to(torch.float32).numpy().tobytes()
        header[name] = {"dtype": dtype, "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def write_checkpoint(folder, dtype, tensors):
    os.makedirs(folder, exist_ok=True)
    names = list(tensors)
    halves = [names[: len(names) // 2], names[len(names) // 2:]]
    weight_map = {}
    for i, part in enumerate(halves):
        file = "model-%05d-of-00002.safetensors" % (i + 1)
        write_safetensors(os.path.join(folder, file),
                          {n: tensors[n] for n in part}, dtype)
        weight_map.update({n: file for n in part})
    with open(os.path.join(folder, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {}, "weight_map": weight_map}, f)


f32_dir = os.path.join(scratch, "hf-f32")
write_checkpoint(f32_dir, "F32", weights)
binary = os.path.join(scratch, "train")
run([compiler, model_ir, "-o", binary])

# The batch: BATCH windows of SEQ + 1 tokens, one after the other.
vocab = config["vocab_size"]
tokens = torch.randint(0, vocab, (BATCH, SEQ + 1), dtype=torch.int32)
token_file = os.path.join(scratch, "tokens.u32")
tokens.numpy().astype("<u4").tofile(token_file)


# --- the PyTorch reference -------------------------------------------------
def reference():
    w = {n: t.clone().requires_grad_(True) for n, t in weights.items()}
    eps = config["rms_norm_eps"]
    heads = config["num_attention_heads"]
    kv_heads = config.get("num_key_value_heads") or heads
    hidden = config["hidden_size"]
    head_dim = config.get("head_dim") or hidden // heads
    theta = config["rope_theta"]
    deepseek = family.startswith("deepseek")
    renormalize = family == "mixtral" or config.get("norm_topk_prob", False)
    top_k = config["num_experts_per_tok"]

    def rms_norm(x, weight):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight

    inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2,
                                            dtype=torch.float64) / head_dim)
    angles = torch.outer(torch.arange(SEQ, dtype=torch.float64), inv_freq)
    angles = torch.cat([angles, angles], dim=-1)
    cos, sin = angles.cos().float(), angles.sin().float()

    def rope(x):  # [B, heads, S, d]
        half = x.shape[-1] // 2
        rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
        return x * cos + rotated * sin

    def linear(x, name):
        y = x @ w[name + ".weight"].T
        if name + ".bias" in w:
            y = y + w[name + ".bias"]
        return y

    def attention(x, p):
        B = x.shape[0]
        q, k, v = (linear(x, p + "self_attn.%s_proj" % s) for s in "qkv")
        qn, kn = p + "self_attn.q_norm.weight", p + "self_attn.k_norm.weight"
        whole = qn in w and w[qn].shape[0] == q.shape[-1] and heads > 1
        if whole:  # OLMoE: over the whole projection
            q, k = rms_norm(q, w[qn]), rms_norm(k, w[kn])
        q = q.view(B, SEQ, heads, head_dim).transpose(1, 2)
        k = k.view(B, SEQ, kv_heads, head_dim).transpose(1, 2)
        v = v.view(B, SEQ, kv_heads, head_dim).transpose(1, 2)
        if qn in w and not whole:  # Qwen3: per head
            q, k = rms_norm(q, w[qn]), rms_norm(k, w[kn])
        q, k = rope(q), rope(k)
        group = heads // kv_heads
        k = k.repeat_interleave(group, dim=1)
        v = v.repeat_interleave(group, dim=1)
        scores = q @ k.transpose(-1, -2) / math.sqrt(head_dim)
        mask = torch.triu(torch.ones(SEQ, SEQ, dtype=torch.bool), 1)
        scores = scores.masked_fill(mask, float("-inf"))
        out = torch.softmax(scores, dim=-1) @ v
        out = out.transpose(1, 2).reshape(B, SEQ, heads * head_dim)
        return linear(out, p + "self_attn.o_proj")

    def yarn_inv_freq(dim):
        """HF's _compute_yarn_parameters: (inverse frequencies, scale of
        cos and sin)."""
        y = config["rope_scaling"]
        factor, original = y["factor"], y["original_max_position_embeddings"]
        fast, slow = y.get("beta_fast", 32), y.get("beta_slow", 1)

        def get_mscale(m):
            return 1.0 if factor <= 1 else 0.1 * m * math.log(factor) + 1.0
        m, m_all = y.get("mscale"), y.get("mscale_all_dim")
        scale = get_mscale(m) / get_mscale(m_all) if m and m_all \
            else get_mscale(1.0)

        def correction_dim(rotations):
            return dim * math.log(original / (rotations * 2 * math.pi)) / \
                (2 * math.log(theta))
        low = max(math.floor(correction_dim(fast)), 0)
        high = min(math.ceil(correction_dim(slow)), dim - 1)
        if low == high:
            high += 0.001
        ramp = ((torch.arange(dim // 2, dtype=torch.float64) - low) /
                (high - low)).clamp(0, 1)
        extrapolation = 1 - ramp
        pos = theta ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim)
        inv = (1 / (factor * pos)) * (1 - extrapolation) + \
            (1 / pos) * extrapolation
        return inv, scale

    def mla(x, p):
        """DeepSeek's multi-head latent attention (transformers'
        DeepseekV3Attention, rope_interleave)."""
        B = x.shape[0]
        nope, rot = config["qk_nope_head_dim"], config["qk_rope_head_dim"]
        vd, rank = config["v_head_dim"], config["kv_lora_rank"]
        dq = nope + rot
        a = p + "self_attn."
        if config.get("q_lora_rank"):
            q = linear(rms_norm(linear(x, a + "q_a_proj"),
                                w[a + "q_a_layernorm.weight"]), a + "q_b_proj")
        else:
            q = linear(x, a + "q_proj")
        q = q.view(B, SEQ, heads, dq).transpose(1, 2)
        q_pass, q_rot = torch.split(q, [nope, rot], dim=-1)
        compressed = linear(x, a + "kv_a_proj_with_mqa")
        latent, k_rot = torch.split(compressed, [rank, rot], dim=-1)
        kv = linear(rms_norm(latent, w[a + "kv_a_layernorm.weight"]),
                    a + "kv_b_proj").view(B, SEQ, heads, nope + vd)
        k_pass, v = torch.split(kv.transpose(1, 2), [nope, vd], dim=-1)
        k_rot = k_rot.view(B, 1, SEQ, rot)
        scaling = dq ** -0.5
        if config.get("rope_scaling"):
            inv, cs_scale = yarn_inv_freq(rot)
            m_all = config["rope_scaling"].get("mscale_all_dim", 0)
            if m_all:
                factor = config["rope_scaling"]["factor"]
                m = 0.1 * m_all * math.log(factor) + 1.0
                scaling = scaling * m * m
        else:
            inv = 1.0 / theta ** (torch.arange(0, rot, 2,
                                               dtype=torch.float64) / rot)
            cs_scale = 1.0
        ang = torch.outer(torch.arange(SEQ, dtype=torch.float64), inv)
        ang = torch.cat([ang, ang], dim=-1)
        c, sn = (ang.cos() * cs_scale).float(), (ang.sin() * cs_scale).float()

        def rope_interleave(t):  # pairs (2i, 2i+1), de-interleaved first
            b, h, s_, d = t.shape
            t = t.view(b, h, s_, d // 2, 2).transpose(4, 3).reshape(b, h, s_, d)
            half = d // 2
            return t * c + torch.cat([-t[..., half:], t[..., :half]], -1) * sn
        q_rot, k_rot = rope_interleave(q_rot), rope_interleave(k_rot)
        k_rot = k_rot.expand(B, heads, SEQ, rot)
        query = torch.cat([q_pass, q_rot], dim=-1)
        key = torch.cat([k_pass, k_rot], dim=-1)
        scores = query @ key.transpose(-1, -2) * scaling
        mask = torch.triu(torch.ones(SEQ, SEQ, dtype=torch.bool), 1)
        scores = scores.masked_fill(mask, float("-inf"))
        out = torch.softmax(scores, dim=-1) @ v
        out = out.transpose(1, 2).reshape(B, SEQ, heads * vd)
        return linear(out, a + "o_proj")

    def deepseek_route(logits, p):
        """(weights, experts) of DeepSeek's gate: V2's softmax greedy or
        group-limited greedy, V3's sigmoid noaux_tc with the selection
        bias; routed_scaling_factor."""
        n, experts = logits.shape
        groups = config.get("n_group") or 1
        top_groups = config.get("topk_group") or 1
        v3 = family == "deepseek_v3"
        if v3:
            scores = torch.sigmoid(logits)
            choice = scores + w[p + "mlp.gate.e_score_correction_bias"]
            group_scores = choice.view(n, groups, -1).topk(2, dim=-1)[0].sum(-1)
        else:
            scores = torch.softmax(logits, dim=-1)
            choice = scores
            group_scores = choice.view(n, groups, -1).max(dim=-1).values
        grouped = v3 or config.get("topk_method") == "group_limited_greedy"
        if grouped:
            keep = torch.topk(group_scores, top_groups, dim=-1)[1]
            group_mask = torch.zeros_like(group_scores).scatter_(1, keep, 1)
            expert_mask = group_mask.unsqueeze(-1).expand(
                n, groups, experts // groups).reshape(n, -1)
            choice = choice.masked_fill(~expert_mask.bool(), 0.0)
        top_i = torch.topk(choice, top_k, dim=-1)[1]
        # HF fills the masked experts' choice with 0: make sure no test
        # token would have picked one (laer never picks them).
        assert bool((choice.gather(1, top_i) > 0).all()), "masked pick"
        top_w = scores.gather(1, top_i)
        scale = config.get("routed_scaling_factor", 2.5 if v3 else 1.0)
        if v3:
            if renormalize:
                top_w = top_w / (top_w.sum(-1, keepdim=True) + 1e-20)
            top_w = top_w * scale
        elif top_k > 1 and renormalize:
            top_w = top_w / (top_w.sum(-1, keepdim=True) + 1e-20)
        else:
            top_w = top_w * scale
        return top_w, top_i

    def mlp(x, p, names=("gate_proj", "up_proj", "down_proj")):
        g, u, d = names
        return linear(torch.nn.functional.silu(linear(x, p + g)) *
                      linear(x, p + u), p + d)

    router_logits = []
    deepseek_aux = []  # per MoE layer: DeepSeek's balance loss

    def deepseek_balance_loss(logits, top_i):
        """DeepSeek's modelling code: E / (k S) sum_e count_e P_e per
        sequence (seq_aux) averaged over the sequences, or over the batch;
        P from the softmax scores, or the sigmoid scores over their sum."""
        experts = logits.shape[-1]
        if family == "deepseek_v3":
            s = torch.sigmoid(logits)
            s = s / s.sum(-1, keepdim=True)
        else:
            s = torch.softmax(logits, dim=-1)
        span = SEQ if config.get("seq_aux", True) else logits.shape[0]
        s = s.view(-1, span, experts)
        chosen = top_i.view(-1, span * top_k)
        counts = torch.zeros(chosen.shape[0], experts).scatter_add(
            1, chosen, torch.ones(chosen.shape)) / (span * top_k / experts)
        return (counts * s.mean(dim=1)).sum(dim=1).mean()

    def moe(x, p):
        block = p + ("block_sparse_moe." if family == "mixtral" else "mlp.")
        names = ("w1", "w3", "w2") if family == "mixtral" else \
            ("gate_proj", "up_proj", "down_proj")
        flat = x.reshape(-1, hidden)
        logits = linear(flat, block + "gate")
        router_logits.append(logits)
        if deepseek:
            top_w, top_i = deepseek_route(logits, p)
            if config.get("aux_loss_alpha", 0):
                deepseek_aux.append(deepseek_balance_loss(logits, top_i))
        else:
            probs = torch.softmax(logits, dim=-1)
            top_w, top_i = torch.topk(probs, top_k, dim=-1)
            if renormalize:
                top_w = top_w / top_w.sum(-1, keepdim=True)
        out = torch.zeros_like(flat)
        experts = logits.shape[-1]
        for e in range(experts):
            rows, slot = torch.where(top_i == e)
            if len(rows) == 0:
                continue
            y = mlp(flat[rows], block + "experts.%d." % e, names)
            out = out.index_add(0, rows, y * top_w[rows, slot, None])
        shared = block + ("shared_experts." if deepseek else "shared_expert.")
        if shared + "gate_proj.weight" in w:
            s = mlp(flat, shared)
            if block + "shared_expert_gate.weight" in w:
                s = s * torch.sigmoid(linear(flat, block + "shared_expert_gate"))
            out = out + s
        return out.view_as(x)

    ids, targets = tokens[:, :-1].long(), tokens[:, 1:].long()
    h = w["model.embed_tokens.weight"][ids]
    layer = 0
    while "model.layers.%d.input_layernorm.weight" % layer in w:
        p = "model.layers.%d." % layer
        n = rms_norm(h, w[p + "input_layernorm.weight"])
        h = h + (mla(n, p) if deepseek else attention(n, p))
        m = rms_norm(h, w[p + "post_attention_layernorm.weight"])
        moe_layer = (p + "block_sparse_moe.gate.weight" in w or
                     p + "mlp.gate.weight" in w)
        h = h + (moe(m, p) if moe_layer else mlp(m, p + "mlp."))
        layer += 1
    out = rms_norm(h, w["model.norm.weight"])
    if config.get("tie_word_embeddings"):  # the head is the embedding
        logits = out @ w["model.embed_tokens.weight"].T
    else:
        logits = linear(out, "lm_head")
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, vocab),
                                             targets.reshape(-1))
    for aux in deepseek_aux:
        loss = loss + config["aux_loss_alpha"] * aux
    if config.get("output_router_logits"):
        # HF's load_balancing_loss_func over all MoE layers' logits, and
        # OLMoE's router z-loss.
        all_logits = torch.cat(router_logits)
        experts = all_logits.shape[-1]
        probs = torch.softmax(all_logits, dim=-1)
        _, chosen = torch.topk(probs, top_k, dim=-1)
        mask = torch.nn.functional.one_hot(chosen, experts).float()
        aux = torch.sum(mask.mean(0) * probs.mean(0).unsqueeze(0)) * experts
        loss = loss + config.get("router_aux_loss_coef", 0.001) * aux
        if family == "olmoe" and config.get("router_z_loss_coef", 0):
            z = torch.logsumexp(all_logits, dim=-1).pow(2).mean()
            loss = loss + config["router_z_loss_coef"] * z
    loss.backward()
    # The selection bias steers the choice only: it has no gradient.
    return loss.item(), {n: t.grad for n, t in w.items()
                         if not n.endswith("e_score_correction_bias")}


ref_loss, ref_grads = reference()
print("PyTorch reference: loss %.7f, %d gradients" % (ref_loss, len(ref_grads)))


def close(name, got, want, tolerance=1e-5):
    scale = float(want.abs().max())
    error = float((got - want).abs().max())
    if not error <= tolerance * max(scale, 1e-30):
        sys.exit("hf_reference: %s differs by %.3g (largest value %.3g)"
                 % (name, error, scale))
    return error / max(scale, 1e-30)


def laer_step(ranks, program=binary):
    out = os.path.join(scratch, "grads-%d" % ranks)
    metrics = os.path.join(scratch, "metrics-%d.jsonl" % ranks)
    shutil.rmtree(out, ignore_errors=True)
    extra = ["--aux-loss-batch", "global"] if ranks > 1 else []
    run(mpirun + ["-np", str(ranks), program, "--tokens", token_file,
                  "--vocab", str(vocab), "--steps", "1",
                  "--batch", str(BATCH), "--data-order", "sequential",
                  "--planner", "laer+", "--load-weights", f32_dir,
                  "--export-gradients", out, "--metrics", metrics,
                  "--no-progress"])
    loss = json.loads(open(metrics).readline())["loss"]
    return loss, read_safetensors(out)


micro_batch = "aux_loss<micro_batch>" in open(model_ir).read()
fsep_program = os.path.join(scratch, "train-fsep2")
model_global = os.path.join(scratch, "model-global.mlir")
for ranks in (1, 4, "fsep"):
    if ranks == "fsep":
        # The FSEP program compiled op by op for 2 ranks, 2 chunks.
        run([compiler, model_global if micro_batch else model_ir,
             "--ranks", "2", "--chunks", "2", "-o", fsep_program])
    elif ranks > 1 and micro_batch:
        # A micro-batch aux loss depends on how the batch is split; the
        # global-batch one over 4 ranks is the whole batch's, as HF's.
        run([importer, os.path.join(scratch, "config.json"), "--seq-len",
             str(SEQ), "--aux-loss-batch", "global", "-o", model_global]
            + import_options)
        run([compiler, model_global, "-o", binary])
    loss, grads = laer_step(2, fsep_program) if ranks == "fsep" \
        else laer_step(ranks)
    what = "the FSEP program on 2 ranks" if ranks == "fsep" \
        else "%d rank(s)" % ranks
    worst = close("loss (%s)" % what, torch.tensor(loss),
                  torch.tensor(ref_loss))
    assert set(grads) == set(ref_grads), sorted(set(grads) ^ set(ref_grads))
    for name, entry in grads.items():
        worst = max(worst, close("gradient of %s (%s)" % (name, what),
                                 as_tensor(entry), ref_grads[name]))
    print("%s: loss %.7f, %d gradients, largest relative error %.2g"
          % (what, loss, len(grads), worst))
run([compiler, model_ir, "-o", binary])

# --- round trips -----------------------------------------------------------
bf16_dir = os.path.join(scratch, "hf-bf16")
write_checkpoint(bf16_dir, "BF16", weights)
original = read_safetensors(bf16_dir)
f32_exports = []
for ranks in (1, 2, 4):
    for source, dtype in ((bf16_dir, "BF16"), (f32_dir, "F32")):
        out = os.path.join(scratch, "export-%s-%d" % (dtype, ranks))
        shutil.rmtree(out, ignore_errors=True)
        # 2 ranks write F32 in small shards (an index and many files).
        small = ["--export-shard-size", "20000"] \
            if ranks == 2 and dtype == "F32" else []
        run(mpirun + ["-np", str(ranks), binary, "--tokens", token_file,
                      "--vocab", str(vocab), "--steps", "0",
                      "--batch", str(BATCH), "--load-weights", source,
                      "--export-weights", out, "--export-dtype", dtype,
                      "--no-progress"] + small)
        if small and len([f for f in os.listdir(out)
                          if f.endswith(".safetensors")]) < 3:
            sys.exit("hf_reference: --export-shard-size 20000 wrote "
                     "fewer than 3 files")
        exported = read_safetensors(out)
        if dtype == "BF16":
            if exported != original:
                sys.exit("hf_reference: BF16 round trip on %d ranks is not "
                         "bit-exact" % ranks)
        else:
            f32_exports.append(exported)
if any(e != f32_exports[0] for e in f32_exports):
    sys.exit("hf_reference: F32 exports from 1, 2 and 4 ranks differ")
for name, t in weights.items():
    if not torch.equal(as_tensor(f32_exports[0][name]), t):
        sys.exit("hf_reference: exported %s differs from the loaded one" % name)
print("round trips: BF16 bit-exact on 1, 2, 4 ranks; F32 identical")

# --steps 0 with only --load-weights: load, report the bytes, stop.
report = run(mpirun + ["-np", "1", binary, "--tokens", token_file,
                       "--vocab", str(vocab), "--steps", "0",
                       "--batch", str(BATCH), "--load-weights", f32_dir,
                       "--no-progress"])
total = sum(4 * t.numel() for t in weights.values())
match = re.search(r"loaded weights from \S+: ([0-9.]+) MB over 1 ranks", report)
if not match or abs(float(match.group(1)) - total / 1e6) > 0.05:
    sys.exit("hf_reference: a load check of %d bytes reported: %s"
             % (total, report))

# --- bad files -------------------------------------------------------------
bad = os.path.join(scratch, "hf-bad")
shutil.rmtree(bad, ignore_errors=True)
shutil.copytree(f32_dir, bad)
shard = os.path.join(bad, "model-00002-of-00002.safetensors")
size = os.path.getsize(shard)
with open(shard, "r+b") as f:
    f.truncate(size - 4)
message = run(mpirun + ["-np", "1", binary, "--tokens", token_file,
                        "--vocab", str(vocab), "--steps", "1",
                        "--batch", str(BATCH), "--load-weights", bad,
                        "--no-progress"], expect_failure=True)
if "model-00002-of-00002.safetensors" not in message or \
        "outside the file" not in message:
    sys.exit("hf_reference: a truncated shard gave: " + message)
shutil.rmtree(bad)
shutil.copytree(f32_dir, bad)
reshaped = dict(weights)
reshaped["model.norm.weight"] = torch.ones(config["hidden_size"] + 1)
write_checkpoint(bad, "F32", reshaped)
message = run(mpirun + ["-np", "1", binary, "--tokens", token_file,
                        "--vocab", str(vocab), "--steps", "1",
                        "--batch", str(BATCH), "--load-weights", bad,
                        "--no-progress"], expect_failure=True)
if "'model.norm.weight'" not in message or "shape" not in message:
    sys.exit("hf_reference: a tensor of the wrong shape gave: " + message)
print("hf_reference (%s): PASS" % family)
