//===- RouterKernels.cu - router scores, top-k and losses on the GPU -----===//
//
// The device twins of cpu/RouterKernels.cpp: the same arithmetic in the
// same order per token, so a GPU layer chooses the experts a CPU layer
// does (test/unit/cuda compares them).
//
//===----------------------------------------------------------------------===//

#include "laer/runtime/Error.h"
#include "laer/runtime/cuda/Kernels.h"

namespace laer::rt::cuda {

namespace {

/// What the experts are ranked by: the score, plus the selection bias.
__device__ float choiceValue(const float *row, const float *bias, int e) {
  return bias ? row[e] + bias[e] : row[e];
}

/// A group's rank: its best choice value, or the sum of its two best.
__device__ float groupRank(const float *row, const float *bias, int group,
                           int size, GroupScore how) {
  float best = -INFINITY, second = -INFINITY;
  for (int i = 0; i < size; ++i) {
    float c = choiceValue(row, bias, group * size + i);
    if (c > best) {
      second = best;
      best = c;
    } else if (c > second) {
      second = c;
    }
  }
  return how == GroupScore::Max ? best : best + second;
}

/// One thread per token: experts per token are few (8 to 256), and the
/// logits GEMM dominates the router's time. The j-th choice (of a group
/// or an expert) is the best ranked after choice j - 1 in the order (value
/// descending, index ascending): no per-thread arrays.
__global__ void routerTopKKernel(const float *logits, std::int64_t tokens,
                                 int experts, int topK, RoutingConfig routing,
                                 const float *bias, float *scores,
                                 float *logSumExp, std::int32_t *indices,
                                 float *weights) {
  std::int64_t t =
      blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x;
  if (t >= tokens)
    return;
  const float *in = logits + t * experts;
  float *row = scores + t * experts;
  float max = in[0];
  for (int e = 1; e < experts; ++e)
    max = fmaxf(max, in[e]);
  float sum = 0.0f;
  for (int e = 0; e < experts; ++e)
    sum += expf(in[e] - max);
  logSumExp[t] = max + logf(sum);
  if (routing.score == ScoreFunction::Softmax) {
    for (int e = 0; e < experts; ++e)
      row[e] = expf(in[e] - max) / sum;
  } else {
    for (int e = 0; e < experts; ++e)
      row[e] = 1.0f / (1.0f + expf(-in[e]));
  }
  // Group-limited routing: a mask of the topGroups best groups.
  const int groups = routing.groups, size = experts / groups;
  std::uint64_t allowed = ~std::uint64_t{0};
  if (groups > 1) {
    allowed = 0;
    float previous = INFINITY;
    int previousGroup = -1;
    for (int j = 0; j < routing.topGroups; ++j) {
      int best = -1;
      float bestRank = 0.0f;
      for (int g = 0; g < groups; ++g) {
        float r = groupRank(row, bias, g, size, routing.groupScore);
        bool after = r < previous || (r == previous && g > previousGroup);
        if (after && (best < 0 || r > bestRank)) {
          best = g;
          bestRank = r;
        }
      }
      // NaN scores rank nothing: keep the indices in range (the loss is
      // NaN and the divergence guard stops the run).
      if (best < 0)
        best = j;
      allowed |= std::uint64_t{1} << best;
      previous = bestRank;
      previousGroup = best;
    }
  }
  float previous = INFINITY, selected = 0.0f;
  int previousIndex = -1;
  for (int j = 0; j < topK; ++j) {
    int best = -1;
    float bestValue = 0.0f;
    for (int e = 0; e < experts; ++e) {
      if (groups > 1 && !((allowed >> (e / size)) & 1))
        continue;
      float c = choiceValue(row, bias, e);
      bool after = c < previous || (c == previous && e > previousIndex);
      if (after && (best < 0 || c > bestValue)) {
        best = e;
        bestValue = c;
      }
    }
    if (best < 0)
      best = j; // NaN scores (see the groups above)
    indices[t * topK + j] = best;
    weights[t * topK + j] = row[best];
    selected += row[best];
    previous = bestValue;
    previousIndex = best;
  }
  const auto scale = static_cast<float>(routing.scale);
  for (int j = 0; j < topK; ++j) {
    float w = weights[t * topK + j];
    if (routing.renormalize)
      w /= selected;
    weights[t * topK + j] = w * scale;
  }
}

/// One thread per token, like the forward (cpu::routerBackward's order of
/// operations): d(scores) from the k weights and the aux loss, then
/// through the score function, plus the z-loss.
__global__ void routerBackwardKernel(
    const float *scores, const std::int32_t *indices, const float *weights,
    const float *dWeights, std::int64_t tokens, int experts, int topK,
    RoutingConfig routing, RouterLossGradientsOnDevice losses, float *dLogits) {
  std::int64_t t =
      blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x;
  if (t >= tokens)
    return;
  const float *s = scores + t * experts;
  const std::int32_t *idx = indices + t * topK;
  const float *w = weights + t * topK, *dw = dWeights + t * topK;
  float *dl = dLogits + t * experts;
  const auto scale = static_cast<float>(routing.scale);
  // w_j = c s_j / S when renormalised: ds_j = (c dw_j - sum_i dw_i w_i) / S.
  float selected = 0.0f, dot = 0.0f;
  if (routing.renormalize)
    for (int j = 0; j < topK; ++j) {
      selected += s[idx[j]];
      dot += dw[j] * w[j];
    }
  // The aux loss: p = s (softmax), or s / S over all E (sigmoid):
  // ds_e += (dp_e - sum_i dp_i p_i) / S.
  const float *dP = losses.auxGradient
                        ? losses.auxGradient + (t / losses.span) * experts
                        : nullptr;
  float sum = 1.0f, auxDot = 0.0f;
  if (dP && routing.score == ScoreFunction::Sigmoid) {
    sum = 0.0f;
    for (int e = 0; e < experts; ++e)
      sum += s[e];
    for (int e = 0; e < experts; ++e)
      auxDot += dP[e] * (s[e] / sum);
  }
  auto dScore = [&](int e) {
    float d = 0.0f;
    for (int j = 0; j < topK; ++j)
      if (idx[j] == e)
        d = routing.renormalize ? (scale * dw[j] - dot) / selected
                                : scale * dw[j];
    if (dP)
      d += (dP[e] - auxDot) / sum;
    return d;
  };
  if (routing.score == ScoreFunction::Softmax) {
    float inner = 0.0f;
    for (int e = 0; e < experts; ++e)
      inner += dScore(e) * s[e];
    for (int e = 0; e < experts; ++e)
      dl[e] = s[e] * (dScore(e) - inner);
  } else {
    for (int e = 0; e < experts; ++e)
      dl[e] = dScore(e) * s[e] * (1.0f - s[e]);
  }
  if (losses.dZ != 0.0f) {
    // d(lse^2)/d(logit_e) = 2 lse softmax(logits)_e (the 2 is in dZ).
    const float *logit = losses.logits + t * experts;
    float lse = losses.logSumExp[t];
    for (int e = 0; e < experts; ++e)
      dl[e] += losses.dZ * lse * expf(logit[e] - lse);
  }
}

/// Per token: what its scores are divided by to be probabilities (their
/// sum for sigmoid, summed in the CPU's order; 1 for softmax).
__global__ void probabilityDivisorKernel(const float *scores,
                                         std::int64_t tokens, int experts,
                                         bool sigmoid, float *divisors) {
  std::int64_t t =
      blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x;
  if (t >= tokens)
    return;
  float sum = 1.0f;
  if (sigmoid) {
    sum = 0.0f;
    for (int e = 0; e < experts; ++e)
      sum += scores[t * experts + e];
  }
  divisors[t] = sum;
}

/// One thread per (group, expert), over the group's tokens in order, in
/// double as the CPU does; neighbouring threads read neighbouring scores.
__global__ void probabilitySumsKernel(const float *scores,
                                      const float *divisors,
                                      std::int64_t groups, int experts,
                                      std::int64_t span, double *sums) {
  std::int64_t i =
      blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x;
  if (i >= groups * experts)
    return;
  std::int64_t g = i / experts;
  int e = static_cast<int>(i % experts);
  double acc = 0.0;
  for (std::int64_t t = g * span; t < (g + 1) * span; ++t)
    acc += scores[t * experts + e] / divisors[t];
  sums[i] = acc;
}

constexpr int kSumThreads = 256;

/// Per block, the sum of squares of its grid-stride share, in double.
__global__ void squaresKernel(const float *x, std::int64_t n,
                              double *partials) {
  __shared__ double shared[kSumThreads];
  double acc = 0.0;
  for (std::int64_t i =
           blockIdx.x * static_cast<std::int64_t>(kSumThreads) + threadIdx.x;
       i < n; i += static_cast<std::int64_t>(gridDim.x) * kSumThreads)
    acc += static_cast<double>(x[i]) * x[i];
  shared[threadIdx.x] = acc;
  __syncthreads();
  for (int half = kSumThreads / 2; half > 0; half /= 2) {
    if (threadIdx.x < half)
      shared[threadIdx.x] += shared[threadIdx.x + half];
    __syncthreads();
  }
  if (threadIdx.x == 0)
    partials[blockIdx.x] = shared[0];
}

/// One block: the partials' sum, in a fixed order (deterministic).
__global__ void sumPartialsKernel(const double *partials, int count,
                                  double *result) {
  __shared__ double shared[kSumThreads];
  double acc = 0.0;
  for (int i = threadIdx.x; i < count; i += kSumThreads)
    acc += partials[i];
  shared[threadIdx.x] = acc;
  __syncthreads();
  for (int half = kSumThreads / 2; half > 0; half /= 2) {
    if (threadIdx.x < half)
      shared[threadIdx.x] += shared[threadIdx.x + half];
    __syncthreads();
  }
  if (threadIdx.x == 0)
    *result = shared[0];
}

unsigned blocksFor(std::int64_t threads, int perBlock) {
  return static_cast<unsigned>((threads + perBlock - 1) / perBlock);
}

} // namespace

void routerTopK(const float *logits, std::int64_t tokens, int experts, int topK,
                const RoutingConfig &routing, const float *bias, float *scores,
                float *logSumExp, std::int32_t *indices, float *weights,
                cudaStream_t stream) {
  if (tokens == 0)
    return;
  if (topK < 1 || topK > experts)
    fail({}, "routerTopK: top-k ", topK, " outside [1, ", experts, "]");
  if (routing.groups < 1 || routing.groups > kMaxRouterGroups ||
      experts % routing.groups != 0 || routing.topGroups < 1 ||
      routing.topGroups > routing.groups ||
      topK > routing.topGroups * (experts / routing.groups))
    fail({}, "routerTopK: ", routing.groups, " groups (at most ",
         kMaxRouterGroups, ", dividing E = ", experts, "), ", routing.topGroups,
         " of them chosen, cannot give top-", topK);
  if (routing.selectionBias != (bias != nullptr))
    fail({}, "routerTopK: a selection bias is given exactly when the "
             "routing has one");
  constexpr int kThreads = 128;
  routerTopKKernel<<<blocksFor(tokens, kThreads), kThreads, 0, stream>>>(
      logits, tokens, experts, topK, routing, bias, scores, logSumExp, indices,
      weights);
  check(cudaGetLastError(), "routerTopK launch");
}

void routerBackwardLogits(const float *scores, const std::int32_t *indices,
                          const float *weights, const float *dWeights,
                          std::int64_t tokens, int experts, int topK,
                          const RoutingConfig &routing,
                          const RouterLossGradientsOnDevice &losses,
                          float *dLogits, cudaStream_t stream) {
  if (tokens == 0)
    return;
  if (losses.auxGradient && (losses.span < 1 || tokens % losses.span != 0))
    fail({}, "routerBackwardLogits: ", tokens,
         " tokens are not whole aux groups of ", losses.span);
  constexpr int kThreads = 128;
  routerBackwardKernel<<<blocksFor(tokens, kThreads), kThreads, 0, stream>>>(
      scores, indices, weights, dWeights, tokens, experts, topK, routing,
      losses, dLogits);
  check(cudaGetLastError(), "routerBackwardLogits launch");
}

void routerProbabilitySums(const float *scores, std::int64_t tokens,
                           int experts, ScoreFunction score, std::int64_t span,
                           float *divisors, double *sums, cudaStream_t stream) {
  if (tokens == 0)
    return;
  if (span < 1 || tokens % span != 0)
    fail({}, "routerProbabilitySums: ", tokens,
         " tokens are not whole groups of ", span);
  constexpr int kThreads = 128;
  probabilityDivisorKernel<<<blocksFor(tokens, kThreads), kThreads, 0,
                             stream>>>(
      scores, tokens, experts, score == ScoreFunction::Sigmoid, divisors);
  check(cudaGetLastError(), "routerProbabilitySums launch");
  std::int64_t groups = tokens / span;
  probabilitySumsKernel<<<blocksFor(groups * experts, kThreads), kThreads, 0,
                          stream>>>(scores, divisors, groups, experts, span,
                                    sums);
  check(cudaGetLastError(), "routerProbabilitySums launch");
}

void sumOfSquares(const float *x, std::int64_t n, double *partials,
                  double *result, cudaStream_t stream) {
  squaresKernel<<<kSumOfSquaresBlocks, kSumThreads, 0, stream>>>(x, n,
                                                                 partials);
  check(cudaGetLastError(), "sumOfSquares launch");
  sumPartialsKernel<<<1, kSumThreads, 0, stream>>>(partials,
                                                   kSumOfSquaresBlocks, result);
  check(cudaGetLastError(), "sumOfSquares launch");
}

} // namespace laer::rt::cuda
