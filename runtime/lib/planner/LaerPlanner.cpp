//===- LaerPlanner.cpp - the LAER-MoE paper's planning heuristic ----------===//
//
// Reimplemented from the paper's description (see Planners.h). Node-sized
// steps: the priority-queue candidate adds replicas of the hottest expert
// G (GPUs per node) at a time, so a replicated expert tends to have a copy
// on every GPU of a node.
//
//===----------------------------------------------------------------------===//

#include "PlanBuilding.h"
#include "Planners.h"

#include <algorithm>
#include <limits>
#include <numeric>

using namespace laer;
using namespace laer::planner;

namespace {

/// LPT: replicas by decreasing load per replica, each onto the least
/// loaded rank with a free slot, preferring nodes with fewer copies of the
/// expert; a rank never holds an expert twice.
rt::Layout placeLpt(const std::vector<int> &replicaCounts,
                    std::span<const std::int64_t> loads,
                    const ClusterSpec &cluster, int slotsPerRank) {
  int N = cluster.numRanks, E = static_cast<int>(loads.size());
  struct Item {
    double load;
    int expert;
  };
  std::vector<Item> items;
  for (int e = 0; e < E; ++e)
    for (int r = 0; r < replicaCounts[e]; ++r)
      items.push_back({double(loads[e]) / replicaCounts[e], e});
  std::stable_sort(
      items.begin(), items.end(),
      [](const Item &a, const Item &b) { return a.load > b.load; });
  std::vector<double> rankLoad(N, 0.0);
  std::vector<std::vector<int>> perRank(N);
  std::vector<int> nodeCopies(static_cast<std::size_t>(cluster.numNodes()) * E,
                              0);
  for (const Item &item : items) {
    int best = -1;
    for (int rank = 0; rank < N; ++rank) {
      if (static_cast<int>(perRank[rank].size()) >= slotsPerRank ||
          std::find(perRank[rank].begin(), perRank[rank].end(), item.expert) !=
              perRank[rank].end())
        continue;
      if (best < 0)
        best = rank;
      int copies = nodeCopies[cluster.nodeOf(rank) * E + item.expert];
      int bestCopies = nodeCopies[cluster.nodeOf(best) * E + item.expert];
      if (copies < bestCopies ||
          (copies == bestCopies && rankLoad[rank] < rankLoad[best]))
        best = rank;
    }
    if (best < 0)
      continue; // no rank can take another copy: the replica is dropped
    perRank[best].push_back(item.expert);
    rankLoad[best] += item.load;
    ++nodeCopies[cluster.nodeOf(best) * E + item.expert];
  }
  return detail::layoutFromRanks(perRank, slotsPerRank, E);
}

} // namespace

rt::Plan LaerPlanner::plan(const PlannerInput &input) {
  detail::requireEnoughSlots(input, "laer");
  const ClusterSpec &cluster = input.cluster;
  int N = cluster.numRanks, C = input.layer.slotsPerRank,
      E = input.layer.numExperts;
  std::vector<std::int64_t> loads = detail::layoutLoads(input);
  std::vector<std::int64_t> now = expertLoads(input.counts, N, E);

  std::vector<std::vector<int>> candidates = {
      detail::evenReplicaCounts(loads, N, C),
      detail::priorityReplicaCounts(loads, N, C,
                                    std::min(cluster.gpusPerNode, N))};
  rt::Plan best;
  double bestCost = std::numeric_limits<double>::infinity();
  for (const std::vector<int> &replicaCounts : candidates) {
    rt::Layout layout = placeLpt(replicaCounts, loads, cluster, C);
    // An expert with tokens but no copy (possible with zero-load history):
    // the candidate cannot serve this step.
    if (!detail::servesAll(layout, now))
      continue;
    rt::Routing routing =
        detail::routeEvenPreferNode(layout, input.counts, cluster);
    // Laid out for the history when there is one: the paper plans the next
    // layout from past steps.
    rt::Plan plan{std::move(layout), std::move(routing),
                  !input.layoutLoad.empty()};
    double cost = evaluate(plan, cluster, input.layer).laerObjective;
    if (cost < bestCost) {
      bestCost = cost;
      best = std::move(plan);
    }
  }
  if (bestCost == std::numeric_limits<double>::infinity())
    return StaticPlanner().plan(input);
  return best;
}
