//===- DenseOps.td - dense transformer ops -----------------*- tablegen -*-===//

#ifndef LAER_DIALECT_DENSE_IR_DENSEOPS_TD
#define LAER_DIALECT_DENSE_IR_DENSEOPS_TD

include "laer/Dialect/Dense/IR/DenseDialect.td"
include "mlir/IR/CommonAttrConstraints.td"
include "mlir/IR/CommonTypeConstraints.td"
include "mlir/Interfaces/SideEffectInterfaces.td"
include "laer/Interfaces/GradientOpInterface.td"

def Dense_EmbeddingOp : Dense_Op<"embedding", [Pure, DeclareOpInterfaceMethods<GradientOpInterface>]> {
  let summary = "rows of an embedding table by token id";
  let description = [{
    `output[t] = table[ids[t]]`: `table` `[V, H]`, `ids` `[T]` (integers in
    `[0, V)`), result `[T, H]`.

    ```mlir
    %h = dense.embedding %table, %ids : tensor<256x64xf32>, tensor<?xi32> -> tensor<?x64xf32>
    ```
  }];
  let arguments = (ins AnyRankedTensor:$table, AnyRankedTensor:$ids);
  let results = (outs AnyRankedTensor:$output);
  let assemblyFormat = [{
    $table `,` $ids attr-dict `:` type($table) `,` type($ids) `->` type($output)
  }];
  let hasVerifier = 1;
}

def Dense_RMSNormOp : Dense_Op<"rms_norm", [Pure, DeclareOpInterfaceMethods<GradientOpInterface>]> {
  let summary = "root-mean-square layer normalisation";
  let description = [{
    `output[t] = input[t] / sqrt(mean(input[t]^2) + epsilon) * weight`,
    `input` `[T, H]`, `weight` `[H]`.
  }];
  let arguments = (ins AnyRankedTensor:$input, AnyRankedTensor:$weight,
                       F64Attr:$epsilon);
  let results = (outs AnyRankedTensor:$output);
  let assemblyFormat = [{
    $input `,` $weight `epsilon` `=` $epsilon attr-dict `:` type($input) `,`
    type($weight) `->` type($output)
  }];
  let hasVerifier = 1;
}

def Dense_AttentionOp : Dense_Op<"attention", [Pure, AttrSizedOperandSegments,
    DeclareOpInterfaceMethods<GradientOpInterface>]> {
  let summary = "causal grouped-query self-attention with rotary positions";
  let description = [{
    Self-attention over each sequence of `sequence_length` tokens of
    `input` `[T, H]`: queries `input x wq` (`heads` heads of size
    `d = width(wq) / heads`), keys and values `input x wk`, `input x wv`
    (`kv_heads` heads of size `d` each; query head h reads key/value head
    `h / (heads / kv_heads)`), rotary position embedding with base
    `rope_theta` on queries and keys (half-split rotation, as in Llama),
    causal softmax(q k^T / sqrt(d)) v, then `x wo`. `wq` `[H, heads * d]`,
    `wk`, `wv` `[H, kv_heads * d]`, `wo` `[heads * d, H]`; `d` is even and
    need not be `H / heads` (Qwen3-MoE: 2048 wide, 32 heads of 128).

    Optional, in the order they apply after the projections:
    - `bias(bq, bk, bv)`: biases `[heads * d]`, `[kv_heads * d]`,
      `[kv_heads * d]` added to q, k and v (Qwen2-MoE);
    - `qk_norm(q_norm, k_norm) epsilon = e`: RMSNorm of q and k with these
      weights before the rotation, either per head (weights `[d]`, Qwen3-MoE)
      or over the whole projection (weights `[heads * d]` and
      `[kv_heads * d]`, OLMoE); the weights' lengths say which.

    ```mlir
    %a = dense.attention %x, %wq, %wk, %wv, %wo
        heads = 4 kv_heads = 2 sequence_length = 32 rope_theta = 10000.0
        : tensor<?x64xf32>, tensor<64x64xf32>, tensor<64x32xf32>,
          tensor<64x32xf32>, tensor<64x64xf32> -> tensor<?x64xf32>
    %b = dense.attention %x, %wq, %wk, %wv, %wo
        qk_norm(%qn, %kn : tensor<16xf32>, tensor<16xf32>) epsilon = 1.0e-06
        heads = 4 kv_heads = 2 sequence_length = 32 rope_theta = 10000.0
        : tensor<?x64xf32>, tensor<64x64xf32>, tensor<64x32xf32>,
          tensor<64x32xf32>, tensor<64x64xf32> -> tensor<?x64xf32>
    ```
  }];
  let arguments = (ins AnyRankedTensor:$input, AnyRankedTensor:$wq,
                       AnyRankedTensor:$wk, AnyRankedTensor:$wv,
                       AnyRankedTensor:$wo,
                       Optional<AnyRankedTensor>:$bq,
                       Optional<AnyRankedTensor>:$bk,
                       Optional<AnyRankedTensor>:$bv,
                       Optional<AnyRankedTensor>:$q_norm,
                       Optional<AnyRankedTensor>:$k_norm,
                       OptionalAttr<F64Attr>:$qk_norm_epsilon,
                       I64Attr:$heads, I64Attr:$kv_heads,
                       I64Attr:$sequence_length, F64Attr:$rope_theta);
  let results = (outs AnyRankedTensor:$output);
  let assemblyFormat = [{
    $input `,` $wq `,` $wk `,` $wv `,` $wo
    (`bias` `(` $bq^ `,` $bk `,` $bv `:` type($bq) `,` type($bk) `,`
     type($bv) `)`)?
    (`qk_norm` `(` $q_norm^ `,` $k_norm `:` type($q_norm) `,` type($k_norm)
     `)` `epsilon` `=` $qk_norm_epsilon)?
    `heads` `=` $heads `kv_heads` `=`
    $kv_heads `sequence_length` `=` $sequence_length `rope_theta` `=`
    $rope_theta attr-dict `:` type($input) `,` type($wq) `,` type($wk) `,`
    type($wv) `,` type($wo) `->` type($output)
  }];
  let hasVerifier = 1;
  let extraClassDeclaration = [{
    /// The operands after `input`: weights, then the optional ones present.
    ::mlir::SmallVector<::mlir::Value> getParameters();
  }];
}

