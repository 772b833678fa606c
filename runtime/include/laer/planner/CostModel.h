//===- CostModel.h - time of one MoE layer step under a plan ----*- C++ -*-===//
//
// Estimates what a plan costs on a cluster: per-rank expert compute, per-rank
// token all-to-all over the right link (NVLink inside a node, the network
// between nodes), the parameter restore and gradient all-to-alls (the same
// volume for every layout under FSEP) and how much of those hides behind
// compute. Every all-to-all synchronises the ranks, so the step time is the
// critical path: the slowest rank of each phase, summed over phases.
//
//===----------------------------------------------------------------------===//

#ifndef LAER_PLANNER_COSTMODEL_H
#define LAER_PLANNER_COSTMODEL_H

#include "laer/runtime/fsep/Plan.h"

#include <cstdint>
#include <span>
#include <vector>

namespace laer::planner {

struct ClusterSpec {
  int numRanks = 32;
  int gpusPerNode = 8;
  double intraNodeBandwidth = 300e9; // bytes/s per GPU, NVLink
  double interNodeBandwidth = 100e9; // bytes/s per GPU, network
  double flopsPerSecond = 312e12;    // dense bf16 peak
  /// Fraction of peak the expert GEMMs reach.
  double computeEfficiency = 0.6;

  /// `ranks` CPU processes on one machine: shared-memory transfers of a few
  /// GB/s, tens of GFLOP/s each (the demo and test setting).
  static ClusterSpec cpuNode(int ranks) {
    ClusterSpec cluster;
    cluster.numRanks = ranks;
    cluster.gpusPerNode = ranks;
    cluster.intraNodeBandwidth = 5e9;
    cluster.interNodeBandwidth = 5e9;
    cluster.flopsPerSecond = 50e9;
    cluster.computeEfficiency = 1.0;
    return cluster;
  }

  int nodeOf(int rank) const { return rank / gpusPerNode; }
  int numNodes() const { return (numRanks + gpusPerNode - 1) / gpusPerNode; }
};

struct LayerSpec {
  std::int64_t hidden = 4096;
  std::int64_t ffn = 14336;
  int numExperts = 8;
  int topK = 2;
  int slotsPerRank = 2;
  double bytesPerElement = 2; // bf16 activations, weights and gradients
  /// Activation checkpointing: the forward runs again during backward.
  bool recompute = true;

  /// Forward FLOPs of one token through one SwiGLU expert.
  double flopsPerToken() const { return 6.0 * hidden * ffn; }
  double bytesPerToken() const { return hidden * bytesPerElement; }
  double parameterBytesPerExpert() const {
    return 3.0 * hidden * ffn * bytesPerElement;
  }
  /// Compute passes per step in units of one forward: 1 fwd + 2 bwd
  /// (+1 recompute).
  double computePasses() const { return recompute ? 4.0 : 3.0; }
  /// Token all-to-alls per step: dispatch and combine, forward and backward.
  static constexpr double kTokenExchanges = 4.0;
};

struct StepCost {
  std::vector<double> computeSeconds;   // per rank, one forward pass
  std::vector<double> tokenCommSeconds; // per rank, one token all-to-all
  std::vector<std::int64_t> rankTokens; // expert rows per rank
  double maxCompute = 0, maxTokenComm = 0, sumTokenComm = 0;
  double paramCommSeconds = 0; // one restore (= one gradient) all-to-all
  double exposedParamSeconds = 0;
  /// Step time of the layer: 4 * max comm + passes * max compute + exposed
  /// parameter traffic.
  double criticalPath = 0;
  /// The objective of the paper's planner: 4 * sum(comm) + passes * max
  /// compute (sums the ranks' token traffic instead of taking the slowest).
  double laerObjective = 0;
  double maxOverMeanTokens = 0;
  std::int64_t interNodeBytes = 0;
};

/// When a layer's parameter restore can start.
enum class RestoreStart {
  /// Before the layer's router runs, behind the previous layer's expert
  /// compute: the layout was known ahead (fixed, or planned from past
  /// loads, and the executor prefetches).
  BeforeRouter,
  /// Once the plan exists, behind the token dispatch only: the layout was
  /// planned on this step's counts.
  AfterPlan,
};

/// One restore (= one gradient) all-to-all of a layer's expert shards.
double parameterCommSeconds(const ClusterSpec &cluster, const LayerSpec &layer);

/// The part of a step's parameter traffic (`paramSeconds` per all-to-all)
/// that compute and the token exchanges do not hide.
double exposedParameterSeconds(double paramSeconds, double maxCompute,
                               double maxTokenComm, const LayerSpec &layer,
                               RestoreStart restore);

/// Tokens per rank that a plan makes each rank compute, send and receive,
/// inside its node and across nodes (a token to a replica on its own rank
/// does not move). All the cost model needs of a routing.
struct RankTraffic {
  std::vector<std::int64_t> rows;
  std::vector<std::int64_t> sendIntra, sendInter, recvIntra, recvInter;

  explicit RankTraffic(int numRanks = 0)
      : rows(numRanks, 0), sendIntra(numRanks, 0), sendInter(numRanks, 0),
        recvIntra(numRanks, 0), recvInter(numRanks, 0) {}
};

/// The traffic of `plan`'s routing: one pass over its entries.
RankTraffic trafficOf(const rt::Plan &plan, const ClusterSpec &cluster);

/// Cost of a step with `traffic`.
StepCost evaluate(const RankTraffic &traffic, const ClusterSpec &cluster,
                  const LayerSpec &layer,
                  RestoreStart restore = RestoreStart::BeforeRouter);

/// Cost of `plan` (its routing carries the load).
StepCost evaluate(const rt::Plan &plan, const ClusterSpec &cluster,
                  const LayerSpec &layer,
                  RestoreStart restore = RestoreStart::BeforeRouter);

} // namespace laer::planner

#endif // LAER_PLANNER_COSTMODEL_H
