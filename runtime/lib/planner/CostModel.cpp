//===- CostModel.cpp - time of one MoE layer step under a plan ------------===//

#include "laer/planner/CostModel.h"

#include <algorithm>
#include <numeric>

using namespace laer;
using namespace laer::planner;

double planner::parameterCommSeconds(const ClusterSpec &cluster,
                                     const LayerSpec &layer) {
  // Every rank receives its C experts' shards from the N - 1 other owners;
  // gradients go back with the same volume. Layout independent: FSEP's
  // point.
  int N = cluster.numRanks;
  double shardBytes = layer.parameterBytesPerExpert() / N;
  int peersInNode = std::min(cluster.gpusPerNode, N) - 1;
  int peersOutside = N - 1 - peersInNode;
  double intraBytes = layer.slotsPerRank * shardBytes * peersInNode;
  double interBytes = layer.slotsPerRank * shardBytes * peersOutside;
  return std::max(intraBytes / cluster.intraNodeBandwidth,
                  interBytes / cluster.interNodeBandwidth);
}

double planner::exposedParameterSeconds(double paramSeconds, double maxCompute,
                                        double maxTokenComm,
                                        const LayerSpec &layer,
                                        RestoreStart restore) {
  // Forward: the restore of this layer overlaps the previous layer's expert
  // compute when it starts before the router, else only this layer's token
  // dispatch. Backward: restore and gradient all-to-all overlap the
  // backward (and recompute) of the neighbouring layer.
  double backwardPasses = layer.computePasses() - 1.0;
  double forwardCover =
      restore == RestoreStart::BeforeRouter ? maxCompute : maxTokenComm;
  return std::max(0.0, paramSeconds - forwardCover) +
         std::max(0.0, 2.0 * paramSeconds - backwardPasses * maxCompute);
}

StepCost planner::evaluate(const rt::Plan &plan, const ClusterSpec &cluster,
                           const LayerSpec &layer, RestoreStart restore) {
  int N = plan.layout.numRanks();
  StepCost cost;
  cost.rankTokens = rt::rowsPerRank(plan);

  double secondsPerToken =
      layer.flopsPerToken() /
      (cluster.flopsPerSecond * cluster.computeEfficiency);
  cost.computeSeconds.resize(N);
  for (int rank = 0; rank < N; ++rank)
    cost.computeSeconds[rank] = cost.rankTokens[rank] * secondsPerToken;

  // Token traffic per rank and link; a token to a replica on the same rank
  // does not move.
  std::vector<double> sendIntra(N, 0), sendInter(N, 0), recvIntra(N, 0),
      recvInter(N, 0);
  const auto &replicas = plan.layout.replicas();
  double bytesPerToken = layer.bytesPerToken();
  for (int source = 0; source < N; ++source) {
    for (const rt::Routing::Entry &entry : plan.routing.row(source)) {
      int target = replicas[entry.replica].rank;
      if (target == source)
        continue;
      double bytes = entry.tokens * bytesPerToken;
      if (cluster.nodeOf(target) == cluster.nodeOf(source)) {
        sendIntra[source] += bytes;
        recvIntra[target] += bytes;
      } else {
        sendInter[source] += bytes;
        recvInter[target] += bytes;
        cost.interNodeBytes += static_cast<std::int64_t>(bytes);
      }
    }
  }
  cost.tokenCommSeconds.resize(N);
  for (int rank = 0; rank < N; ++rank) {
    // Links are full duplex and NVLink and the network run side by side.
    double intra = std::max(sendIntra[rank], recvIntra[rank]) /
                   cluster.intraNodeBandwidth;
    double inter = std::max(sendInter[rank], recvInter[rank]) /
                   cluster.interNodeBandwidth;
    cost.tokenCommSeconds[rank] = std::max(intra, inter);
  }

  cost.maxCompute =
      *std::max_element(cost.computeSeconds.begin(), cost.computeSeconds.end());
  cost.maxTokenComm = *std::max_element(cost.tokenCommSeconds.begin(),
                                        cost.tokenCommSeconds.end());
  cost.sumTokenComm = std::accumulate(cost.tokenCommSeconds.begin(),
                                      cost.tokenCommSeconds.end(), 0.0);

  cost.paramCommSeconds = parameterCommSeconds(cluster, layer);
  cost.exposedParamSeconds =
      exposedParameterSeconds(cost.paramCommSeconds, cost.maxCompute,
                              cost.maxTokenComm, layer, restore);

  cost.criticalPath = LayerSpec::kTokenExchanges * cost.maxTokenComm +
                      layer.computePasses() * cost.maxCompute +
                      cost.exposedParamSeconds;
  cost.laerObjective = LayerSpec::kTokenExchanges * cost.sumTokenComm +
                       layer.computePasses() * cost.maxCompute;

  cost.maxOverMeanTokens = rt::maxOverMeanRows(cost.rankTokens);
  return cost;
}
