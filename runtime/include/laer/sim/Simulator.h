//===- Simulator.h - training iterations of MoE models on a cluster -*- C++
//-*-===//
//
// Estimates the iteration time of a MoE transformer on a cluster for each
// expert-placement method, from the planner cost model plus the dense part
// of every layer, over a sequence of routing traces (synthetic or read from
// a CSV). What laer-sim prints; kept in a library so tests can call it.
//
//===----------------------------------------------------------------------===//

#ifndef LAER_SIM_SIMULATOR_H
#define LAER_SIM_SIMULATOR_H

#include "laer/planner/CostModel.h"
#include "laer/planner/Workloads.h"

#include <cstdint>
#include <functional>
#include <map>
#include <span>
#include <string>
#include <vector>

namespace laer::sim {

/// A model shape as in the LAER-MoE artifact's config files (HF style).
struct ModelShape {
  std::string name;
  std::int64_t hidden = 4096;
  std::int64_t ffn = 14336;
  int numExperts = 8;
  int topK = 2;
  int layers = 32;
  int heads = 32;
  int kvHeads = 8;
  std::int64_t vocab = 32000;

  /// Reads `hidden_size`, `intermediate_size`, `num_local_experts`,
  /// `num_experts_per_tok`, `num_hidden_layers`, `num_attention_heads`,
  /// `num_key_value_heads`, `vocab_size`; the name is the file's stem.
  static ModelShape fromJsonFile(const std::string &path);
};

struct SimOptions {
  planner::ClusterSpec cluster;
  /// Experts restored per rank; 0 picks the paper's (2 for 8 experts, 4
  /// for 16).
  int slotsPerRank = 0;
  std::int64_t sequenceLength = 8192;
  int sequencesPerIteration = 128;
  int microBatches = 2;
  int iterations = 20;
  int warmup = 5;
  /// Layers to simulate (the published runs used fewer than the configs
  /// list); 0 means the model's own count.
  int layers = 0;
  double bytesPerElement = 2;
  bool recompute = true;
  /// The routing of every layer and step (the sizes are the model's and
  /// the cluster's; the rest are the workload's own settings).
  planner::WorkloadKind workload = planner::WorkloadKind::Drift;
  planner::WorkloadOptions trace;
  /// Past steps the runtime hands each layer's planner (laer-train's
  /// --history); 0: plans see only this step's counts.
  int history = 2;
  /// The executor restores a layout known ahead before the router (as the
  /// paper's GPU system does); else every restore follows the plan.
  bool prefetch = true;
  /// Sees every plan the simulation makes, in order (tests compare them
  /// with the runtime's own).
  std::function<void(const std::string &method, int layer, long step,
                     const rt::Plan &plan)>
      onPlan;
};

struct MethodResult {
  std::string method;
  double iterationSeconds = 0; // mean over the simulated iterations
  double moeSeconds = 0;       // of which MoE layers
  double denseSeconds = 0;     // of which attention, norms, head
  // Means over layers and steps:
  double maxOverMeanTokens = 0; // expert rows of the busiest rank / mean
  double rowsOverBound = 0;     // ... / the slot-counting bound
  double pathOverBound = 0;     // critical path / its compute lower bound
  double layoutsAhead = 0;      // fraction of plans restorable ahead
  double plannerSeconds = 0;    // planner wall time per layer and step
};

/// The methods simulate() knows (see below).
std::span<const char *const> methodNames();

/// Fails naming the first setting of `model`, `options` or `methods` that
/// no simulation can run (sizes, rates and counts out of range, an unknown
/// method); simulate() checks it first.
void checkSimulation(const ModelShape &model, const SimOptions &options,
                     const std::vector<std::string> &methods);

/// Methods: "megatron" (static expert parallelism, whole experts per rank,
/// no sharding), "static" (FSEP, round-robin layout: the paper's FSDP+EP),
/// "greedy", "flexmoe", "laer", "laer+", each planned through the runtime's own
/// relayout path (rt::relayoutForCounts with the history window), and
/// "oracle": laer+ on this step's counts with its restore ahead, which no
/// executor can do (the reference the runtime path is held to). A
/// `replay` trace replaces the options' workload.
std::vector<MethodResult>
simulate(const ModelShape &model, const SimOptions &options,
         const std::vector<std::string> &methods,
         const planner::CountsTrace *replay = nullptr);

/// The Zipf skew of `options`' workload at which the static layout's
/// max/mean rank rows (mean over layers and steps) comes closest to
/// `targetImbalance`: a coarse sweep of [0.2, 3], then a fine one around
/// the best (the imbalance grows with the skew). What pins the simulator's
/// skew to a measured imbalance instead of to the speed-ups it produces.
double fitSkewToStaticImbalance(const ModelShape &model,
                                const SimOptions &options,
                                double targetImbalance);

/// Published iteration times (ms) from the artifact's
/// e2e_analysis_backup.csv, keyed by (dataset, method, model) with
/// aux_loss 0; methods are named as we name them.
std::map<std::string, double> readPublishedTimes(const std::string &csvPath,
                                                 const std::string &dataset);

} // namespace laer::sim

#endif // LAER_SIM_SIMULATOR_H
