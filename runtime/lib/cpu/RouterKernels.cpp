//===- RouterKernels.cpp - router forward and backward on the CPU ---------===//

#include "laer/runtime/cpu/Kernels.h"

#include <algorithm>
#include <cmath>
#include <numeric>

using namespace laer::rt;
using namespace laer::rt::cpu;

RouterOutput cpu::routerForward(std::span<const float> x,
                                std::span<const float> gate,
                                std::int64_t tokens, std::int64_t hidden,
                                int numExperts, int topK, ScoreFunction score,
                                bool renormalize) {
  RouterOutput out;
  out.scores.assign(static_cast<std::size_t>(tokens * numExperts), 0.0f);
  gemm(false, false, tokens, numExperts, hidden, 1.0f, x.data(), gate.data(),
       0.0f, out.scores.data());
  out.indices.resize(static_cast<std::size_t>(tokens * topK));
  out.weights.resize(static_cast<std::size_t>(tokens * topK));
  std::vector<int> order(numExperts);
  for (std::int64_t t = 0; t < tokens; ++t) {
    float *row = out.scores.data() + t * numExperts;
    if (score == ScoreFunction::Softmax) {
      float max = *std::max_element(row, row + numExperts);
      float sum = 0.0f;
      for (int e = 0; e < numExperts; ++e)
        sum += row[e] = std::exp(row[e] - max);
      for (int e = 0; e < numExperts; ++e)
        row[e] /= sum;
    } else {
      for (int e = 0; e < numExperts; ++e)
        row[e] = 1.0f / (1.0f + std::exp(-row[e]));
    }
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + topK, order.end(),
                      [&](int a, int b) {
                        return row[a] > row[b] || (row[a] == row[b] && a < b);
                      });
    float selected = 0.0f;
    for (int j = 0; j < topK; ++j)
      selected += row[order[j]];
    for (int j = 0; j < topK; ++j) {
      out.indices[t * topK + j] = order[j];
      out.weights[t * topK + j] =
          renormalize ? row[order[j]] / selected : row[order[j]];
    }
  }
  return out;
}

void cpu::routerBackward(std::span<const float> x, std::span<const float> gate,
                         const RouterOutput &saved,
                         std::span<const float> dWeights, std::int64_t tokens,
                         std::int64_t hidden, int numExperts, int topK,
                         ScoreFunction score, bool renormalize,
                         std::span<float> dx, std::span<float> dGate) {
  std::vector<float> dLogits(static_cast<std::size_t>(tokens * numExperts),
                             0.0f);
  std::vector<float> dScores(numExperts);
  for (std::int64_t t = 0; t < tokens; ++t) {
    const float *s = saved.scores.data() + t * numExperts;
    const std::int32_t *idx = saved.indices.data() + t * topK;
    const float *w = saved.weights.data() + t * topK;
    const float *dw = dWeights.data() + t * topK;
    std::fill(dScores.begin(), dScores.end(), 0.0f);
    if (renormalize) {
      // w_j = s_j / S  =>  ds_j = (dw_j - sum_i dw_i w_i) / S.
      float selected = 0.0f, dot = 0.0f;
      for (int j = 0; j < topK; ++j) {
        selected += s[idx[j]];
        dot += dw[j] * w[j];
      }
      for (int j = 0; j < topK; ++j)
        dScores[idx[j]] = (dw[j] - dot) / selected;
    } else {
      for (int j = 0; j < topK; ++j)
        dScores[idx[j]] = dw[j];
    }
    float *dl = dLogits.data() + t * numExperts;
    if (score == ScoreFunction::Softmax) {
      float dot = 0.0f;
      for (int e = 0; e < numExperts; ++e)
        dot += dScores[e] * s[e];
      for (int e = 0; e < numExperts; ++e)
        dl[e] = s[e] * (dScores[e] - dot);
    } else {
      for (int e = 0; e < numExperts; ++e)
        dl[e] = dScores[e] * s[e] * (1.0f - s[e]);
    }
  }
  // dx += dLogits * gate^T ; dGate += x^T * dLogits.
  gemm(false, true, tokens, hidden, numExperts, 1.0f, dLogits.data(),
       gate.data(), 1.0f, dx.data());
  gemm(true, false, hidden, numExperts, tokens, 1.0f, x.data(),
       dLogits.data(), 1.0f, dGate.data());
}
