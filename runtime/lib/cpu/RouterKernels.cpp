//===- RouterKernels.cpp - router forward and backward on the CPU ---------===//

#include "laer/runtime/Error.h"
#include "laer/runtime/cpu/Kernels.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

using namespace laer::rt;
using namespace laer::rt::cpu;

namespace {

/// Marks the experts outside the `topGroups` best groups of `choice` [E]
/// (a group's score: its best choice value, or the sum of its two best) by
/// setting their choice value to -inf.
void keepBestGroups(float *choice, int numExperts, const RoutingConfig &r,
                    std::vector<float> &groupScore, std::vector<int> &order) {
  int size = numExperts / r.groups;
  groupScore.assign(r.groups, 0.0f);
  for (int g = 0; g < r.groups; ++g) {
    const float *c = choice + g * size;
    float best = -std::numeric_limits<float>::infinity(), second = best;
    for (int i = 0; i < size; ++i) {
      if (c[i] > best) {
        second = best;
        best = c[i];
      } else if (c[i] > second) {
        second = c[i];
      }
    }
    groupScore[g] = r.groupScore == GroupScore::Max ? best : best + second;
  }
  order.resize(r.groups);
  std::iota(order.begin(), order.end(), 0);
  std::partial_sort(order.begin(), order.begin() + r.topGroups, order.end(),
                    [&](int a, int b) {
                      return groupScore[a] > groupScore[b] ||
                             (groupScore[a] == groupScore[b] && a < b);
                    });
  for (int j = r.topGroups; j < r.groups; ++j)
    std::fill_n(choice + order[j] * size, size,
                -std::numeric_limits<float>::infinity());
}

/// p_e: the scores as probabilities (softmax as is, sigmoid divided by
/// their sum), for the aux loss; `sum` is the divisor.
void routingProbabilities(const float *s, int numExperts, ScoreFunction score,
                          float *p, float &sum) {
  sum = 1.0f;
  if (score == ScoreFunction::Sigmoid)
    sum = std::accumulate(s, s + numExperts, 0.0f);
  for (int e = 0; e < numExperts; ++e)
    p[e] = s[e] / sum;
}

} // namespace

RouterOutput cpu::routerForward(std::span<const float> x,
                                std::span<const float> gate,
                                std::span<const float> bias,
                                std::int64_t tokens, std::int64_t hidden,
                                int numExperts, int topK,
                                const RoutingConfig &routing) {
  RouterOutput out;
  const auto scoreCount = static_cast<std::size_t>(tokens * numExperts);
  out.logits.assign(scoreCount, 0.0f);
  gemm(false, false, tokens, numExperts, hidden, 1.0f, x.data(), gate.data(),
       0.0f, out.logits.data());
  out.scores.resize(scoreCount);
  out.logSumExp.resize(static_cast<std::size_t>(tokens));
  out.indices.resize(static_cast<std::size_t>(tokens * topK));
  out.weights.resize(static_cast<std::size_t>(tokens * topK));
  const bool grouped = routing.groups > 1;
  const bool biased = routing.selectionBias;
  const auto scale = static_cast<float>(routing.scale);
  std::vector<int> order(numExperts), groupOrder;
  std::vector<float> choice(numExperts), groupScore;
  for (std::int64_t t = 0; t < tokens; ++t) {
    const float *logit = out.logits.data() + t * numExperts;
    float *row = out.scores.data() + t * numExperts;
    float max = *std::max_element(logit, logit + numExperts);
    float sum = 0.0f;
    for (int e = 0; e < numExperts; ++e)
      sum += std::exp(logit[e] - max);
    out.logSumExp[t] = max + std::log(sum);
    if (routing.score == ScoreFunction::Softmax) {
      for (int e = 0; e < numExperts; ++e)
        row[e] = std::exp(logit[e] - max) / sum;
    } else {
      for (int e = 0; e < numExperts; ++e)
        row[e] = 1.0f / (1.0f + std::exp(-logit[e]));
    }
    // The values the experts are chosen by: the scores (plus the bias),
    // -inf outside the best groups.
    const float *rank = row;
    if (biased || grouped) {
      for (int e = 0; e < numExperts; ++e)
        choice[e] = biased ? row[e] + bias[e] : row[e];
      if (grouped)
        keepBestGroups(choice.data(), numExperts, routing, groupScore,
                       groupOrder);
      rank = choice.data();
    }
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(
        order.begin(), order.begin() + topK, order.end(), [&](int a, int b) {
          return rank[a] > rank[b] || (rank[a] == rank[b] && a < b);
        });
    float selected = 0.0f;
    for (int j = 0; j < topK; ++j)
      selected += row[order[j]];
    for (int j = 0; j < topK; ++j) {
      float w = row[order[j]];
      if (routing.renormalize)
        w /= selected;
      out.indices[t * topK + j] = order[j];
      out.weights[t * topK + j] = w * scale;
    }
  }
  return out;
}

