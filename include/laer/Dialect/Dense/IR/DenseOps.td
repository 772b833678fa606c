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

def Dense_AttentionOp : Dense_Op<"attention", [Pure, DeclareOpInterfaceMethods<GradientOpInterface>]> {
  let summary = "causal grouped-query self-attention with rotary positions";
  let description = [{
    Self-attention over each sequence of `sequence_length` tokens of
    `input` `[T, H]`: queries `input x wq` (`heads` heads of size
    `H / heads`), keys and values `input x wk`, `input x wv` (`kv_heads`
    heads each; query head h reads key/value head `h / (heads / kv_heads)`),
    rotary position embedding with base `rope_theta` on queries and keys,
    causal softmax(q k^T / sqrt(head size)) v, then `x wo`. `wq` `[H, H]`,
    `wk`, `wv` `[H, kv_heads * H / heads]`, `wo` `[H, H]`.

    ```mlir
    %a = dense.attention %x, %wq, %wk, %wv, %wo
        heads = 4 kv_heads = 2 sequence_length = 32 rope_theta = 10000.0
        : tensor<?x64xf32>, tensor<64x64xf32>, tensor<64x32xf32>,
          tensor<64x32xf32>, tensor<64x64xf32> -> tensor<?x64xf32>
    ```
  }];
  let arguments = (ins AnyRankedTensor:$input, AnyRankedTensor:$wq,
                       AnyRankedTensor:$wk, AnyRankedTensor:$wv,
                       AnyRankedTensor:$wo, I64Attr:$heads, I64Attr:$kv_heads,
                       I64Attr:$sequence_length, F64Attr:$rope_theta);
  let results = (outs AnyRankedTensor:$output);
  let assemblyFormat = [{
    $input `,` $wq `,` $wk `,` $wv `,` $wo `heads` `=` $heads `kv_heads` `=`
    $kv_heads `sequence_length` `=` $sequence_length `rope_theta` `=`
    $rope_theta attr-dict `:` type($input) `,` type($wq) `,` type($wk) `,`
    type($wv) `,` type($wo) `->` type($output)
  }];
  let hasVerifier = 1;
}

def Dense_LinearOp : Dense_Op<"linear", [Pure, DeclareOpInterfaceMethods<GradientOpInterface>]> {
  let summary = "input x weight";
  let description = [{
    `[T, I] x [I, O] -> [T, O]`; the LM head is a linear to the vocabulary.
  }];
  let arguments = (ins AnyRankedTensor:$input, AnyRankedTensor:$weight);
  let results = (outs AnyRankedTensor:$output);
  let assemblyFormat = [{
    $input `,` $weight attr-dict `:` type($input) `,` type($weight) `->`
    type($output)
  }];
  let hasVerifier = 1;
}

def Dense_SwiGluOp : Dense_Op<"swiglu", [Pure, DeclareOpInterfaceMethods<GradientOpInterface>]> {
  let summary = "gated SiLU feed-forward network (the shared experts of a layer)";
  let description = [{
    `output = (silu(input w1) * (input w3)) w2` with `input` `[T, H]`,
    `w1`, `w3` `[H, S]` and `w2` `[S, H]`: the always-active shared experts
    of a `moe.layer` once `moe-split-shared-experts` has taken them out
    (several shared experts are one FFN of their summed width `S`). Every
    rank computes it on its own tokens; its weights are dense parameters.

    ```mlir
    %y = dense.swiglu %x, %w1, %w3, %w2 : tensor<?x64xf32>, tensor<64x96xf32>,
        tensor<64x96xf32>, tensor<96x64xf32> -> tensor<?x64xf32>
    ```
  }];
  let arguments = (ins AnyRankedTensor:$input, AnyRankedTensor:$w1,
                       AnyRankedTensor:$w3, AnyRankedTensor:$w2);
  let results = (outs AnyRankedTensor:$output);
  let assemblyFormat = [{
    $input `,` $w1 `,` $w3 `,` $w2 attr-dict `:` type(operands) `->`
    type($output)
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

def Dense_AttentionGradOp : Dense_Op<"attention_grad", [Pure]> {
  let summary = "gradient of dense.attention";
  let arguments = (ins AnyRankedTensor:$input, AnyRankedTensor:$wq,
                       AnyRankedTensor:$wk, AnyRankedTensor:$wv,
                       AnyRankedTensor:$wo, AnyRankedTensor:$d_output,
                       I64Attr:$heads, I64Attr:$kv_heads,
                       I64Attr:$sequence_length, F64Attr:$rope_theta);
  let results = (outs AnyRankedTensor:$d_input, AnyRankedTensor:$d_wq,
                      AnyRankedTensor:$d_wk, AnyRankedTensor:$d_wv,
                      AnyRankedTensor:$d_wo);
  let assemblyFormat = [{
    $input `,` $wq `,` $wk `,` $wv `,` $wo `,` $d_output `heads` `=` $heads
    `kv_heads` `=` $kv_heads `sequence_length` `=` $sequence_length
    `rope_theta` `=` $rope_theta attr-dict `:` type(operands) `->`
    type(results)
  }];
  let hasVerifier = 1;
}

def Dense_LinearGradOp : Dense_Op<"linear_grad", [Pure]> {
  let summary = "gradient of dense.linear";
  let arguments = (ins AnyRankedTensor:$input, AnyRankedTensor:$weight,
                       AnyRankedTensor:$d_output);
  let results = (outs AnyRankedTensor:$d_input, AnyRankedTensor:$d_weight);
  let assemblyFormat = [{
    $input `,` $weight `,` $d_output attr-dict `:` type(operands) `->`
    type(results)
  }];
  let hasVerifier = 1;
}

def Dense_SwiGluGradOp : Dense_Op<"swiglu_grad", [Pure]> {
  let summary = "gradient of dense.swiglu";
  let arguments = (ins AnyRankedTensor:$input, AnyRankedTensor:$w1,
                       AnyRankedTensor:$w3, AnyRankedTensor:$w2,
                       AnyRankedTensor:$d_output);
  let results = (outs AnyRankedTensor:$d_input, AnyRankedTensor:$d_w1,
                      AnyRankedTensor:$d_w3, AnyRankedTensor:$d_w2);
  let assemblyFormat = [{
    $input `,` $w1 `,` $w3 `,` $w2 `,` $d_output attr-dict `:` type(operands)
    `->` type(results)
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
