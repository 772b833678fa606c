//===- MoEOps.td - moe dialect operations ------------------*- tablegen -*-===//

#ifndef LAER_DIALECT_MOE_IR_MOEOPS_TD
#define LAER_DIALECT_MOE_IR_MOEOPS_TD

include "laer/Dialect/MoE/IR/MoEDialect.td"
include "laer/Dialect/MoE/IR/MoEAttrs.td"
include "mlir/IR/CommonTypeConstraints.td"
include "mlir/Interfaces/SideEffectInterfaces.td"
include "laer/Interfaces/GradientOpInterface.td"

// Element types are checked by the C++ verifiers so that the diagnostics name
// the operand (`gate`, `w2`, ...) rather than an operand number.
defvar MoE_Tensor = AnyRankedTensor;

// The routing variants of the HF MoE families, shared by moe.router,
// moe.layer and moe.layer_grad (all optional; absent means plain top-k):
// `scale` multiplies the weights (DeepSeek's routed_scaling_factor);
// `groups`/`top_groups`/`group_score` limit the choice to the experts of
// the best groups (DeepSeek's n_group / topk_group); with a
// `selection_bias` operand, `bias_update_rate` is the step of the
// aux-loss-free balancing update the training step applies to it.
defvar MoE_RoutingVariantAttrs = (ins
    OptionalAttr<F64Attr>:$scale,
    OptionalAttr<I64Attr>:$groups,
    OptionalAttr<I64Attr>:$top_groups,
    OptionalAttr<MoE_GroupScoreAttr>:$group_score,
    OptionalAttr<F64Attr>:$bias_update_rate);
defvar MoE_RoutingVariantFormat = [{
    (`scale` `=` $scale^)?
    (`groups` `=` $groups^ `top_groups` `=` $top_groups
     `group_score` `` $group_score)?
    (`bias_update_rate` `=` $bias_update_rate^)?
}];
// The router losses an op returns (or takes the gradients of), in this
// order: the auxiliary load-balancing loss, the z-loss.
defvar MoE_RouterLossAttrs = (ins OptionalAttr<MoE_AuxLossAttr>:$aux_loss,
                                  UnitAttr:$z_loss);
