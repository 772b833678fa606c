//===- DenseKernels.h - CPU kernels of the dense transformer ops -*- C++
//-*-===//
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

/// The same with leading dimensions: A, B and C are blocks of wider
/// row-major rows (an attention head's columns of q, k, v, the context).
/// m, n and k must be at least 1.
template <typename T>
void gemmStrided(bool transA, bool transB, std::int64_t m, std::int64_t n,
                 std::int64_t k, T alpha, const T *a, std::int64_t lda,
                 const T *b, std::int64_t ldb, T beta, T *c, std::int64_t ldc);

// Embedding: output[t] = table[ids[t]]; table [V, H].
template <typename T>
void embeddingForward(std::span<const T> table,
                      std::span<const std::int32_t> ids, std::int64_t vocab,
                      std::int64_t hidden, std::span<T> output);
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
  /// Size of one head; 0 means hidden / heads. Set it where heads * head
  /// size differs from hidden (Qwen3-MoE: hidden 2048, 32 heads of 128).
  std::int64_t headDim = 0;
  /// Epsilon of the QK-norm (when AttentionParams has qNorm and kNorm).
  double qkNormEpsilon = 1e-6;
  std::int64_t headSize() const { return headDim ? headDim : hidden / heads; }
  std::int64_t qWidth() const { return heads * headSize(); }
  std::int64_t kvWidth() const { return kvHeads * headSize(); }
};

/// The parameters of an attention layer, row-major, qW = shape.qWidth(),
/// kvW = shape.kvWidth(), d = shape.headSize():
///  - wq [H, qW], wk [H, kvW], wv [H, kvW], wo [qW, H];
///  - bq [qW], bk [kvW], bv [kvW]: biases added right after the projections
///    (Qwen2-MoE); all three empty, or all three given;
///  - qNorm, kNorm: RMSNorm weights of the QK-norm, applied to q and k after
///    the projections (and biases), before the rotary embedding; both empty
///    or both given. A weight's length picks its form: d normalizes each
///    head's d-vector (Qwen3-MoE), qW (kvW for kNorm) the whole projected row
///    (OLMoE); with one (kv) head the two coincide.
template <typename T> struct AttentionParams {
  std::span<const T> wq = {}, wk = {}, wv = {}, wo = {};
  std::span<const T> bq = {}, bk = {}, bv = {};
  std::span<const T> qNorm = {}, kNorm = {};
};

/// Gradients of AttentionParams, the same sizes as the parameters given and
/// empty where a parameter is absent; attentionBackward accumulates (+=).
template <typename T> struct AttentionGrads {
  std::span<T> wq = {}, wk = {}, wv = {}, wo = {};
  std::span<T> bq = {}, bk = {}, bv = {};
  std::span<T> qNorm = {}, kNorm = {};
};

template <typename T> struct AttentionSaved {
  std::vector<T> q, k, v; // after the projections, q and k normed, rotated
  std::vector<T> probs;   // [heads][T][S]: softmax within each sequence
  std::vector<T> context; // [T, qW] before the output projection
  // With QK-norm only (else empty): q [T, qW] and k [T, kvW] before the
  // norm (after the biases), and the inverse RMS of each normed row.
  std::vector<T> qPreNorm, kPreNorm, qInvRms, kInvRms;
};

/// Causal grouped-query self-attention with rotary position embedding
/// (half-split rotation as in Llama/Mixtral), optional q/k/v biases and
/// optional QK-norm. input and output [T, H].
template <typename T>
void attentionForward(std::span<const T> input,
                      const AttentionParams<T> &params,
                      const AttentionShape &shape, std::span<T> output,
                      AttentionSaved<T> &saved);
/// Overwrites dInput [T, H]; accumulates into grads. `saved` is what
/// attentionForward left for the same input, params and shape.
template <typename T>
void attentionBackward(std::span<const T> input,
                       const AttentionParams<T> &params,
                       const AttentionShape &shape,
                       const AttentionSaved<T> &saved,
                       std::span<const T> dOutput, std::span<T> dInput,
                       const AttentionGrads<T> &grads);

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
