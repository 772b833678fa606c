//===- RouterKernels.cu - router scores and top-k on the GPU -------------===//

#include "laer/runtime/Error.h"
#include "laer/runtime/cuda/Kernels.h"

namespace laer::rt::cuda {

namespace {

/// One thread per token: experts per token are few (8 to 256), and the
/// logits GEMM dominates the router's time.
__global__ void routerTopKKernel(const float *logits, std::int64_t tokens,
                                 int experts, int topK, bool softmax,
                                 bool renormalize, float *scores,
                                 std::int32_t *indices, float *weights) {
  std::int64_t t = blockIdx.x * static_cast<std::int64_t>(blockDim.x) +
                   threadIdx.x;
  if (t >= tokens)
    return;
  const float *in = logits + t * experts;
  float *row = scores + t * experts;
  if (softmax) {
    float max = in[0];
    for (int e = 1; e < experts; ++e)
      max = fmaxf(max, in[e]);
    float sum = 0.0f;
    for (int e = 0; e < experts; ++e)
      sum += row[e] = expf(in[e] - max);
    for (int e = 0; e < experts; ++e)
      row[e] /= sum;
  } else {
    for (int e = 0; e < experts; ++e)
      row[e] = 1.0f / (1.0f + expf(-in[e]));
  }
  // The j-th choice is the best expert ranked after choice j - 1 in the
  // order (score descending, index ascending): no per-thread arrays.
  float previous = INFINITY, selected = 0.0f;
  int previousIndex = -1;
  for (int j = 0; j < topK; ++j) {
    int best = -1;
    float bestScore = 0.0f;
    for (int e = 0; e < experts; ++e) {
      float s = row[e];
      bool after = s < previous || (s == previous && e > previousIndex);
      if (after && (best < 0 || s > bestScore)) {
        best = e;
        bestScore = s;
      }
    }
    indices[t * topK + j] = best;
    weights[t * topK + j] = bestScore;
    selected += bestScore;
    previous = bestScore;
    previousIndex = best;
  }
  if (renormalize)
    for (int j = 0; j < topK; ++j)
      weights[t * topK + j] /= selected;
}

/// One thread per token, like the forward: only the k chosen scores have
/// a gradient of their own.
__global__ void routerBackwardKernel(const float *scores,
                                     const std::int32_t *indices,
                                     const float *weights,
                                     const float *dWeights,
                                     std::int64_t tokens, int experts,
                                     int topK, bool softmax, bool renormalize,
                                     float *dLogits) {
  std::int64_t t = blockIdx.x * static_cast<std::int64_t>(blockDim.x) +
                   threadIdx.x;
  if (t >= tokens)
    return;
  const float *s = scores + t * experts;
  const std::int32_t *idx = indices + t * topK;
  const float *w = weights + t * topK, *dw = dWeights + t * topK;
  float *dl = dLogits + t * experts;
  // w_j = s_j / S when renormalised: ds_j = (dw_j - sum_i dw_i w_i) / S.
  float selected = 0.0f, dot = 0.0f;
  if (renormalize)
    for (int j = 0; j < topK; ++j) {
      selected += s[idx[j]];
      dot += dw[j] * w[j];
    }
  auto dScore = [&](int j) {
    return renormalize ? (dw[j] - dot) / selected : dw[j];
  };
  if (softmax) {
    float inner = 0.0f;
    for (int j = 0; j < topK; ++j)
      inner += dScore(j) * s[idx[j]];
    for (int e = 0; e < experts; ++e)
      dl[e] = -s[e] * inner;
    for (int j = 0; j < topK; ++j)
      dl[idx[j]] += s[idx[j]] * dScore(j);
  } else {
    for (int e = 0; e < experts; ++e)
      dl[e] = 0.0f;
    for (int j = 0; j < topK; ++j) {
      float v = s[idx[j]];
      dl[idx[j]] = dScore(j) * v * (1.0f - v);
    }
  }
}

} // namespace

void routerBackwardLogits(const float *scores, const std::int32_t *indices,
                          const float *weights, const float *dWeights,
                          std::int64_t tokens, int experts, int topK,
                          ScoreFunction score, bool renormalize,
                          float *dLogits, cudaStream_t stream) {
  if (tokens == 0)
    return;
  constexpr int kThreads = 128;
  auto blocks = static_cast<unsigned>((tokens + kThreads - 1) / kThreads);
  routerBackwardKernel<<<blocks, kThreads, 0, stream>>>(
      scores, indices, weights, dWeights, tokens, experts, topK,
      score == ScoreFunction::Softmax, renormalize, dLogits);
  check(cudaGetLastError(), "routerBackwardLogits launch");
}

void routerTopK(const float *logits, std::int64_t tokens, int experts,
                      int topK, ScoreFunction score, bool renormalize,
                      float *scores, std::int32_t *indices, float *weights,
                      cudaStream_t stream) {
  if (tokens == 0)
    return;
  if (topK < 1 || topK > experts)
    fail({}, "routerTopK: top-k ", topK, " outside [1, ", experts, "]");
  constexpr int kThreads = 128;
  auto blocks = static_cast<unsigned>((tokens + kThreads - 1) / kThreads);
  routerTopKKernel<<<blocks, kThreads, 0, stream>>>(
      logits, tokens, experts, topK, score == ScoreFunction::Softmax,
      renormalize, scores, indices, weights);
  check(cudaGetLastError(), "routerTopK launch");
}

} // namespace laer::rt::cuda
