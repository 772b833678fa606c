//===- FSEPOps.td - fsep dialect operations ----------------*- tablegen -*-===//

#ifndef LAER_DIALECT_FSEP_IR_FSEPOPS_TD
#define LAER_DIALECT_FSEP_IR_FSEPOPS_TD

include "laer/Dialect/FSEP/IR/FSEPDialect.td"
include "laer/Dialect/FSEP/IR/FSEPTypes.td"
include "laer/Dialect/MoE/IR/MoEAttrs.td"
include "mlir/IR/CommonTypeConstraints.td"
include "mlir/Interfaces/SideEffectInterfaces.td"

// Chunk of a software-pipelined exchange: chunk `chunk` of `chunks`, each
// carrying a contiguous share of every (source, replica) block of rows.
defvar FSEP_ChunkAttrs = (ins OptionalAttr<I64Attr>:$chunk,
                              OptionalAttr<I64Attr>:$chunks);

class FSEP_TransferOp<string mnemonic, list<Trait> traits = []>
    : FSEP_Op<mnemonic, traits> {
  code transferDoc = [{
    A transfer: its results may be `!fsep.async<T>` (started, not yet
    complete; the only allowed use is `fsep.wait`), and no in-place update
    may touch its tensor operands between the transfer and its waits.
  }];
}

def FSEP_LocalCountsOp : FSEP_Op<"local_counts", [Pure]> {
  let summary = "how many (token, choice) pairs this rank routes to each expert";
  let description = [{
    `counts[e]` is the number of entries of `indices` `[T, k]` equal to `e`;
    the number of experts is the static length of `counts`. The load the
    planner sees at `fsep.relayout`.

    ```mlir
    %counts = fsep.local_counts %idx : tensor<?x2xi32> -> tensor<8xi64>
    ```
  }];
  let arguments = (ins AnyRankedTensor:$indices);
  let results = (outs AnyRankedTensor:$counts);
  let assemblyFormat = "$indices attr-dict `:` type($indices) `->` type($counts)";
  let hasVerifier = 1;
}

