//===- LatentAttentionKernels.h - MLA forward and backward ----*- C++ -*-===//
//
// DeepSeek-V2/V3 multi-head latent attention (dense.latent_attention) on
// one rank, row-major, float and double. Backward accumulates the weight
// gradients (+=) and overwrites the input gradient.
//
//===----------------------------------------------------------------------===//

#ifndef LAER_RUNTIME_CPU_LATENTATTENTIONKERNELS_H
#define LAER_RUNTIME_CPU_LATENTATTENTIONKERNELS_H

#include "laer/runtime/cpu/CausalAttention.h"

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

namespace laer::rt::cpu {

struct LatentAttentionShape {
  std::int64_t tokens = 0, hidden = 0, heads = 1, sequenceLength = 1;
  /// DeepSeek's qk_nope_head_dim, qk_rope_head_dim, v_head_dim.
  std::int64_t nopeDim = 0, ropeDim = 0, valueDim = 0;
  double ropeTheta = 10000.0, softmaxScale = 1.0, epsilon = 1e-6;
  std::optional<YarnScaling> yarn;

  std::int64_t qkDim() const { return nopeDim + ropeDim; }
  std::int64_t qWidth() const { return heads * qkDim(); }
  std::int64_t kvWidth() const { return heads * (nopeDim + valueDim); }
};

/// Row-major parameters (n heads, dq = nope + rope, Rq and Rkv the LoRA
/// ranks): queries from wq [H, n dq], or from wqA [H, Rq], qANorm [Rq],
/// wqB [Rq, n dq] (wq empty); wkvA [H, Rkv + rope], kvANorm [Rkv],
/// wkvB [Rkv, n (nope + v)], wo [n v, H].
template <typename T> struct LatentAttentionParams {
  std::span<const T> wq = {}, wqA = {}, qANorm = {}, wqB = {};
  std::span<const T> wkvA = {}, kvANorm = {}, wkvB = {}, wo = {};
};
template <typename T> struct LatentAttentionGrads {
  std::span<T> wq = {}, wqA = {}, qANorm = {}, wqB = {};
  std::span<T> wkvA = {}, kvANorm = {}, wkvB = {}, wo = {};
};

/// What backward needs from forward.
template <typename T> struct LatentAttentionSaved {
  std::vector<T> qA, qAInvRms, qANormed; // query LoRA only
  std::vector<T> latent, latentInvRms, latentNormed;
  std::vector<T> q, k, v; // per head, rotated: [T, n dq], [T, n dq], [T, n v]
  std::vector<T> probs, context;
};

template <typename T>
void latentAttentionForward(std::span<const T> input,
                            const LatentAttentionParams<T> &params,
                            const LatentAttentionShape &shape,
                            std::span<T> output,
                            LatentAttentionSaved<T> &saved);
template <typename T>
void latentAttentionBackward(std::span<const T> input,
                             const LatentAttentionParams<T> &params,
                             const LatentAttentionShape &shape,
                             const LatentAttentionSaved<T> &saved,
                             std::span<const T> dOutput, std::span<T> dInput,
                             const LatentAttentionGrads<T> &grads);

} // namespace laer::rt::cpu

#endif // LAER_RUNTIME_CPU_LATENTATTENTIONKERNELS_H
