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
  std::span<const std::int64_t> load =
      input.layoutLoad.empty() ? input.counts : input.layoutLoad;
  std::vector<std::int64_t> loads = detail::expertLoads(load, N, E);

  rt::Layout layout = rt::Layout::roundRobin(N, C, E);
  std::vector<int> slots = layout.slots();
  auto maxRankLoad = [&](const rt::Layout &candidate) {
    rt::Plan plan{candidate, rt::Routing::evenSplit(candidate, load)};
    std::vector<std::int64_t> tokens = rankTokens(plan);
    return *std::max_element(tokens.begin(), tokens.end());
  };
  std::int64_t best = maxRankLoad(layout);
  // Bounded number of moves, one replica each.
  for (int round = 0; round < 2 * N; ++round) {
    std::vector<int> replicas(E, 0);
    for (int expert : slots)
      if (expert != rt::Layout::kEmpty)
        ++replicas[expert];
    int hot = 0;
    for (int e = 1; e < E; ++e)
      if (loads[e] * replicas[hot] > loads[hot] * replicas[e])
        hot = e;
    rt::Plan current{layout, rt::Routing::evenSplit(layout, load)};
    std::vector<std::int64_t> tokens = rankTokens(current);
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
      if (spare >= 0 && (coldRank < 0 || tokens[rank] < tokens[coldRank])) {
        coldRank = rank;
        coldSlot = spare;
      }
    }
    if (coldRank < 0)
      break;
    std::vector<int> next = slots;
    next[coldRank * C + coldSlot] = hot;
    rt::Layout candidate(N, C, E, next);
    std::int64_t cost = maxRankLoad(candidate);
    if (cost >= best)
      break;
    best = cost;
    slots = std::move(next);
    layout = std::move(candidate);
  }
  rt::Routing routing = rt::Routing::evenSplit(layout, input.counts);
  return rt::Plan{std::move(layout), std::move(routing)};
}
