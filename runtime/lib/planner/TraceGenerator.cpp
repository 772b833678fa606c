//===- TraceGenerator.cpp - synthetic routing traces ----------------------===//

#include "laer/planner/TraceGenerator.h"

#include <algorithm>
#include <cmath>
#include <numeric>

using namespace laer::planner;

TraceGenerator::TraceGenerator(const TraceOptions &options, int layer)
    : options_(options), rng_(options.seed * 0x9e3779b97f4a7c15ull + layer) {
  int E = options.numExperts, N = options.numRanks;
  // Zipf popularity over a random permutation of the experts.
  std::vector<int> order(E);
  std::iota(order.begin(), order.end(), 0);
  std::shuffle(order.begin(), order.end(), rng_);
  logPopularity_.resize(E);
  for (int i = 0; i < E; ++i)
    logPopularity_[order[i]] = -options.skew * std::log(i + 1.0);
  std::normal_distribution<double> jitter(0.0, options.rankJitter);
  rankOffset_.resize(static_cast<std::size_t>(N) * E);
  for (double &offset : rankOffset_)
    offset = jitter(rng_);
  // Partners pair the experts up at random.
  partner_.resize(E);
  std::shuffle(order.begin(), order.end(), rng_);
  for (int i = 0; i < E; ++i)
    partner_[order[i]] = order[(i + 1) % E];
}

std::vector<std::int64_t> TraceGenerator::next() {
  int E = options_.numExperts, N = options_.numRanks, k = options_.topK;
  std::normal_distribution<double> step(0.0, options_.drift);
  for (double &value : logPopularity_)
    value += step(rng_);

  std::vector<std::int64_t> counts(static_cast<std::size_t>(N) * E, 0);
  std::vector<double> first(E), mix(E);
  for (int rank = 0; rank < N; ++rank) {
    double total = 0;
    for (int e = 0; e < E; ++e)
      total += first[e] = std::exp(logPopularity_[e] + rankOffset_[rank * E + e]);
    for (double &p : first)
      p /= total;
    // A later choice follows the partner of the first with probability
    // rho, else the popularity again; k choices per token in aggregate.
    double rho = k > 1 ? options_.topKCorrelation : 0.0;
    for (int e = 0; e < E; ++e)
      mix[e] = first[e] / k;
    for (int e = 0; e < E; ++e) {
      mix[partner_[e]] += (k - 1.0) / k * rho * first[e];
      mix[e] += (k - 1.0) / k * (1.0 - rho) * first[e];
    }
    // Multinomial draw of tokens * k choices by sequential binomials; a
    // token's choices are distinct experts, so no expert gets more than
    // one choice per token.
    std::int64_t remaining = options_.tokensPerRank * k;
    double mass = 1.0;
    for (int e = 0; e < E && remaining > 0; ++e) {
      std::int64_t draw = remaining;
      if (e + 1 < E && mass > 0) {
        double p = std::clamp(mix[e] / mass, 0.0, 1.0);
        draw = std::binomial_distribution<std::int64_t>(remaining, p)(rng_);
      }
      draw = std::min(draw, options_.tokensPerRank);
      counts[static_cast<std::size_t>(rank) * E + e] = draw;
      remaining -= draw;
      mass -= mix[e];
    }
    // Whatever the per-expert cap left over goes to the least loaded.
    while (remaining > 0) {
      auto row = counts.begin() + static_cast<std::ptrdiff_t>(rank) * E;
      auto least = std::min_element(row, row + E);
      std::int64_t add = std::min(remaining, options_.tokensPerRank - *least);
      *least += add;
      remaining -= add;
    }
  }
  return counts;
}
