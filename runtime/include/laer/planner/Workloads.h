//===- Workloads.h - routing workloads for planners and simulators -*- C++
//-*-===//
//
// Token counts per (rank, expert) for successive steps of one MoE layer, in
// the shapes that make load balancing hard (in the spirit of Megatron-LM's
// MoE imbalance benchmark): uniform, stable Zipf skew, one dominant expert,
// slow drift, a rotating hotspot, a sudden shift, periodic bursts, strongly
// correlated top-k choices, and the replay of recorded counts. The
// simulator, the planner bench and the tests draw from the same generators.
// Seeded and deterministic: the same options give the same counts.
//
//===----------------------------------------------------------------------===//

#ifndef LAER_PLANNER_WORKLOADS_H
#define LAER_PLANNER_WORKLOADS_H

#include <cstdint>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <vector>

namespace laer::planner {

enum class WorkloadKind {
  /// Every expert equally likely on every rank.
  Uniform,
  /// Zipf(skew) popularity over a random permutation of the experts, fixed.
  Zipf,
  /// One expert takes `dominantShare` of the (token, choice) pairs, the
  /// others share the rest equally.
  Dominant,
  /// Zipf whose log-popularity takes a random walk of `drift` per step.
  Drift,
  /// Zipf whose ranking moves on by one expert every `period` steps: the
  /// hot experts keep moving.
  Rotating,
  /// Zipf until `shiftStep`, then another random permutation of it.
  Shift,
  /// Zipf, and every `period` steps one random expert's popularity is
  /// multiplied by `burstFactor` for `burstLength` steps.
  Bursts,
  /// Zipf where a token's later choices follow the partner of its first
  /// with probability `correlatedChoices` (experts that fire together).
  Correlated,
  /// Recorded counts (a CountsTrace), replayed cyclically.
  Replay,
};

/// Names as the command lines spell them ("uniform", "zipf", ...).
std::span<const char *const> workloadNames();
/// The kind named `name`; fails listing the names otherwise.
WorkloadKind parseWorkload(const std::string &name);
const char *workloadName(WorkloadKind kind);

struct WorkloadOptions {
  int numRanks = 32;
  int numExperts = 8;
  int topK = 2;
  std::int64_t tokensPerRank = 8192;
  /// Zipf exponent of expert popularity (0: uniform).
  double skew = 1.0;
  /// Probability that a token's later choices follow the partner of its
  /// first choice (every kind but Correlated and Uniform).
  double topKCorrelation = 0.3;
  /// Correlated: the same probability, high.
  double correlatedChoices = 0.9;
  /// Standard deviation of each rank's log-popularity offset (ranks' data
  /// differ); Uniform ignores it.
  double rankJitter = 0.2;
  /// Drift: standard deviation of the per-step walk of log-popularity.
  double drift = 0.05;
  /// Dominant: the hot expert's share of all (token, choice) pairs; at
  /// most 1 / topK (a token picks an expert once).
  double dominantShare = 0.4;
  /// Rotating: steps per move; Bursts: steps from one burst to the next.
  int period = 4;
  /// Shift: the first step of the new popularity.
  int shiftStep = 10;
  /// Bursts: length and strength of a burst.
  int burstLength = 2;
  double burstFactor = 16.0;
  std::uint64_t seed = 1;
};

/// Fails naming the first option out of range for `kind`.
void checkWorkloadOptions(WorkloadKind kind, const WorkloadOptions &options);

/// Routing counts read from a CSV: rows `step,layer,rank,<E counts>` (a
/// header line starting with "step" and lines starting with '#' are
/// skipped); what `laer-train --counts-csv` writes.
class CountsTrace {
public:
  static CountsTrace fromCsv(const std::string &path, int numRanks,
                             int numExperts);
  /// Counts of (step, layer) as `[rank * E + e]`, steps replayed
  /// cyclically and layers too (a trace of fewer layers than the model).
  const std::vector<std::int64_t> &at(long step, int layer) const;
  int steps() const { return static_cast<int>(steps_.size()); }
  int numRanks() const { return numRanks_; }
  int numExperts() const { return numExperts_; }

private:
  int numRanks_ = 0, numExperts_ = 0;
  // steps_[step][layer] = counts
  std::vector<std::vector<std::vector<std::int64_t>>> steps_;
};

/// One layer's counts, step after step.
class Workload {
public:
  /// `layer` decorrelates the layers of one model (its own permutation,
  /// its own random stream). Replay needs `replay`, whose ranks and
  /// experts must match the options.
  Workload(WorkloadKind kind, const WorkloadOptions &options, int layer,
           const CountsTrace *replay = nullptr);

  /// The counts of the next step: `counts[rank * E + e]`; each rank's row
  /// sums to tokensPerRank * topK and no entry exceeds tokensPerRank
  /// (replayed counts are returned as recorded).
  std::vector<std::int64_t> next();

  /// The experts by first-choice popularity at the upcoming step, most
  /// popular first (before any rank's offset); what the tests check each
  /// kind's documented statistics against. Empty for Replay.
  std::vector<int> ranking() const;

  /// The expert a token's later choices follow when its first is `expert`
  /// (with probability topKCorrelation, or correlatedChoices).
  int partner(int expert) const { return partner_.at(expert); }

  WorkloadKind kind() const { return kind_; }
  long step() const { return step_; }

private:
  std::vector<double> logPopularityAt(long step) const;

  WorkloadKind kind_;
  WorkloadOptions options_;
  int layer_;
  const CountsTrace *replay_;
  std::mt19937_64 rng_;
  long step_ = 0;
  std::vector<double> logPopularity_; // the Zipf base (walked by Drift)
  std::vector<double> shifted_;       // Shift: the popularity after
  std::vector<double> rankOffset_;    // [rank * E + e]
  std::vector<int> partner_;
};

} // namespace laer::planner

#endif // LAER_PLANNER_WORKLOADS_H
