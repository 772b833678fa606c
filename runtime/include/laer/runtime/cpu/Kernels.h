//===- Kernels.h - CPU kernels of an MoE layer ------------------*- C++ -*-===//
//
// float32, row-major, single-threaded per call (ranks are the parallelism).
// GEMMs go to OpenBLAS; the element-wise parts are plain loops.
//
//===----------------------------------------------------------------------===//

#ifndef LAER_RUNTIME_CPU_KERNELS_H
#define LAER_RUNTIME_CPU_KERNELS_H

#include "laer/runtime/MoEFunctions.h"

#include <cstdint>
#include <span>
#include <vector>

namespace laer::rt {
namespace cpu {

/// C[m, n] = alpha * op(A) * op(B) + beta * C, row-major (cblas_sgemm).
void gemm(bool transA, bool transB, std::int64_t m, std::int64_t n,
          std::int64_t k, float alpha, const float *a, const float *b,
          float beta, float *c);

struct RouterOutput {
  std::vector<std::int32_t> indices; // [T, k], best first
  std::vector<float> weights;        // [T, k]
  std::vector<float> scores;         // [T, E], kept for backward
  std::vector<float> logits;         // [T, E] = x * gate
  std::vector<float> logSumExp;      // [T], of the logits (z-loss)
};

/// logits = x [T, H] * gate [H, E]; scores by `routing.score`; per token
/// the top-k of scores + `bias` (`bias` [E] only with
/// routing.selectionBias; ties to the lower expert) among the experts of
/// the best groups; weights are the chosen unbiased scores, renormalised
/// when asked, times routing.scale.
RouterOutput routerForward(std::span<const float> x,
                           std::span<const float> gate,
                           std::span<const float> bias, std::int64_t tokens,
                           std::int64_t hidden, int numExperts, int topK,
                           const RoutingConfig &routing);

/// The router losses of the tokens in `saved`:
/// aux = E / k * sum_e f_e * P_e with f_e = `loads`[e] / `loadTokens` (the
/// tokens' share routed to e: sum_e f_e = k) and P_e the mean over the
/// tokens of their routing probability of e (softmax scores, or sigmoid
/// scores divided by their sum); 1 when perfectly balanced. z = mean over
/// the tokens of logsumexp(logits)^2.
struct RouterLosses {
  double aux = 0, z = 0;
};
/// With `sequenceLength` > 0 the aux loss is each sequence's (its loads
/// from `saved.indices`, `loads` unused) averaged over the sequences.
RouterLosses routerLosses(const RouterOutput &saved,
                          std::span<const std::int64_t> loads,
                          std::int64_t loadTokens, std::int64_t tokens,
                          int numExperts, int topK, ScoreFunction score,
                          std::int64_t sequenceLength = 0);

/// The tokens each aux-loss group spans: a sequence of `sequenceLength`
/// (> 0), or all `tokens`; fails unless the tokens are whole sequences.
std::int64_t auxSpan(std::int64_t tokens, std::int64_t sequenceLength);

/// The router losses from what routerLosses reduces the tokens to (the GPU
/// layer reduces on its device): `probabilitySums` [G][E], each group's sum
/// over its tokens of their routing probabilities, with G = tokens /
/// auxSpan; `logSumExpSquares`, the sum over the tokens of
/// logsumexp(logits)^2; the router's choices `indices` [T, k] (the
/// per-sequence loads) and the loads of the other aux variants.
RouterLosses routerLossesFrom(std::span<const double> probabilitySums,
                              double logSumExpSquares,
                              std::span<const std::int32_t> indices,
                              std::span<const std::int64_t> loads,
                              std::int64_t loadTokens, std::int64_t tokens,
                              int numExperts, int topK,
                              std::int64_t sequenceLength);

/// Expert loads [E] of tokens [first, first + count) by their choices
/// `indices` [T, k].
std::vector<std::int64_t> choiceCounts(std::span<const std::int32_t> indices,
                                       std::int64_t first, std::int64_t count,
                                       int numExperts, int topK);

/// d(aux)/d(p_te) [E] for the tokens of one aux group: dAux * E / (k T) *
/// f_e, with f_e = loads[e] / loadTokens the group's load share.
void auxProbabilityGradient(float dAux, std::span<const std::int64_t> loads,
                            std::int64_t loadTokens, std::int64_t tokens,
                            int numExperts, int topK, std::span<float> dP);

/// auxProbabilityGradient of every aux group of `tokens` (a sequence of
/// `sequenceLength` > 0, its loads from `indices`; or all of them, with
/// `loads` and `loadTokens`): [groups][E].
std::vector<float>
auxProbabilityGradients(float dAux, std::span<const std::int32_t> indices,
                        std::span<const std::int64_t> loads,
                        std::int64_t loadTokens, std::int64_t tokens,
                        int numExperts, int topK, std::int64_t sequenceLength);

/// DeepSeek-V3's aux-loss-free balancing after a step: bias[e] += rate *
/// sign(mean load - load[e]), from the step's expert loads over every rank.
void updateSelectionBias(std::span<float> bias,
                         std::span<const std::int64_t> loads, float rate);

/// Gradients of the router losses entering the backward: d(loss)/d(aux) and
/// d(loss)/d(z), with the loads the aux loss was computed from.
struct RouterLossGradients {
  float dAux = 0, dZ = 0;
  std::span<const std::int64_t> loads;
  std::int64_t loadTokens = 0;
  /// > 0: the aux loss is per sequence of this many tokens (loads from the
  /// router's choices, `loads` unused).
  std::int64_t sequenceLength = 0;
};

/// Gradient of the router given d(weights) [T, k] (and the losses'
/// gradients): accumulates into `dx` [T, H] and `dGate` [H, E]. The
/// selection (bias, groups) has no gradient.
void routerBackward(std::span<const float> x, std::span<const float> gate,
                    const RouterOutput &saved, std::span<const float> dWeights,
                    std::int64_t tokens, std::int64_t hidden, int numExperts,
                    int topK, const RoutingConfig &routing,
                    const RouterLossGradients &losses, std::span<float> dx,
                    std::span<float> dGate);

/// act(v) and its derivative for the expert activations.
template <typename T> T activate(Activation activation, T v);
template <typename T> T activateDerivative(Activation activation, T v);

/// What a gated FFN's forward keeps for backward.
template <typename T> struct GatedFfnSaved {
  std::vector<T> gateProj; // x * w1 [n, F]
  std::vector<T> upProj;   // x * w3 [n, F]
};
using SwiGluSaved = GatedFfnSaved<float>;

/// Working buffers of gatedFfnForward/Backward. A caller that runs them
/// every step keeps one, so the buffers are allocated (and their pages
/// faulted in) once, not in every call.
template <typename T> struct GatedFfnScratch {
  std::vector<T> act, actDerivative, hiddenAct, dHidden, dGateProj, dUpProj;
};
using SwiGluScratch = GatedFfnScratch<float>;

/// y [n, H] = (act(x w1) * (x w3)) w2 with w1, w3 [H, F] and w2 [F, H]:
/// one expert, or the shared experts of a layer (dense.swiglu). float for
/// training, double for gradient checks.
template <typename T>
void gatedFfnForward(std::span<const T> x, const T *w1, const T *w3,
                     const T *w2, std::int64_t rows, std::int64_t hidden,
                     std::int64_t ffn, Activation activation, std::span<T> y,
                     GatedFfnSaved<T> &saved,
                     GatedFfnScratch<T> *scratch = nullptr);

/// Gradients of gatedFfnForward: `dx` [n, H] is overwritten; `dw1`, `dw3`,
/// `dw2` are overwritten, or added to when `accumulate` (the rows of one
/// expert arrive in several chunks).
template <typename T>
void gatedFfnBackward(std::span<const T> x, const T *w1, const T *w3,
                      const T *w2, const GatedFfnSaved<T> &saved,
                      std::span<const T> dy, std::int64_t rows,
                      std::int64_t hidden, std::int64_t ffn,
                      Activation activation, std::span<T> dx, T *dw1, T *dw3,
                      T *dw2, bool accumulate,
                      GatedFfnScratch<T> *scratch = nullptr);

/// Scales each row t of `y` [n, H] (in place) by sigmoid(x[t] . gate),
/// `gate` [H]: Qwen-MoE's shared-expert gate. `gateValues` [n] is saved.
template <typename T>
void sigmoidGateForward(std::span<const T> x, std::span<const T> gate,
                        std::int64_t rows, std::int64_t hidden, std::span<T> y,
                        std::span<T> gateValues);

/// Gradients of sigmoidGateForward given `ungated`, the rows before the
/// scaling: `dUngated` is overwritten; `dx` and `dGate` are added to.
template <typename T>
void sigmoidGateBackward(std::span<const T> x, std::span<const T> gate,
                         std::span<const T> ungated,
                         std::span<const T> gateValues,
                         std::span<const T> dOutput, std::int64_t rows,
                         std::int64_t hidden, std::span<T> dUngated,
                         std::span<T> dx, std::span<T> dGate);

/// gatedFfnForward for one expert whose flattened weights are `weights` =
/// w1 [H, F] | w3 [H, F] | w2 [F, H].
void swigluForward(std::span<const float> x, std::span<const float> weights,
                   std::int64_t rows, std::int64_t hidden, std::int64_t ffn,
                   Activation activation, std::span<float> y,
                   SwiGluSaved &saved, SwiGluScratch *scratch = nullptr);

/// gatedFfnBackward for one expert; `dWeights` is flattened like `weights`.
void swigluBackward(std::span<const float> x, std::span<const float> weights,
                    const SwiGluSaved &saved, std::span<const float> dy,
                    std::int64_t rows, std::int64_t hidden, std::int64_t ffn,
                    Activation activation, std::span<float> dx,
                    std::span<float> dWeights, bool accumulate = false,
                    SwiGluScratch *scratch = nullptr);

} // namespace cpu
} // namespace laer::rt

#endif // LAER_RUNTIME_CPU_KERNELS_H