// The operands and attributes latent_attention and its gradient share.
defvar Dense_LatentAttentionOperands = (ins AnyRankedTensor:$input,
    Optional<AnyRankedTensor>:$wq, Optional<AnyRankedTensor>:$wq_a,
    Optional<AnyRankedTensor>:$q_a_norm, Optional<AnyRankedTensor>:$wq_b,
    AnyRankedTensor:$wkv_a, AnyRankedTensor:$kv_a_norm,
    AnyRankedTensor:$wkv_b, AnyRankedTensor:$wo);
defvar Dense_LatentAttentionAttrs = (ins I64Attr:$heads,
    I64Attr:$qk_nope_head_dim, I64Attr:$qk_rope_head_dim,
    I64Attr:$v_head_dim, I64Attr:$sequence_length, F64Attr:$rope_theta,
    F64Attr:$softmax_scale, F64Attr:$epsilon,
    OptionalAttr<F64Attr>:$yarn_factor,
    OptionalAttr<I64Attr>:$yarn_original_max_position,
    OptionalAttr<F64Attr>:$yarn_beta_fast,
    OptionalAttr<F64Attr>:$yarn_beta_slow,
    OptionalAttr<F64Attr>:$yarn_attention_factor);
defvar Dense_LatentAttentionFormat = [{
    (`q` `(` $wq^ `:` type($wq) `)`)?
    (`q_lora` `(` $wq_a^ `,` $q_a_norm `,` $wq_b `:` type($wq_a) `,`
     type($q_a_norm) `,` type($wq_b) `)`)?
    `kv_lora` `(` $wkv_a `,` $kv_a_norm `,` $wkv_b `:` type($wkv_a) `,`
    type($kv_a_norm) `,` type($wkv_b) `)` `out` `(` $wo `:` type($wo) `)`
    `heads` `=` $heads `qk_nope_head_dim` `=` $qk_nope_head_dim
    `qk_rope_head_dim` `=` $qk_rope_head_dim `v_head_dim` `=` $v_head_dim
    `sequence_length` `=` $sequence_length `rope_theta` `=` $rope_theta
    (`yarn` `(` `factor` `=` $yarn_factor^ `original_max_position` `=`
     $yarn_original_max_position `beta_fast` `=` $yarn_beta_fast
     `beta_slow` `=` $yarn_beta_slow `attention_factor` `=`
     $yarn_attention_factor `)`)?
    `softmax_scale` `=` $softmax_scale `epsilon` `=` $epsilon
}];