defvar MoE_RouterLossFormat = [{
    (`aux_loss` `` $aux_loss^)? (`z_loss` $z_loss^)?
}];
defvar MoE_RoutingSemantics = [{

    Routing variants (optional attributes, as the HF families use them):
    - `selection_bias(%b)`, `%b` `[E]`: added to the scores for the choice
      of experts only; the weights stay the unbiased scores (DeepSeek-V3's
      `e_score_correction_bias`). It is state, not a trained parameter:
      with `bias_update_rate = u` the training step moves `b[e]` by
      `u * sign(mean load - load of e)` after every step (loads over every
      rank's tokens), and checkpoints keep it.
    - `groups = G top_groups = M group_score<max|top2_sum>`: the E experts
      form G equal groups of consecutive experts; a group's score is its
      best (biased) score or the sum of its two best; only the experts of
      the M best groups may be chosen (DeepSeek `n_group` / `topk_group`).
    - `scale = c`: every weight is multiplied by `c` after the
      renormalisation (DeepSeek's `routed_scaling_factor`).

    Router losses (extra scalar `tensor<f32>` results, in this order):
    - `aux_loss<micro_batch|global_batch>`: the Switch / GShard
      load-balancing loss `E / k * sum_e f_e * P_e`, with `f_e` the share
      of the tokens routed to e (`sum_e f_e = k`) and `P_e` the mean
      routing probability of e over the tokens (softmax scores; sigmoid
      scores divided by their sum); 1 when perfectly balanced. With
      `global_batch`, `f_e` counts the tokens of every data-parallel rank
      (Megatron's global-batch balancing); on one device the two agree.
      With `sequence`, each sequence of the model's `sequence_length` tokens
      (its attention's) has its own loss, from its own loads and mean
      probabilities, and the layer returns their mean (DeepSeek's sequence-
      wise balance loss, `seq_aux`). The model multiplies it by its
      coefficient and adds it to the loss.
    - `z_loss`: the router z-loss `mean_t logsumexp(logits_t)^2` (ST-MoE).
    The choice of experts has no gradient; the losses' gradients flow into
    the input and the gate.
}];

//===----------------------------------------------------------------------===//
// moe.router
//===----------------------------------------------------------------------===//

def MoE_RouterOp : MoE_Op<"router", [Pure]> {
  let summary = "top-k expert selection for every token";
  let description = !strconcat([{
    Computes the router logits `input x gate` (`[T, H] x [H, E] -> [T, E]`),
    turns them into scores with `score` (`softmax` over the experts, or an
    element-wise `sigmoid`), and keeps for every token the `top_k` experts
    with the highest scores, in decreasing order of score (ties go to the
    lower expert index).

    Results:
    - `indices` `[T, top_k]`, integer: the chosen experts of each token;
    - `weights` `[T, top_k]`, float: their scores, divided by their sum when
      `renormalize` is set (so each token's weights add up to one);
    - the router losses asked for (below), each a `tensor<f32>`.
  }], MoE_RoutingSemantics, [{

    Example (Mixtral style: softmax, top-2, renormalised):

    ```mlir
    %idx, %w = moe.router %x, %gate top_k = 2 score<softmax> renormalize
        : (tensor<16x64xf32>, tensor<64x8xf32>)
        -> (tensor<16x2xi32>, tensor<16x2xf32>)
    ```

    DeepSeek-V3 style, with a z-loss:

    ```mlir
    %idx, %w, %z = moe.router %x, %gate selection_bias(%b) top_k = 8
        score<sigmoid> renormalize scale = 2.5
        groups = 8 top_groups = 4 group_score<top2_sum>
        bias_update_rate = 1.0e-03 z_loss
        : (tensor<16x64xf32>, tensor<64x256xf32>, tensor<256xf32>)
        -> (tensor<16x8xi32>, tensor<16x8xf32>, tensor<f32>)
    ```
  }]);
  let arguments = !con((ins MoE_Tensor:$input, MoE_Tensor:$gate,
                            Optional<MoE_Tensor>:$selection_bias,
                            I64Attr:$top_k,
                            MoE_ScoreFunctionAttr:$score,
                            UnitAttr:$renormalize),
                       MoE_RoutingVariantAttrs, MoE_RouterLossAttrs);
  let results = (outs MoE_Tensor:$indices, MoE_Tensor:$weights,
                      Variadic<MoE_Tensor>:$losses);
  let assemblyFormat = !strconcat([{
    $input `,` $gate (`selection_bias` `(` $selection_bias^ `)`)?
    `top_k` `=` $top_k `score` `` $score (`renormalize` $renormalize^)?
  }],
      MoE_RoutingVariantFormat,
      MoE_RouterLossFormat,
      [{
    attr-dict `:` functional-type(operands, results)
  }]);
  let hasVerifier = 1;
  let extraClassDeclaration = [{
    int64_t getNumExperts();
  }];
}

//===----------------------------------------------------------------------===//
// moe.router_grad
//===----------------------------------------------------------------------===//

def MoE_RouterGradOp : MoE_Op<"router_grad", [Pure]> {
  let summary = "gradient of the combine weights of a moe.router";
  let description = [{
    Given the operands of a `moe.router` (`input` `[T, H]`, `gate`
    `[H, E]`), the experts it chose (`indices` `[T, k]`, treated as
    constant) and the gradient of its `weights` (`d_weights` `[T, k]`), the
    gradients of the input and of the gate through the score function,
    renormalisation and `scale`, and with `d_losses(...)` the gradients of
    the router's losses (`aux_loss`, `z_loss`, in that order, as the
    router returned them; the aux loss's loads are those of `indices`, or
    of every rank's with `global_batch`). The training program of an FSEP
    layer uses it beside the fsep backward ops.

    ```mlir
    %dx, %dgate = moe.router_grad %x, %gate, %idx, %dw score<softmax> renormalize
        : (tensor<16x64xf32>, tensor<64x8xf32>, tensor<16x2xi32>, tensor<16x2xf32>)
        -> (tensor<16x64xf32>, tensor<64x8xf32>)
    ```
  }];
  let arguments = !con((ins MoE_Tensor:$input, MoE_Tensor:$gate,
                            MoE_Tensor:$indices, MoE_Tensor:$d_weights,
                            Variadic<MoE_Tensor>:$d_losses,
                            MoE_ScoreFunctionAttr:$score,
                            UnitAttr:$renormalize,
                            OptionalAttr<F64Attr>:$scale),
                       MoE_RouterLossAttrs);
  let results = (outs MoE_Tensor:$d_input, MoE_Tensor:$d_gate);
  let assemblyFormat = !strconcat([{
    $input `,` $gate `,` $indices `,` $d_weights
    (`d_losses` `(` $d_losses^ `)`)? `score` `` $score
    (`renormalize` $renormalize^)? (`scale` `=` $scale^)?
  }],
      MoE_RouterLossFormat,
      [{
    attr-dict `:` functional-type(operands, results)
  }]);
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// moe.dispatch
//===----------------------------------------------------------------------===//

def MoE_DispatchOp : MoE_Op<"dispatch", [Pure]> {
  let summary = "group the (token, choice) rows by expert";
  let description = [{
    Builds the `T * k` rows `input[t]` for every token `t` and choice
    `j < k`, sorted by expert `indices[t, j]` and, within one expert, by
    `(t, j)` (a stable sort). `counts[e]` is the number of rows expert `e`
    receives; rows of expert `e` start at `sum(counts[0..e))`. The number of
    experts `E` is the static length of `counts`.

    ```mlir
    %rows, %counts = moe.dispatch %x, %idx
        : (tensor<16x64xf32>, tensor<16x2xi32>)
        -> (tensor<32x64xf32>, tensor<8xi64>)
    ```
  }];
  let arguments = (ins MoE_Tensor:$input, MoE_Tensor:$indices);
  let results = (outs MoE_Tensor:$rows, MoE_Tensor:$counts);
  let assemblyFormat = [{
    $input `,` $indices attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// moe.experts
//===----------------------------------------------------------------------===//

def MoE_ExpertsOp : MoE_Op<"experts", [Pure]> {
  let summary = "grouped gated feed-forward networks, one per expert";
  let description = [{
    Applies expert `e`'s gated FFN to its block of rows (the `counts[e]`
    rows starting at `sum(counts[0..e))`):

    `out = (act(rows x w1[e]) * (rows x w3[e])) x w2[e]`

    with `w1`, `w3` of shape `[E, H, F]`, `w2` of shape `[E, F, H]` and
    `act` given by `activation` (`silu` makes it the SwiGLU FFN of Mixtral,
    Qwen and DeepSeek). The row counts must add up to the number of rows.

    ```mlir
    %y = moe.experts %rows, %counts, %w1, %w3, %w2 activation<silu>
        : (tensor<32x64xf32>, tensor<8xi64>, tensor<8x64x128xf32>,
           tensor<8x64x128xf32>, tensor<8x128x64xf32>) -> tensor<32x64xf32>
    ```
  }];
  let arguments = (ins MoE_Tensor:$rows, MoE_Tensor:$counts,
                       MoE_Tensor:$w1, MoE_Tensor:$w3, MoE_Tensor:$w2,
                       MoE_ActivationAttr:$activation);
  let results = (outs MoE_Tensor:$output);
  let assemblyFormat = [{
    $rows `,` $counts `,` $w1 `,` $w3 `,` $w2 `activation` `` $activation
    attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// moe.combine
//===----------------------------------------------------------------------===//

def MoE_CombineOp : MoE_Op<"combine", [Pure]> {
  let summary = "weighted sum of every token's expert outputs";
  let description = [{
    Inverse of `moe.dispatch`: `rows` are the `T * k` expert outputs in the
    expert-grouped order that `moe.dispatch` produced from the same
    `indices`; the result is, for every token `t`,
    `sum_j weights[t, j] * rows[pos(t, j)]`.

    ```mlir
    %out = moe.combine %y, %idx, %w
        : (tensor<32x64xf32>, tensor<16x2xi32>, tensor<16x2xf32>)
        -> tensor<16x64xf32>
    ```
  }];
  let arguments = (ins MoE_Tensor:$rows, MoE_Tensor:$indices,
                       MoE_Tensor:$weights);
  let results = (outs MoE_Tensor:$output);
  let assemblyFormat = [{
    $rows `,` $indices `,` $weights attr-dict
    `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// moe.layer
//===----------------------------------------------------------------------===//

def MoE_LayerOp : MoE_Op<"layer", [Pure, AttrSizedOperandSegments,
    DeclareOpInterfaceMethods<GradientOpInterface>]> {
  let summary = "a whole Mixture-of-Experts block";
  let description = !strconcat([{
    The MoE block as a model author writes it: router, routed experts and
    weighted combine, plus optional always-active shared experts
    (DeepSeek/Qwen style) whose output is added to the routed output.

    Operands: `input` `[T, H]`, `gate` `[H, E]`, expert weights `w1`, `w3`
    `[E, H, F]` and `w2` `[E, F, H]`; with `shared(...)`, the shared expert
    weights `shared_w1`, `shared_w3` `[H, S]` and `shared_w2` `[S, H]` (all
    three or none), and with `shared_gate(g)`, `g` `[H, 1]`, the shared
    experts' output of each token is scaled by `sigmoid(input g)` (Qwen-MoE's
    `shared_expert_gate`). Results: `[T, H]`, then the router losses asked
    for. The routing is that of `moe.router`.
  }],
      MoE_RoutingSemantics,
      [{

    `moe-decompose` rewrites it into `moe.router`, `moe.dispatch`,
    `moe.experts` and `moe.combine`.

    ```mlir
    %y = moe.layer %x, %gate, %w1, %w3, %w2
        top_k = 2 score<softmax> renormalize activation<silu>
        : (tensor<16x64xf32>, tensor<64x8xf32>, tensor<8x64x128xf32>,
           tensor<8x64x128xf32>, tensor<8x128x64xf32>) -> tensor<16x64xf32>
    ```
  }]);
  let arguments = !con((ins MoE_Tensor:$input, MoE_Tensor:$gate,
                            MoE_Tensor:$w1, MoE_Tensor:$w3, MoE_Tensor:$w2,
                            Optional<MoE_Tensor>:$shared_w1,
                            Optional<MoE_Tensor>:$shared_w3,
                            Optional<MoE_Tensor>:$shared_w2,
                            Optional<MoE_Tensor>:$shared_gate,
                            Optional<MoE_Tensor>:$selection_bias,
                            I64Attr:$top_k,
                            MoE_ScoreFunctionAttr:$score,
                            UnitAttr:$renormalize,
                            MoE_ActivationAttr:$activation),
                       MoE_RoutingVariantAttrs, MoE_RouterLossAttrs);
  let results = (outs MoE_Tensor:$output, Variadic<MoE_Tensor>:$losses);
  let assemblyFormat = !strconcat([{
    $input `,` $gate `,` $w1 `,` $w3 `,` $w2
    (`shared` `(` $shared_w1^ `,` $shared_w3 `,` $shared_w2 `)`)?
    (`shared_gate` `(` $shared_gate^ `)`)?
    (`selection_bias` `(` $selection_bias^ `)`)?
    `top_k` `=` $top_k `score` `` $score (`renormalize` $renormalize^)?
    `activation` `` $activation
  }],
      MoE_RoutingVariantFormat,
      MoE_RouterLossFormat,
      [{
    attr-dict `:` functional-type(operands, results)
  }]);
  let hasVerifier = 1;
  let extraClassDeclaration = [{
    bool hasSharedExperts() { return getSharedW1() != nullptr; }
  }];
}

//===----------------------------------------------------------------------===//
// moe.layer_grad
//===----------------------------------------------------------------------===//

def MoE_LayerGradOp : MoE_Op<"layer_grad", [Pure, AttrSizedOperandSegments]> {
  let summary = "gradient of a moe.layer without shared experts";
  let description = [{
    Given the forward operands of a `moe.layer` and the gradient of its
    output, the gradients of its input, gate and expert weights (each with
    the type of what it differentiates). The routing decision (top-k) is
    treated as constant, the combine weights are differentiated through the
    score function, renormalisation and scale; `d_losses(...)` are the
    gradients of the router losses the layer returned (in its order). The
    selection bias has no gradient.
  }];
  let arguments = !con((ins MoE_Tensor:$input, MoE_Tensor:$gate,
                            MoE_Tensor:$w1, MoE_Tensor:$w3, MoE_Tensor:$w2,
                            MoE_Tensor:$d_output,
                            Optional<MoE_Tensor>:$selection_bias,
                            Variadic<MoE_Tensor>:$d_losses,
                            I64Attr:$top_k, MoE_ScoreFunctionAttr:$score,
                            UnitAttr:$renormalize,
                            MoE_ActivationAttr:$activation),
                       MoE_RoutingVariantAttrs, MoE_RouterLossAttrs);
  let results = (outs MoE_Tensor:$d_input, MoE_Tensor:$d_gate,
                      MoE_Tensor:$d_w1, MoE_Tensor:$d_w3, MoE_Tensor:$d_w2);
  let assemblyFormat = !strconcat([{
    $input `,` $gate `,` $w1 `,` $w3 `,` $w2 `,` $d_output
    (`selection_bias` `(` $selection_bias^ `)`)?
    (`d_losses` `(` $d_losses^ `)`)?
    `top_k` `=` $top_k `score` `` $score (`renormalize` $renormalize^)?
    `activation` `` $activation
  }],
      MoE_RoutingVariantFormat,
      MoE_RouterLossFormat,
      [{
    attr-dict `:` functional-type(operands, results)
  }]);
  let hasVerifier = 1;
}

#endif // LAER_DIALECT_MOE_IR_MOEOPS_TD
