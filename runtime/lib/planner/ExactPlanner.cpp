//===- ExactPlanner.cpp - exhaustive layouts for tiny instances -----------===//

#include "PlanBuilding.h"
#include "Planners.h"

#include <limits>

using namespace laer;
using namespace laer::planner;

rt::Plan ExactPlanner::plan(const PlannerInput &input) {
  detail::requireEnoughSlots(input, "exact");
  const ClusterSpec &cluster = input.cluster;
  int N = cluster.numRanks, C = input.layer.slotsPerRank,
      E = input.layer.numExperts;
  if (N > 4 || E > 8 || C > 2)
    rt::fail({}, "exact planner is for tiny instances (N <= 4, E <= 8, "
                 "C <= 2), got N = ",
             N, ", E = ", E, ", C = ", C);
  // Every subset of at most C distinct experts, per rank.
  std::vector<std::vector<int>> choices;
  std::vector<int> pick;
  auto enumerate = [&](auto &&self, int start) -> void {
    choices.push_back(pick);
    if (static_cast<int>(pick.size()) == C)
      return;
    for (int e = start; e < E; ++e) {
      pick.push_back(e);
      self(self, e + 1);
      pick.pop_back();
    }
  };
  enumerate(enumerate, 0);

  std::vector<std::int64_t> now = detail::expertLoads(input.counts, N, E);
  std::vector<std::size_t> index(N, 0);
  std::vector<std::vector<int>> perRank(N);
  rt::Plan best;
  double bestCost = std::numeric_limits<double>::infinity();
  while (true) {
    for (int rank = 0; rank < N; ++rank)
      perRank[rank] = choices[index[rank]];
    rt::Layout layout = detail::layoutFromRanks(perRank, C, E);
    bool servesAll = true;
    for (int e = 0; e < E && servesAll; ++e)
      servesAll = now[e] == 0 || !layout.replicasOf(e).empty();
    if (servesAll) {
      for (int variant = 0; variant < 2; ++variant) {
        rt::Plan plan{layout,
                      variant == 0
                          ? detail::routeBalanced(layout, input.counts, cluster)
                          : detail::routeEvenPreferNode(layout, input.counts,
                                                        cluster)};
        double cost =
            evaluate(plan, input.counts, cluster, input.layer).criticalPath;
        if (cost < bestCost) {
          bestCost = cost;
          best = std::move(plan);
        }
      }
    }
    int rank = 0;
    while (rank < N && ++index[rank] == choices.size())
      index[rank++] = 0;
    if (rank == N)
      break;
  }
  return best;
}