std::int64_t cpu::auxSpan(std::int64_t tokens, std::int64_t sequenceLength) {
  if (sequenceLength <= 0)
    return tokens;
  if (tokens % sequenceLength != 0)
    fail({}, "the sequence-wise aux loss needs whole sequences: ", tokens,
         " tokens are not sequences of ", sequenceLength);
  return sequenceLength;
}

std::vector<std::int64_t>
cpu::choiceCounts(std::span<const std::int32_t> indices, std::int64_t first,
                  std::int64_t count, int numExperts, int topK) {
  std::vector<std::int64_t> counts(numExperts, 0);
  for (std::int64_t i = first * topK; i < (first + count) * topK; ++i)
    ++counts[indices[i]];
  return counts;
}

RouterLosses cpu::routerLosses(const RouterOutput &saved,
                               std::span<const std::int64_t> loads,
                               std::int64_t loadTokens, std::int64_t tokens,
                               int numExperts, int topK, ScoreFunction score,
                               std::int64_t sequenceLength) {
  if (tokens == 0)
    return {};
  // Per group of `span` tokens (a sequence, or the whole batch): the sums
  // of the tokens' probabilities; and the sum of the squared logsumexps.
  const std::int64_t span = auxSpan(tokens, sequenceLength);
  std::vector<double> sums(static_cast<std::size_t>(tokens / span) * numExperts,
                           0.0);
  std::vector<float> p(numExperts);
  double squares = 0;
  for (std::int64_t t = 0; t < tokens; ++t) {
    float sum;
    routingProbabilities(saved.scores.data() + t * numExperts, numExperts,
                         score, p.data(), sum);
    double *groupSums = sums.data() + (t / span) * numExperts;
    for (int e = 0; e < numExperts; ++e)
      groupSums[e] += p[e];
    double lse = saved.logSumExp[t];
    squares += lse * lse;
  }
  return routerLossesFrom(sums, squares, saved.indices, loads, loadTokens,
                          tokens, numExperts, topK, sequenceLength);
}

RouterLosses cpu::routerLossesFrom(std::span<const double> probabilitySums,
                                   double logSumExpSquares,
                                   std::span<const std::int32_t> indices,
                                   std::span<const std::int64_t> loads,
                                   std::int64_t loadTokens, std::int64_t tokens,
                                   int numExperts, int topK,
                                   std::int64_t sequenceLength) {
  RouterLosses losses;
  if (tokens == 0)
    return losses;
  // Per group: E / k * sum_e f_e * P_e; then the groups' mean.
  const std::int64_t span = auxSpan(tokens, sequenceLength);
  for (std::int64_t first = 0; first < tokens; first += span) {
    const double *sums = probabilitySums.data() + (first / span) * numExperts;
    std::span<const std::int64_t> groupLoads = loads;
    std::int64_t groupTokens = loadTokens;
    std::vector<std::int64_t> own;
    if (sequenceLength > 0) {
      own = choiceCounts(indices, first, span, numExperts, topK);
      groupLoads = own;
      groupTokens = span;
    }
    if (groupTokens > 0)
      for (int e = 0; e < numExperts; ++e)
        losses.aux += static_cast<double>(groupLoads[e]) / groupTokens *
                      sums[e] / static_cast<double>(span);
  }
  losses.z = logSumExpSquares / static_cast<double>(tokens);
  losses.aux *= static_cast<double>(numExperts) / topK /
                static_cast<double>(tokens / span);
  return losses;
}

void cpu::auxProbabilityGradient(float dAux,
                                 std::span<const std::int64_t> loads,
                                 std::int64_t loadTokens, std::int64_t tokens,
                                 int numExperts, int topK,
                                 std::span<float> dP) {
  for (int e = 0; e < numExperts; ++e)
    dP[e] = static_cast<float>(static_cast<double>(dAux) * numExperts / topK /
                               static_cast<double>(tokens) *
                               (static_cast<double>(loads[e]) / loadTokens));
}

std::vector<float>
cpu::auxProbabilityGradients(float dAux, std::span<const std::int32_t> indices,
                             std::span<const std::int64_t> loads,
                             std::int64_t loadTokens, std::int64_t tokens,
                             int numExperts, int topK,
                             std::int64_t sequenceLength) {
  const std::int64_t span = auxSpan(tokens, sequenceLength);
  std::vector<float> dP(static_cast<std::size_t>(tokens / span) * numExperts);
  for (std::int64_t first = 0; first < tokens; first += span) {
    std::span<float> group =
        std::span<float>(dP).subspan((first / span) * numExperts, numExperts);
    if (sequenceLength > 0)
      auxProbabilityGradient(
          dAux, choiceCounts(indices, first, span, numExperts, topK), span,
          tokens, numExperts, topK, group);
    else
      auxProbabilityGradient(dAux, loads, loadTokens, tokens, numExperts, topK,
                             group);
  }
  return dP;
}

