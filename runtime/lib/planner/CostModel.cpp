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

RankTraffic planner::trafficOf(const rt::Plan &plan,
                               const ClusterSpec &cluster) {
  // One pass over the routing (a plan at N = 8192 has millions of
  // entries): the replicas' ranks and nodes looked up, not divided out per
  // entry.
  int N = plan.layout.numRanks();
  RankTraffic traffic(N);
  const auto &replicas = plan.layout.replicas();
  std::vector<int> replicaRank(replicas.size()), replicaNode(replicas.size());
  for (std::size_t r = 0; r < replicas.size(); ++r) {
    replicaRank[r] = replicas[r].rank;
    replicaNode[r] = cluster.nodeOf(replicas[r].rank);
  }
  for (int source = 0; source < N; ++source) {
    int sourceNode = cluster.nodeOf(source);
    std::int64_t intra = 0, inter = 0;
    for (const rt::Routing::Entry &entry : plan.routing.row(source)) {
      int target = replicaRank[entry.replica];
      traffic.rows[target] += entry.tokens;
      if (target == source)
        continue;
      if (replicaNode[entry.replica] == sourceNode) {
        intra += entry.tokens;
        traffic.recvIntra[target] += entry.tokens;
      } else {
        inter += entry.tokens;
        traffic.recvInter[target] += entry.tokens;
      }
    }
    traffic.sendIntra[source] = intra;
    traffic.sendInter[source] = inter;
  }
  return traffic;
}

StepCost planner::evaluate(const rt::Plan &plan, const ClusterSpec &cluster,
                           const LayerSpec &layer, RestoreStart restore) {
  return evaluate(trafficOf(plan, cluster), cluster, layer, restore);
}

StepCost planner::evaluate(const RankTraffic &traffic,
                           const ClusterSpec &cluster, const LayerSpec &layer,
                           RestoreStart restore) {
  int N = static_cast<int>(traffic.rows.size());
  StepCost cost;
  cost.rankTokens = traffic.rows;
  double bytesPerToken = layer.bytesPerToken();
  double secondsPerToken = layer.flopsPerToken() /
                           (cluster.flopsPerSecond * cluster.computeEfficiency);
  cost.computeSeconds.resize(N);
  for (int rank = 0; rank < N; ++rank)
    cost.computeSeconds[rank] =
        static_cast<double>(cost.rankTokens[rank]) * secondsPerToken;
  auto bytes = [&](const std::vector<std::int64_t> &tokens, int rank) {
    return static_cast<double>(tokens[rank]) * bytesPerToken;
  };
  std::vector<double> sendIntra(N), sendInter(N), recvIntra(N), recvInter(N);
  for (int rank = 0; rank < N; ++rank) {
    sendIntra[rank] = bytes(traffic.sendIntra, rank);
    sendInter[rank] = bytes(traffic.sendInter, rank);
    recvIntra[rank] = bytes(traffic.recvIntra, rank);
    recvInter[rank] = bytes(traffic.recvInter, rank);
    cost.interNodeBytes += static_cast<std::int64_t>(sendInter[rank]);
  }
  cost.tokenCommSeconds.resize(N);
  for (int rank = 0; rank < N; ++rank) {
    // Links are full duplex and NVLink and the network run side by side.
    double intra =
        std::max(sendIntra[rank], recvIntra[rank]) / cluster.intraNodeBandwidth;
    double inter =
        std::max(sendInter[rank], recvInter[rank]) / cluster.interNodeBandwidth;
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
