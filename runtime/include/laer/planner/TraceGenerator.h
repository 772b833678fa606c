//===- TraceGenerator.h - synthetic routing traces --------------*- C++ -*-===//
//
// Token counts per (rank, expert) for successive training steps, with the
// properties that make MoE load balancing hard: skewed expert popularity
// (Zipf-like, its exponent per layer), correlation between a token's top-k
// choices, differences between ranks (their data differ) and drift of the
// popularity from step to step. Seeded and deterministic.
//
//===----------------------------------------------------------------------===//

#ifndef LAER_PLANNER_TRACEGENERATOR_H
#define LAER_PLANNER_TRACEGENERATOR_H

#include <cstdint>
#include <random>
#include <vector>

namespace laer::planner {

struct TraceOptions {
  int numRanks = 32;
  int numExperts = 8;
  int topK = 2;
  std::int64_t tokensPerRank = 8192;
  /// Zipf exponent of expert popularity: 0 is uniform.
  double skew = 1.0;
  /// Probability that a token's later choices follow the "partner" of its
  /// first choice (experts that fire together).
  double topKCorrelation = 0.3;
  /// Standard deviation of each rank's log-popularity offset.
  double rankJitter = 0.2;
  /// Standard deviation of the per-step random walk of log-popularity.
  double drift = 0.05;
  std::uint64_t seed = 1;
};

class TraceGenerator {
public:
  /// `layer` decorrelates the layers of one model.
  TraceGenerator(const TraceOptions &options, int layer);

  /// The counts of the next step: `counts[rank * E + e]`, each rank's row
  /// summing to tokensPerRank * topK.
  std::vector<std::int64_t> next();

private:
  TraceOptions options_;
  std::mt19937_64 rng_;
  std::vector<double> logPopularity_;
  std::vector<double> rankOffset_; // [rank * E + e]
  std::vector<int> partner_;
};

} // namespace laer::planner

#endif // LAER_PLANNER_TRACEGENERATOR_H