def Dense_LatentAttentionOp : Dense_Op<"latent_attention", [Pure,
    AttrSizedOperandSegments, DeclareOpInterfaceMethods<GradientOpInterface>]> {
  let summary = "causal multi-head latent attention (DeepSeek-V2/V3 MLA)";
  let description = [{
    DeepSeek's multi-head latent attention over each sequence of
    `sequence_length` tokens of `input` `[T, H]`, with `n = heads`,
    `dn = qk_nope_head_dim`, `dr = qk_rope_head_dim`, `dv = v_head_dim`:

    - queries `[T, n * (dn + dr)]`: `input x wq` (`q(...)`, `wq`
      `[H, n * (dn + dr)]`), or with a query LoRA (`q_lora(...)`)
      `rms_norm(input x wq_a, q_a_norm) x wq_b`, `wq_a` `[H, Rq]`,
      `q_a_norm` `[Rq]`, `wq_b` `[Rq, n * (dn + dr)]`;
    - `input x wkv_a` (`[H, Rkv + dr]`) splits into the latent `c` `[Rkv]`
      and one rotary key `k_pe` `[dr]` shared by all heads;
      `rms_norm(c, kv_a_norm) x wkv_b` (`[Rkv, n * (dn + dv)]`) gives each
      head its key part `k_nope` `[dn]` and its value `[dv]`;
    - the last `dr` of each query head and `k_pe` are rotated by their
      position (pairs of adjacent elements, as DeepSeek's checkpoints
      store them) with base `rope_theta`; with `yarn(...)` the frequencies
      are YaRN's (`factor`, `original_max_position`, `beta_fast`,
      `beta_slow`) and the rotated parts are scaled by `attention_factor`;
    - causal `softmax(softmax_scale * q k^T) v` per head (`k` = `k_nope`
      then `k_pe`), then `x wo` (`[n * dv, H]`).

    `epsilon` is the two RMSNorms' (`rms_norm_eps`).

    ```mlir
    %a = dense.latent_attention %x q(%wq : tensor<64x96xf32>)
        kv_lora(%wkva, %kvn, %wkvb : tensor<64x40xf32>, tensor<32xf32>,
                tensor<32x128xf32>) out(%wo : tensor<64x64xf32>)
        heads = 4 qk_nope_head_dim = 16 qk_rope_head_dim = 8 v_head_dim = 16
        sequence_length = 32 rope_theta = 10000.0
        softmax_scale = 0.2041 epsilon = 1.0e-06
        : tensor<?x64xf32> -> tensor<?x64xf32>
    ```
  }];
  let arguments = !con(Dense_LatentAttentionOperands,
                       Dense_LatentAttentionAttrs);
  let results = (outs AnyRankedTensor:$output);
  let assemblyFormat = !strconcat([{ $input }], Dense_LatentAttentionFormat,
      [{ attr-dict `:` type($input) `->` type($output) }]);
  let hasVerifier = 1;
  let extraClassDeclaration = [{
    /// The operands after `input` that are present, in operand order.
    ::mlir::SmallVector<::mlir::Value> getParameters();
  }];
}

def Dense_LinearOp : Dense_Op<"linear", [Pure, DeclareOpInterfaceMethods<GradientOpInterface>]> {
  let summary = "input x weight";
  let description = [{
    `[T, I] x [I, O] -> [T, O]`; the LM head is a linear to the vocabulary.
    With `transposed` the weight is `[O, I]` and the op computes
    `input x weight^T`: a tied LM head reads the embedding table `[V, H]`.

    ```mlir
    %logits = dense.linear %h, %embed transposed
        : tensor<?x64xf32>, tensor<256x64xf32> -> tensor<?x256xf32>
    ```
  }];
  let arguments = (ins AnyRankedTensor:$input, AnyRankedTensor:$weight,
                       UnitAttr:$transposed);
  let results = (outs AnyRankedTensor:$output);
  let assemblyFormat = [{
    $input `,` $weight (`transposed` $transposed^)? attr-dict `:`
    type($input) `,` type($weight) `->` type($output)
  }];
  let hasVerifier = 1;
}

