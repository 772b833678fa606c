//===- GreedyPlanner.cpp - water-fill + LPT, the plain baseline -----------===//
//
// What a practitioner writes first: replica counts by water-filling the
// load per replica, replicas placed longest-first onto the least loaded
// rank, each expert's tokens split equally over its replicas. No node
// awareness, no cost model; the baseline laer+ must never lose to.
//
//===----------------------------------------------------------------------===//

#include "PlanBuilding.h"
#include "Planners.h"

using namespace laer;
using namespace laer::planner;

rt::Plan GreedyPlanner::plan(const PlannerInput &input) {
  detail::requireEnoughSlots(input, "greedy");
  int N = input.cluster.numRanks, C = input.layer.slotsPerRank,
      E = input.layer.numExperts;
  std::vector<std::int64_t> loads = detail::layoutLoads(input);
  std::vector<std::int64_t> now = expertLoads(input.counts, N, E);
  for (int e = 0; e < E; ++e)
    if (now[e] > 0 && loads[e] == 0)
      loads[e] = 1;
  rt::Layout layout = detail::placeLongestFirst(
      detail::priorityReplicaCounts(loads, N, C, 1), loads, N, C);
  if (!detail::servesAll(layout, now))
    return StaticPlanner().plan(input);
  return rt::Plan{layout,
                  detail::routeBalanced(layout, input.counts, input.cluster),
                  !input.layoutLoad.empty()};
}
