//===- DenseKernels.h - CPU kernels of the dense transformer ops -*- C++ -*-===//
//
// Forward and backward of the `dense` dialect's ops on one rank, row-major,
// for float (training) and double (gradient checks). Plain loops plus BLAS
// GEMMs; the shapes follow the ops' documentation. Backward functions
// accumulate weight gradients (+=) and overwrite input gradients.
//
//===----------------------------------------------------------------------===//

#ifndef LAER_RUNTIME_CPU_DENSEKERNELS_H
#define LAER_RUNTIME_CPU_DENSEKERNELS_H

#include <cstdint>
#include <span>
#include <vector>

namespace laer::rt::cpu {

/// C[m, n] = alpha * op(A) * op(B) + beta * C for float (sgemm) and double
/// (dgemm).
template <typename T>
void gemmT(bool transA, bool transB, std::int64_t m, std::int64_t n,
           std::int64_t k, T alpha, const T *a, const T *b, T beta, T *c);

// Embedding: output[t] = table[ids[t]]; table [V, H].
template <typename T>
void embeddingForward(std::span<const T> table, std::span<const std::int32_t> ids,
                      std::int64_t vocab, std::int64_t hidden,
                      std::span<T> output);
template <typename T>
void embeddingBackward(std::span<const std::int32_t> ids,
                       std::span<const T> dOutput, std::int64_t vocab,
                       std::int64_t hidden, std::span<T> dTable);

// RMSNorm over rows of [T, H]; `invRms` [T] is saved for backward.
template <typename T>
void rmsNormForward(std::span<const T> input, std::span<const T> weight,
                    std::int64_t tokens, std::int64_t hidden, double epsilon,
                    std::span<T> output, std::span<T> invRms);
template <typename T>
void rmsNormBackward(std::span<const T> input, std::span<const T> weight,
                     std::span<const T> invRms, std::span<const T> dOutput,
                     std::int64_t tokens, std::int64_t hidden,
                     std::span<T> dInput, std::span<T> dWeight);

struct AttentionShape {
  std::int64_t tokens = 0;
  std::int64_t hidden = 0;
  std::int64_t heads = 1;
  std::int64_t kvHeads = 1;
  std::int64_t sequenceLength = 1;
  double ropeTheta = 10000.0;
  std::int64_t headSize() const { return hidden / heads; }
  std::int64_t kvWidth() const { return kvHeads * headSize(); }
};

template <typename T> struct AttentionSaved {
  std::vector<T> q, k, v;   // after the projections, q and k rotated
  std::vector<T> probs;     // [heads][T][S]: softmax within each sequence
  std::vector<T> context;   // [T, H] before the output projection
};

/// Causal grouped-query self-attention with rotary position embedding
/// (half-split rotation as in Llama/Mixtral).
template <typename T>
void attentionForward(std::span<const T> input, std::span<const T> wq,
                      std::span<const T> wk, std::span<const T> wv,
                      std::span<const T> wo, const AttentionShape &shape,
                      std::span<T> output, AttentionSaved<T> &saved);
template <typename T>
void attentionBackward(std::span<const T> input, std::span<const T> wq,
                       std::span<const T> wk, std::span<const T> wv,
                       std::span<const T> wo, const AttentionShape &shape,
                       const AttentionSaved<T> &saved,
                       std::span<const T> dOutput, std::span<T> dInput,
                       std::span<T> dWq, std::span<T> dWk, std::span<T> dWv,
                       std::span<T> dWo);

/// Mean cross-entropy of rows of `logits` [T, V]; `probs` [T, V] saved.
template <typename T>
T crossEntropyForward(std::span<const T> logits,
                      std::span<const std::int32_t> targets,
                      std::int64_t tokens, std::int64_t vocab,
                      std::span<T> probs);
template <typename T>
void crossEntropyBackward(std::span<const T> probs,
                          std::span<const std::int32_t> targets,
                          std::int64_t tokens, std::int64_t vocab, T dLoss,
                          std::span<T> dLogits);

} // namespace laer::rt::cpu

#endif // LAER_RUNTIME_CPU_DENSEKERNELS_H