def FSEP_RelayoutOp : FSEP_Op<"relayout"> {
  let summary = "the relayout hook: the planner's plan for one layer";
  let description = [{
    Asks the runtime's planner for the plan of layer `layer` this step.
    Every rank obtains the same plan (the runtime checks it).

    Without operands the layout is planned from the load history of the
    layer (the previous steps' counts, which the runtime keeps), so the plan
    is known at the start of the step and the layer's restore can be
    prefetched while earlier layers compute; how each source's tokens split
    among replicas is still decided from this step's counts, at dispatch.
    With `counts` (this rank's `fsep.local_counts` of this step) the layout
    too follows this step's load, and nothing of the layer can start before
    its router has run.

    ```mlir
    %plan = fsep.relayout layer = 0 : !fsep.plan<experts = 8, ranks = 4, slots = 2>
    %plan = fsep.relayout layer = 0 counts(%counts : tensor<8xi64>)
        : !fsep.plan<experts = 8, ranks = 4, slots = 2>
    ```
  }];
  let arguments = (ins Optional<AnyRankedTensor>:$counts, I64Attr:$layer);
  let results = (outs FSEP_PlanType:$plan);
  let assemblyFormat = [{
    `layer` `=` $layer (`counts` `(` $counts^ `:` type($counts) `)`)?
    attr-dict `:` qualified(type($plan))
  }];
  let hasVerifier = 1;
}

def FSEP_RestoreOp : FSEP_TransferOp<"restore"> {
  let summary = "all-to-all of parameter shards: the full weights of this rank's experts";
  let description = [{
    Every owner sends its shard of the expert in each of this rank's slots;
    the results are the full w1 `[C, H, F]`, w3 `[C, H, F]` and w2
    `[C, F, H]` of the C slots (an empty slot's weights are zero). The
    exchanged volume is the same for every layout.
  }] # transferDoc # [{

    ```mlir
    %w1, %w3, %w2 = fsep.restore %bank, %plan
        : !fsep.experts<experts = 8, hidden = 64, ffn = 128, element = f32, shards = 4, shard = 6144>,
          !fsep.plan<experts = 8, ranks = 4, slots = 2>
        -> tensor<2x64x128xf32>, tensor<2x64x128xf32>, tensor<2x128x64xf32>
    ```
  }];
  let arguments = (ins FSEP_ExpertsType:$experts, FSEP_PlanType:$plan);
  let results = (outs AnyType:$w1, AnyType:$w3, AnyType:$w2);
  let assemblyFormat = [{
    $experts `,` $plan attr-dict `:` qualified(type($experts)) `,`
    qualified(type($plan)) `->` type(results)
  }];
  let hasVerifier = 1;
}

def FSEP_DispatchOp : FSEP_TransferOp<"dispatch"> {
  let summary = "token all-to-all to the replicas that compute them";
  let description = [{
    Sends every (token, choice) pair of `input` `[T, H]` (expert given by
    `indices` `[T, k]`) to a replica of its expert as `plan` routes it.
    Results: the rows this rank receives, grouped by slot (and by source
    rank within a slot), and `slot_counts` `[C]`, the rows of each slot.
  }] # transferDoc;
  let arguments = !con((ins AnyRankedTensor:$input, AnyRankedTensor:$indices,
                            FSEP_PlanType:$plan), FSEP_ChunkAttrs);
  let results = (outs AnyType:$rows, AnyType:$slot_counts);
  let assemblyFormat = [{
    $input `,` $indices `,` $plan attr-dict `:` type($input) `,`
    type($indices) `,` qualified(type($plan)) `->` type(results)
  }];
  let hasVerifier = 1;
}

def FSEP_ExpertComputeOp : FSEP_Op<"expert_compute", [Pure]> {
  let summary = "grouped SwiGLU over the experts in this rank's slots";
  let description = [{
    Slot c's `slot_counts[c]` rows (consecutive in `rows`) go through the
    restored expert of slot c: `(act(x w1[c]) * (x w3[c])) w2[c]`.

    ```mlir
    %y = fsep.expert_compute %rows, %slot_counts, %w1, %w3, %w2 activation<silu>
        : tensor<?x64xf32>, tensor<2xi64>, tensor<2x64x128xf32>,
          tensor<2x64x128xf32>, tensor<2x128x64xf32> -> tensor<?x64xf32>
    ```
  }];
  let arguments = !con((ins AnyRankedTensor:$rows, AnyRankedTensor:$slot_counts,
                            AnyRankedTensor:$w1, AnyRankedTensor:$w3,
                            AnyRankedTensor:$w2,
                            MoE_ActivationAttr:$activation), FSEP_ChunkAttrs);
  let results = (outs AnyRankedTensor:$output);
  let assemblyFormat = [{
    $rows `,` $slot_counts `,` $w1 `,` $w3 `,` $w2 `activation` `` $activation
    attr-dict `:` type($rows) `,` type($slot_counts) `,` type($w1) `,`
    type($w3) `,` type($w2) `->` type($output)
  }];
  let hasVerifier = 1;
}

def FSEP_CombineOp : FSEP_TransferOp<"combine"> {
  let summary = "token all-to-all back to the sources and weighted sum";
  let description = [{
    The reverse of `fsep.dispatch` with the same plan: the expert outputs
    `rows` travel back to their source ranks, where every token's `k`
    outputs are summed with its combine `weights` `[T, k]`; the result is
    `[T, H]`.
  }] # transferDoc;
  let arguments = !con((ins AnyRankedTensor:$rows, AnyRankedTensor:$indices,
                            AnyRankedTensor:$weights, FSEP_PlanType:$plan),
                       FSEP_ChunkAttrs);
  let results = (outs AnyType:$output);
  let assemblyFormat = [{
    $rows `,` $indices `,` $weights `,` $plan attr-dict `:` type($rows) `,`
    type($indices) `,` type($weights) `,` qualified(type($plan)) `->`
    type($output)
  }];
  let hasVerifier = 1;
}

def FSEP_CombineBackwardOp : FSEP_TransferOp<"combine_backward"> {
  let summary = "gradient of fsep.combine";
  let description = [{
    Given `d_output` `[T, H]` at the sources and the expert outputs `rows`
    of the forward (receive layout), sends each pair's `weight * d_output`
    to the expert that computed it (`d_rows`, receive layout) and returns
    `d_weights[t, j] = <d_output[t], y(t, j)>` `[T, k]` at the source.
    With `chunk`, only the pairs of that chunk of the forward's exchange
    (`rows` is that chunk's expert output); the other entries of
    `d_weights` are zero.
  }] # transferDoc;
  let arguments = !con((ins AnyRankedTensor:$d_output, AnyRankedTensor:$rows,
                            AnyRankedTensor:$indices, AnyRankedTensor:$weights,
                            FSEP_PlanType:$plan), FSEP_ChunkAttrs);
  let results = (outs AnyType:$d_rows, AnyType:$d_weights);
  let assemblyFormat = [{
    $d_output `,` $rows `,` $indices `,` $weights `,` $plan attr-dict `:`
    type($d_output) `,` type($rows) `,` type($indices) `,` type($weights) `,`
    qualified(type($plan)) `->` type(results)
  }];
  let hasVerifier = 1;
}

def FSEP_ExpertComputeBackwardOp
    : FSEP_Op<"expert_compute_backward", [Pure]> {
  let summary = "gradient of fsep.expert_compute";
  let description = [{
    Input-row gradients `d_rows_in` `[R, H]` and full weight gradients of
    the slots' experts `d_w1`, `d_w3` `[C, H, F]`, `d_w2` `[C, F, H]`.
    With `chunk`, the weight gradients are those of that chunk's rows only:
    the chunks' gradients add up to the layer's.
  }];
  let arguments = !con((ins AnyRankedTensor:$rows,
                            AnyRankedTensor:$slot_counts,
                            AnyRankedTensor:$w1, AnyRankedTensor:$w3,
                            AnyRankedTensor:$w2, AnyRankedTensor:$d_rows,
                            MoE_ActivationAttr:$activation), FSEP_ChunkAttrs);
  let results = (outs AnyRankedTensor:$d_rows_in, AnyRankedTensor:$d_w1,
                      AnyRankedTensor:$d_w3, AnyRankedTensor:$d_w2);
  let assemblyFormat = [{
    $rows `,` $slot_counts `,` $w1 `,` $w3 `,` $w2 `,` $d_rows `activation`
    `` $activation attr-dict `:` type(operands) `->` type(results)
  }];
  let hasVerifier = 1;
}

def FSEP_DispatchBackwardOp : FSEP_TransferOp<"dispatch_backward"> {
  let summary = "gradient of fsep.dispatch";
  let description = [{
    Sends the input-row gradients `d_rows` (receive layout) back to their
    source ranks and sums each token's `k` of them: `d_input` `[T, H]`
    (with `chunk`: the sum over that chunk's pairs).
  }] # transferDoc;
  let arguments = !con((ins AnyRankedTensor:$d_rows, AnyRankedTensor:$indices,
                            FSEP_PlanType:$plan), FSEP_ChunkAttrs);
  let results = (outs AnyType:$d_input);
  let assemblyFormat = [{
    $d_rows `,` $indices `,` $plan attr-dict `:` type($d_rows) `,`
    type($indices) `,` qualified(type($plan)) `->` type($d_input)
  }];
  let hasVerifier = 1;
}

def FSEP_GradReduceOp : FSEP_TransferOp<"grad_reduce"> {
  let summary = "all-to-all of weight gradients to their owners, summed over replicas";
  let description = [{
    Slice r of each slot's full weight gradient goes to owner r, which sums
    what the replicas of each expert send (a sparse reduce-scatter). The
    result is this rank's gradient shard of every expert, laid out like the
    parameter shards of `experts`: `[E, shard]`.
  }] # transferDoc;
  let arguments = (ins AnyRankedTensor:$d_w1, AnyRankedTensor:$d_w3,
                       AnyRankedTensor:$d_w2, FSEP_PlanType:$plan,
                       FSEP_ExpertsType:$experts);
  let results = (outs AnyType:$grad);
  let assemblyFormat = [{
    $d_w1 `,` $d_w3 `,` $d_w2 `,` $plan `,` $experts attr-dict `:`
    type($d_w1) `,` type($d_w3) `,` type($d_w2) `,` qualified(type($plan))
    `,` qualified(type($experts)) `->` type($grad)
  }];
  let hasVerifier = 1;
}

def FSEP_WaitOp : FSEP_Op<"wait", [
    TypesMatchWith<"the result is the awaited value", "async", "value",
                   "::llvm::cast<::laer::fsep::AsyncType>($_self).getValueType()">]> {
  let summary = "completes a transfer and yields its value";
  let description = [{
    Blocks until the transfer that produced `async` has completed (on the
    GPU: the consuming stream waits for the transfer's event) and yields
    the transferred value. Every `!fsep.async` value is used by exactly
    this op; `fsep-schedule` places it right before the value's first use.

    ```mlir
    %w1 = fsep.wait %a1 : !fsep.async<tensor<2x64x128xf32>>
    ```
  }];
  let arguments = (ins FSEP_AsyncType:$async);
  let results = (outs AnyType:$value);
  let assemblyFormat = "$async attr-dict `:` qualified(type($async))";
}

#endif // LAER_DIALECT_FSEP_IR_FSEPOPS_TD