void cpu::updateSelectionBias(std::span<float> bias,
                              std::span<const std::int64_t> loads, float rate) {
  auto E = static_cast<std::int64_t>(bias.size());
  std::int64_t total =
      std::accumulate(loads.begin(), loads.end(), std::int64_t{0});
  for (std::int64_t e = 0; e < E; ++e) {
    // sign(mean - load), compared as E * load against the total.
    std::int64_t scaled = loads[e] * E;
    bias[e] += scaled < total ? rate : scaled > total ? -rate : 0.0f;
  }
}

void cpu::routerBackward(std::span<const float> x, std::span<const float> gate,
                         const RouterOutput &saved,
                         std::span<const float> dWeights, std::int64_t tokens,
                         std::int64_t hidden, int numExperts, int topK,
                         const RoutingConfig &routing,
                         const RouterLossGradients &losses, std::span<float> dx,
                         std::span<float> dGate) {
  std::vector<float> dLogits(static_cast<std::size_t>(tokens * numExperts),
                             0.0f);
  std::vector<float> dScores(numExperts), p(numExperts);
  // d(aux)/d(p_te) = dAux * E / (k T) * f_e, with f_e the share of the
  // loads of t's group (its sequence, or the batch): the same for every
  // token of a group.
  const bool perSequence = losses.sequenceLength > 0;
  const bool aux = losses.dAux != 0.0f && tokens > 0 &&
                   (perSequence || losses.loadTokens > 0);
  const std::int64_t span =
      tokens > 0 ? auxSpan(tokens, losses.sequenceLength) : 1;
  std::vector<float> groupDP;
  if (aux)
    groupDP = auxProbabilityGradients(losses.dAux, saved.indices, losses.loads,
                                      losses.loadTokens, tokens, numExperts,
                                      topK, losses.sequenceLength);
  const float dZ =
      tokens > 0 ? 2.0f * losses.dZ / static_cast<float>(tokens) : 0.0f;
  const auto scale = static_cast<float>(routing.scale);
  for (std::int64_t t = 0; t < tokens; ++t) {
    const float *s = saved.scores.data() + t * numExperts;
    const std::int32_t *idx = saved.indices.data() + t * topK;
    const float *w = saved.weights.data() + t * topK;
    const float *dw = dWeights.data() + t * topK;
    std::fill(dScores.begin(), dScores.end(), 0.0f);
    if (routing.renormalize) {
      // w_j = c s_j / S  =>  ds_j = (c dw_j - sum_i dw_i w_i) / S.
      float selected = 0.0f, dot = 0.0f;
      for (int j = 0; j < topK; ++j) {
        selected += s[idx[j]];
        dot += dw[j] * w[j];
      }
      for (int j = 0; j < topK; ++j)
        dScores[idx[j]] = (scale * dw[j] - dot) / selected;
    } else {
      for (int j = 0; j < topK; ++j)
        dScores[idx[j]] = scale * dw[j];
    }
    if (aux) {
      // p = s (softmax): ds = dp; p = s / S (sigmoid):
      // ds_e = (dp_e - sum_i dp_i p_i) / S.
      const float *dP = groupDP.data() + (t / span) * numExperts;
      float sum;
      routingProbabilities(s, numExperts, routing.score, p.data(), sum);
      float dot = 0.0f;
      if (routing.score == ScoreFunction::Sigmoid)
        for (int e = 0; e < numExperts; ++e)
          dot += dP[e] * p[e];
      for (int e = 0; e < numExperts; ++e)
        dScores[e] += (dP[e] - dot) / sum;
    }
    float *dl = dLogits.data() + t * numExperts;
    if (routing.score == ScoreFunction::Softmax) {
      float dot = 0.0f;
      for (int e = 0; e < numExperts; ++e)
        dot += dScores[e] * s[e];
      for (int e = 0; e < numExperts; ++e)
        dl[e] = s[e] * (dScores[e] - dot);
    } else {
      for (int e = 0; e < numExperts; ++e)
        dl[e] = dScores[e] * s[e] * (1.0f - s[e]);
    }
    if (dZ != 0.0f) {
      // d(lse^2)/d(logit_e) = 2 lse softmax(logits)_e.
      const float *logit = saved.logits.data() + t * numExperts;
      float lse = saved.logSumExp[t];
      for (int e = 0; e < numExperts; ++e)
        dl[e] += dZ * lse * std::exp(logit[e] - lse);
    }
  }
  // dx += dLogits * gate^T ; dGate += x^T * dLogits.
  gemm(false, true, tokens, hidden, numExperts, 1.0f, dLogits.data(),
       gate.data(), 1.0f, dx.data());
  gemm(true, false, hidden, numExperts, tokens, 1.0f, x.data(), dLogits.data(),
       1.0f, dGate.data());
}
