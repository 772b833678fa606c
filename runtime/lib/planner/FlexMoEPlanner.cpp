//===- FlexMoEPlanner.cpp - FlexMoE-style greedy replica moves ------------===//

#include "PlanBuilding.h"
#include "Planners.h"

#include <algorithm>

using namespace laer;
using namespace laer::planner;

rt::Plan FlexMoEPlanner::plan(const PlannerInput &input) {
  detail::requireEnoughSlots(input, "flexmoe");
  int N = input.cluster.numRanks, C = input.layer.slotsPerRank,
      E = input.layer.numExperts;
  std::vector<std::int64_t> loads = detail::layoutLoads(input);

  rt::Layout start = rt::Layout::roundRobin(N, C, E);
  std::vector<int> slots = start.slots();
  std::vector<int> replicas(E, 0);
  for (int expert : slots)
    if (expert != rt::Layout::kEmpty)
      ++replicas[expert];
  // Rank load under an even split: the sum of its experts' load per
  // replica. O(N * C) per evaluation, no routing built inside the loop.
  auto rankLoads = [&](const std::vector<int> &layoutSlots,
                       const std::vector<int> &copies) {
    std::vector<double> perRank(N, 0.0);
    for (int rank = 0; rank < N; ++rank)
      for (int c = 0; c < C; ++c)
        if (int e = layoutSlots[rank * C + c]; e != rt::Layout::kEmpty)
          perRank[rank] += double(loads[e]) / copies[e];
    return perRank;
  };
  std::vector<double> current = rankLoads(slots, replicas);
  double best = *std::max_element(current.begin(), current.end());
  // Bounded number of moves, one replica each.
  for (int round = 0; round < 2 * N; ++round) {
    int hot = 0;
    for (int e = 1; e < E; ++e)
      if (loads[e] * replicas[hot] > loads[hot] * replicas[e])
        hot = e;
    // The slot a rank can give up: an empty one, else the one whose expert
    // has a spare replica and the lowest load per replica; -1 if none or if
    // the rank already holds the hot expert.
    auto spareSlot = [&](int rank) {
      int best = -1;
      double bestLoad = 0;
      for (int c = 0; c < C; ++c)
        if (slots[rank * C + c] == hot)
          return -1;
      for (int c = 0; c < C; ++c) {
        int expert = slots[rank * C + c];
        if (expert == rt::Layout::kEmpty)
          return c;
        double perReplica = double(loads[expert]) / replicas[expert];
        if (replicas[expert] > 1 && (best < 0 || perReplica < bestLoad)) {
          best = c;
          bestLoad = perReplica;
        }
      }
      return best;
    };
    int coldRank = -1, coldSlot = -1;
    for (int rank = 0; rank < N; ++rank) {
      int spare = spareSlot(rank);
      if (spare >= 0 && (coldRank < 0 || current[rank] < current[coldRank])) {
        coldRank = rank;
        coldSlot = spare;
      }
    }
    if (coldRank < 0)
      break;
    std::vector<int> next = slots;
    std::vector<int> nextReplicas = replicas;
    if (int old = next[coldRank * C + coldSlot]; old != rt::Layout::kEmpty)
      --nextReplicas[old];
    next[coldRank * C + coldSlot] = hot;
    ++nextReplicas[hot];
    std::vector<double> loadsAfter = rankLoads(next, nextReplicas);
    double cost = *std::max_element(loadsAfter.begin(), loadsAfter.end());
    if (cost >= best)
      break;
    best = cost;
    slots = std::move(next);
    replicas = std::move(nextReplicas);
    current = std::move(loadsAfter);
  }
  rt::Layout layout(N, C, E, slots);
  rt::Routing routing = rt::Routing::evenSplit(layout, input.counts);
  // Laid out for the history when there is one (the paper's setting).
  return rt::Plan{std::move(layout), std::move(routing),
                  !input.layoutLoad.empty()};
}
