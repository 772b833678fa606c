//===- ABI.h - the C ABI compiled training programs call --------*- C++ -*-===//
//
// laer-compile lowers dense, moe and collective ops to calls of these
// functions (declared in the IR with `llvm.emit_c_interface`, hence the
// `_mlir_ciface_` prefix; memrefs arrive as pointers to descriptors).
// `ctx` is the CompiledModel running the step. Every function checks the
// shapes it is given and fails naming the rank, layer and step.
// The op semantics are those of the dense and moe dialects (docs/Dialects);
// gradient functions recompute what their forward would have saved, as the
// *_grad ops take the forward's inputs.
//
//===----------------------------------------------------------------------===//

#ifndef LAER_RUNTIME_COMPILED_ABI_H
#define LAER_RUNTIME_COMPILED_ABI_H

#include "laer/runtime/compiled/MemRef.h"

#include <cstdint>

namespace laer::rt {
using F32x0 = MemRef<float, 0>;
using F32x1 = MemRef<float, 1>;
using F32x2 = MemRef<float, 2>;
using I32x1 = MemRef<std::int32_t, 1>;
using I8x1 = MemRef<std::int8_t, 1>;
} // namespace laer::rt

extern "C" {
using namespace laer::rt;

// Declarations (laer_model_declare).
void _mlir_ciface_laerrt_declare_model(void *ctx, std::int64_t vocab,
                                       std::int64_t sequence);
/// A dense parameter of rank 1 (`d1` = 0) or 2; `fanIn` 0 initialises it to
/// one, -1 to zero, otherwise uniform in +-1/sqrt(fanIn).
void _mlir_ciface_laerrt_declare_dense(void *ctx, std::int64_t index,
                                       std::int64_t d0, std::int64_t d1,
                                       std::int64_t fanIn);
/// The name of dense parameter `index` in the model's files (the IR's
/// #moe.parameter; `name` holds its bytes, `transposed` 0/1).
void _mlir_ciface_laerrt_name_dense(void *ctx, std::int64_t index,
                                    std::int64_t transposed, I8x1 *name);
/// The name of one of MoE layer `layer`'s tensors: `part` 0 gate, 1 w1,
/// 2 w3, 3 w2 (with a '*' for the expert), 4 selection bias.
void _mlir_ciface_laerrt_name_moe(void *ctx, std::int64_t layer,
                                  std::int64_t part, std::int64_t transposed,
                                  I8x1 *name);
/// `score`: 0 softmax, 1 sigmoid; `activation`: 0 silu, 1 gelu, 2 relu.
/// Routing variants (moe.layer's attributes): `scale` (routed scaling
/// factor, 1: none), `groups` / `topGroups` / `groupScore` (0 max, 1 sum of
/// the two best; groups 1: plain top-k), `selectionBias` (0/1) and its
/// `biasUpdateRate`; router losses: `auxLoss` (0 none, 1 micro-batch,
/// 2 global-batch), `zLoss` (0/1).
/// `ranks` and `slots`: the N and C a program of fsep ops was scheduled for
/// (the run must match), or 0 (any N; C from the options).
void _mlir_ciface_laerrt_declare_moe(
    void *ctx, std::int64_t layer, std::int64_t experts, std::int64_t hidden,
    std::int64_t ffn, std::int64_t topK, std::int64_t score,
    std::int64_t renormalize, double scale, std::int64_t groups,
    std::int64_t topGroups, std::int64_t groupScore, std::int64_t selectionBias,
    double biasUpdateRate, std::int64_t auxLoss, std::int64_t zLoss,
    std::int64_t activation, std::int64_t ranks, std::int64_t slots);

// Parameters: a flat view of dense parameter `index`.
void _mlir_ciface_laerrt_dense_parameter(F32x1 *result, void *ctx,
                                         std::int64_t index);

// Dense ops.
void _mlir_ciface_laerrt_embedding(void *ctx, F32x2 *table, I32x1 *ids,
                                   F32x2 *out);
void _mlir_ciface_laerrt_embedding_grad(void *ctx, I32x1 *ids, F32x2 *dOut,
                                        F32x2 *dTable);
void _mlir_ciface_laerrt_rms_norm(void *ctx, F32x2 *x, F32x1 *weight,
                                  double epsilon, F32x2 *out);
void _mlir_ciface_laerrt_rms_norm_grad(void *ctx, F32x2 *x, F32x1 *weight,
                                       F32x2 *dOut, double epsilon, F32x2 *dX,
                                       F32x1 *dWeight);
// Attention: `bq`, `bk`, `bv` (biases) and `qNorm`, `kNorm` (QK-norm
// weights, with `qkNormEpsilon`) are optional: absent ones, and their
// gradients, are empty memrefs (size 0).
void _mlir_ciface_laerrt_attention(void *ctx, F32x2 *x, F32x2 *wq, F32x2 *wk,
                                   F32x2 *wv, F32x2 *wo, F32x1 *bq, F32x1 *bk,
                                   F32x1 *bv, F32x1 *qNorm, F32x1 *kNorm,
                                   std::int64_t heads, std::int64_t kvHeads,
                                   std::int64_t sequence, double ropeTheta,
                                   double qkNormEpsilon, F32x2 *out);
void _mlir_ciface_laerrt_attention_grad(
    void *ctx, F32x2 *x, F32x2 *wq, F32x2 *wk, F32x2 *wv, F32x2 *wo, F32x1 *bq,
    F32x1 *bk, F32x1 *bv, F32x1 *qNorm, F32x1 *kNorm, F32x2 *dOut,
    std::int64_t heads, std::int64_t kvHeads, std::int64_t sequence,
    double ropeTheta, double qkNormEpsilon, F32x2 *dX, F32x2 *dWq, F32x2 *dWk,
    F32x2 *dWv, F32x2 *dWo, F32x1 *dBq, F32x1 *dBk, F32x1 *dBv, F32x1 *dQNorm,
    F32x1 *dKNorm);
// Multi-head latent attention (DeepSeek MLA): the queries come from `wq`,
// or from `wqA`, `qANorm`, `wqB` (query LoRA); the absent form, and its
// gradients, are empty memrefs. `yarnFactor` 0: no YaRN (then the other
// yarn values are unused).
void _mlir_ciface_laerrt_latent_attention(
    void *ctx, F32x2 *x, F32x2 *wq, F32x2 *wqA, F32x1 *qANorm, F32x2 *wqB,
    F32x2 *wkvA, F32x1 *kvANorm, F32x2 *wkvB, F32x2 *wo, std::int64_t heads,
    std::int64_t nope, std::int64_t rope, std::int64_t value,
    std::int64_t sequence, double ropeTheta, double softmaxScale,
    double epsilon, double yarnFactor, std::int64_t yarnOriginal,
    double betaFast, double betaSlow, double attentionFactor, F32x2 *out);
void _mlir_ciface_laerrt_latent_attention_grad(
    void *ctx, F32x2 *x, F32x2 *wq, F32x2 *wqA, F32x1 *qANorm, F32x2 *wqB,
    F32x2 *wkvA, F32x1 *kvANorm, F32x2 *wkvB, F32x2 *wo, F32x2 *dOut,
    std::int64_t heads, std::int64_t nope, std::int64_t rope,
    std::int64_t value, std::int64_t sequence, double ropeTheta,
    double softmaxScale, double epsilon, double yarnFactor,
    std::int64_t yarnOriginal, double betaFast, double betaSlow,
    double attentionFactor, F32x2 *dX, F32x2 *dWq, F32x2 *dWqA, F32x1 *dQANorm,
    F32x2 *dWqB, F32x2 *dWkvA, F32x1 *dKvANorm, F32x2 *dWkvB, F32x2 *dWo);
// y = x weight, or x weight^T with `transposed` (a tied LM head reading
// the embedding table [V, H]).
void _mlir_ciface_laerrt_linear(void *ctx, F32x2 *x, F32x2 *weight,
                                std::int64_t transposed, F32x2 *out);
void _mlir_ciface_laerrt_linear_grad(void *ctx, F32x2 *x, F32x2 *weight,
                                     F32x2 *dOut, std::int64_t transposed,
                                     F32x2 *dX, F32x2 *dWeight);
// Shared experts and dense MLPs: y = (silu(x w1) * (x w3)) w2, x [T, H],
// w1 and w3 [H, S], w2 [S, H], times sigmoid(x gate) per token when `gate`
// [H, 1] is not empty (then `dGate` [H, 1] is its gradient).
void _mlir_ciface_laerrt_swiglu(void *ctx, F32x2 *x, F32x2 *w1, F32x2 *w3,
                                F32x2 *w2, F32x2 *gate, F32x2 *out);
void _mlir_ciface_laerrt_swiglu_grad(void *ctx, F32x2 *x, F32x2 *w1, F32x2 *w3,
                                     F32x2 *w2, F32x2 *gate, F32x2 *dOut,
                                     F32x2 *dX, F32x2 *dW1, F32x2 *dW3,
                                     F32x2 *dW2, F32x2 *dGate);
void _mlir_ciface_laerrt_cross_entropy(void *ctx, F32x2 *logits, I32x1 *targets,
                                       F32x0 *loss);
void _mlir_ciface_laerrt_cross_entropy_grad(void *ctx, F32x2 *logits,
                                            I32x1 *targets, F32x0 *dLoss,
                                            F32x2 *dLogits);

// MoE layers, executed with FSEP by the runtime (router, relayout hook,
// parameter restore, dispatch, experts, combine; backward in reverse with
// the gradient all-to-all). Backward uses the state of the layer's last
// forward in this step.
void _mlir_ciface_laerrt_moe_forward(void *ctx, std::int64_t layer, F32x2 *x,
                                     F32x2 *out);
void _mlir_ciface_laerrt_moe_backward(void *ctx, std::int64_t layer,
                                      F32x2 *dOut, F32x2 *dX);

// Router losses of a MoE layer (moe.layer's or moe.router's aux and z
// results), read after the layer's forward (in an FSEP program: after the
// relayout); their gradients are set before the layer's backward (the
// router's, in an FSEP program).
void _mlir_ciface_laerrt_moe_aux_loss(void *ctx, std::int64_t layer,
                                      F32x0 *out);
void _mlir_ciface_laerrt_moe_z_loss(void *ctx, std::int64_t layer, F32x0 *out);
void _mlir_ciface_laerrt_moe_aux_loss_grad(void *ctx, std::int64_t layer,
                                           F32x0 *dAux);
void _mlir_ciface_laerrt_moe_z_loss_grad(void *ctx, std::int64_t layer,
                                         F32x0 *dZ);

// The FSEP program of a MoE layer, one call per op of the fsep dialect
// (the schedule fsep-schedule chose runs as compiled). The values flowing
// between fsep ops (plan, restored weights, dispatched rows, routing) stay
// in the runtime's layer; only the layer's input and outputs are memrefs.
// A transfer op is a start call and its fsep.wait a finish call; a phase
// called out of order fails naming the rank, layer and step. Outputs that
// are memrefs are overwritten with the chunk's share.
/// moe.router of an FSEP layer: routes this rank's tokens `x` [T, H].
void _mlir_ciface_laerrt_fsep_route(void *ctx, std::int64_t layer, F32x2 *x);
/// fsep.relayout (with this step's fsep.local_counts): the planner's plan.
void _mlir_ciface_laerrt_fsep_relayout(void *ctx, std::int64_t layer);
void _mlir_ciface_laerrt_fsep_restore(void *ctx, std::int64_t layer);
void _mlir_ciface_laerrt_fsep_restore_wait(void *ctx, std::int64_t layer);
void _mlir_ciface_laerrt_fsep_dispatch(void *ctx, std::int64_t layer,
                                       std::int64_t chunk, std::int64_t chunks);
void _mlir_ciface_laerrt_fsep_dispatch_wait(void *ctx, std::int64_t layer,
                                            std::int64_t chunk);
void _mlir_ciface_laerrt_fsep_expert_compute(void *ctx, std::int64_t layer,
                                             std::int64_t chunk);
void _mlir_ciface_laerrt_fsep_combine(void *ctx, std::int64_t layer,
                                      std::int64_t chunk);
void _mlir_ciface_laerrt_fsep_combine_wait(void *ctx, std::int64_t layer,
                                           std::int64_t chunk, F32x2 *out);
void _mlir_ciface_laerrt_fsep_combine_backward(void *ctx, std::int64_t layer,
                                               std::int64_t chunk, F32x2 *dOut);
void _mlir_ciface_laerrt_fsep_combine_backward_wait(void *ctx,
                                                    std::int64_t layer,
                                                    std::int64_t chunk);
void _mlir_ciface_laerrt_fsep_expert_compute_backward(void *ctx,
                                                      std::int64_t layer,
                                                      std::int64_t chunk);
void _mlir_ciface_laerrt_fsep_dispatch_backward(void *ctx, std::int64_t layer,
                                                std::int64_t chunk);
void _mlir_ciface_laerrt_fsep_dispatch_backward_wait(void *ctx,
                                                     std::int64_t layer,
                                                     std::int64_t chunk,
                                                     F32x2 *dX);
void _mlir_ciface_laerrt_fsep_grad_reduce(void *ctx, std::int64_t layer);
void _mlir_ciface_laerrt_fsep_grad_reduce_wait(void *ctx, std::int64_t layer);
/// moe.router_grad: the router's share of d(x) [T, H]; the gate gradient
/// stays in the runtime.
void _mlir_ciface_laerrt_fsep_router_backward(void *ctx, std::int64_t layer,
                                              F32x2 *dX);

// Data parallelism and the optimizer.
/// In place: the mean of `grad` over all ranks.
void _mlir_ciface_laerrt_allreduce_mean(void *ctx, F32x1 *grad);
/// AdamW on dense parameter `index` with its moments (held by the runtime).
void _mlir_ciface_laerrt_adamw(void *ctx, std::int64_t index, F32x1 *param,
                               F32x1 *grad);
/// Averages the layer's expert and gate gradients over the ranks and steps
/// its FSEP shards and gate with AdamW.
void _mlir_ciface_laerrt_moe_update(void *ctx, std::int64_t layer);
}

#endif // LAER_RUNTIME_COMPILED_ABI_H