def Dense_SwiGluOp : Dense_Op<"swiglu", [Pure, DeclareOpInterfaceMethods<GradientOpInterface>]> {
  let summary = "gated SiLU feed-forward network (shared experts, dense MLP layers)";
  let description = [{
    `output = (silu(input w1) * (input w3)) w2` with `input` `[T, H]`,
    `w1`, `w3` `[H, S]` and `w2` `[S, H]`: the always-active shared experts
    of a `moe.layer` once `moe-split-shared-experts` has taken them out
    (several shared experts are one FFN of their summed width `S`), or the
    MLP of a dense layer of a MoE model. Every rank computes it on its own
    tokens; its weights are dense parameters.

    With `gate(g)`, `g` `[H, 1]`, every token's output is scaled by
    `sigmoid(input g)` (Qwen2-MoE's `shared_expert_gate`).

    ```mlir
    %y = dense.swiglu %x, %w1, %w3, %w2 : tensor<?x64xf32>, tensor<64x96xf32>,
        tensor<64x96xf32>, tensor<96x64xf32> -> tensor<?x64xf32>
    ```
  }];
  let arguments = (ins AnyRankedTensor:$input, AnyRankedTensor:$w1,
                       AnyRankedTensor:$w3, AnyRankedTensor:$w2,
                       Optional<AnyRankedTensor>:$gate);
  let results = (outs AnyRankedTensor:$output);
  let assemblyFormat = [{
    $input `,` $w1 `,` $w3 `,` $w2 (`gate` `(` $gate^ `)`)? attr-dict `:`
    type(operands) `->` type($output)
  }];
  let hasVerifier = 1;
}

def Dense_CrossEntropyOp : Dense_Op<"cross_entropy", [Pure, DeclareOpInterfaceMethods<GradientOpInterface>]> {
  let summary = "mean next-token cross-entropy";
  let description = [{
    `mean_t -log softmax(logits[t])[targets[t]]` over the `T` rows of
    `logits` `[T, V]`, `targets` `[T]`; the result is a scalar tensor.
  }];
  let arguments = (ins AnyRankedTensor:$logits, AnyRankedTensor:$targets);
  let results = (outs AnyRankedTensor:$loss);
  let assemblyFormat = [{
    $logits `,` $targets attr-dict `:` type($logits) `,` type($targets) `->`
    type($loss)
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Gradients (emitted by laer-autodiff through GradientOpInterface)
//===----------------------------------------------------------------------===//

def Dense_EmbeddingGradOp : Dense_Op<"embedding_grad", [Pure]> {
  let summary = "gradient of dense.embedding with respect to the table";
  let description = [{
    `d_table[v] = sum over t with ids[t] = v of d_output[t]`; the result has
    the table's type.
  }];
  let arguments = (ins AnyRankedTensor:$ids, AnyRankedTensor:$d_output);
  let results = (outs AnyRankedTensor:$d_table);
  let assemblyFormat = [{
    $ids `,` $d_output attr-dict `:` type($ids) `,` type($d_output) `->`
    type($d_table)
  }];
  let hasVerifier = 1;
}

def Dense_RMSNormGradOp : Dense_Op<"rms_norm_grad", [Pure]> {
  let summary = "gradient of dense.rms_norm";
  let arguments = (ins AnyRankedTensor:$input, AnyRankedTensor:$weight,
                       AnyRankedTensor:$d_output, F64Attr:$epsilon);
  let results = (outs AnyRankedTensor:$d_input, AnyRankedTensor:$d_weight);
  let assemblyFormat = [{
    $input `,` $weight `,` $d_output `epsilon` `=` $epsilon attr-dict `:`
    type($input) `,` type($weight) `,` type($d_output) `->` type(results)
  }];
  let hasVerifier = 1;
}

def Dense_AttentionGradOp : Dense_Op<"attention_grad", [Pure,
    AttrSizedOperandSegments]> {
  let summary = "gradient of dense.attention";
  let description = [{
    The gradients of a `dense.attention`'s input and parameters, given its
    operands and the gradient of its output: `d_input`, `d_wq`, `d_wk`,
    `d_wv`, `d_wo`, then one gradient per optional parameter present, in
    operand order (`bq`, `bk`, `bv`, `q_norm`, `k_norm`).
  }];
  let arguments = (ins AnyRankedTensor:$input, AnyRankedTensor:$wq,
                       AnyRankedTensor:$wk, AnyRankedTensor:$wv,
                       AnyRankedTensor:$wo,
                       Optional<AnyRankedTensor>:$bq,
                       Optional<AnyRankedTensor>:$bk,
                       Optional<AnyRankedTensor>:$bv,
                       Optional<AnyRankedTensor>:$q_norm,
                       Optional<AnyRankedTensor>:$k_norm,
                       AnyRankedTensor:$d_output,
                       OptionalAttr<F64Attr>:$qk_norm_epsilon,
                       I64Attr:$heads, I64Attr:$kv_heads,
                       I64Attr:$sequence_length, F64Attr:$rope_theta);
  let results = (outs AnyRankedTensor:$d_input, AnyRankedTensor:$d_wq,
                      AnyRankedTensor:$d_wk, AnyRankedTensor:$d_wv,
                      AnyRankedTensor:$d_wo,
                      Variadic<AnyRankedTensor>:$d_optional);
  let assemblyFormat = [{
    $input `,` $wq `,` $wk `,` $wv `,` $wo
    (`bias` `(` $bq^ `,` $bk `,` $bv `)`)?
    (`qk_norm` `(` $q_norm^ `,` $k_norm `)` `epsilon` `=` $qk_norm_epsilon)?
    `,` $d_output `heads` `=` $heads
    `kv_heads` `=` $kv_heads `sequence_length` `=` $sequence_length
    `rope_theta` `=` $rope_theta attr-dict `:` type(operands) `->`
    type(results)
  }];
  let hasVerifier = 1;
}

def Dense_LatentAttentionGradOp : Dense_Op<"latent_attention_grad", [Pure,
    AttrSizedOperandSegments]> {
  let summary = "gradient of dense.latent_attention";
  let description = [{
    The gradients of a `dense.latent_attention`'s input and of each of its
    parameters present, in operand order, given its operands and the
    gradient of its output.
  }];
  let arguments = !con(Dense_LatentAttentionOperands,
                       (ins AnyRankedTensor:$d_output),
                       Dense_LatentAttentionAttrs);
  let results = (outs AnyRankedTensor:$d_input,
                      Variadic<AnyRankedTensor>:$d_parameters);
  let assemblyFormat = !strconcat([{ $input }], Dense_LatentAttentionFormat,
      [{ `grad` `(` $d_output `:` type($d_output) `)` attr-dict `:`
         type($input) `->` type(results) }]);
  let hasVerifier = 1;
}

def Dense_LinearGradOp : Dense_Op<"linear_grad", [Pure]> {
  let summary = "gradient of dense.linear";
  let arguments = (ins AnyRankedTensor:$input, AnyRankedTensor:$weight,
                       AnyRankedTensor:$d_output, UnitAttr:$transposed);
  let results = (outs AnyRankedTensor:$d_input, AnyRankedTensor:$d_weight);
  let assemblyFormat = [{
    $input `,` $weight `,` $d_output (`transposed` $transposed^)? attr-dict
    `:` type(operands) `->` type(results)
  }];
  let hasVerifier = 1;
}

def Dense_SwiGluGradOp : Dense_Op<"swiglu_grad", [Pure]> {
  let summary = "gradient of dense.swiglu";
  let description = [{
    Gradients of a `dense.swiglu`'s input and weights (and of its sigmoid
    gate `g`, when it has one) given the gradient of its output.
  }];
  let arguments = (ins AnyRankedTensor:$input, AnyRankedTensor:$w1,
                       AnyRankedTensor:$w3, AnyRankedTensor:$w2,
                       AnyRankedTensor:$d_output,
                       Optional<AnyRankedTensor>:$gate);
  let results = (outs AnyRankedTensor:$d_input, AnyRankedTensor:$d_w1,
                      AnyRankedTensor:$d_w3, AnyRankedTensor:$d_w2,
                      Optional<AnyRankedTensor>:$d_gate);
  let assemblyFormat = [{
    $input `,` $w1 `,` $w3 `,` $w2 `,` $d_output (`gate` `(` $gate^ `)`)?
    attr-dict `:` type(operands) `->` type(results)
  }];
  let hasVerifier = 1;
}

def Dense_CrossEntropyGradOp : Dense_Op<"cross_entropy_grad", [Pure]> {
  let summary = "gradient of dense.cross_entropy with respect to the logits";
  let arguments = (ins AnyRankedTensor:$logits, AnyRankedTensor:$targets,
                       AnyRankedTensor:$d_loss);
  let results = (outs AnyRankedTensor:$d_logits);
  let assemblyFormat = [{
    $logits `,` $targets `,` $d_loss attr-dict `:` type(operands) `->`
    type($d_logits)
  }];
  let hasVerifier = 1;
}

#endif // LAER_DIALECT_DENSE_IR_DENSEOPS_TD
