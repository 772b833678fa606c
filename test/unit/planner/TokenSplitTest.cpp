//===- TokenSplitTest.cpp - the best split of tokens among replicas -------===//
//
// optimalTokenSplit against enumeration of every integer split on small
// layouts, on a layout where the even split is far from the best, and
// laer+'s plans against the even split of the same layout.
//
//===----------------------------------------------------------------------===//

#include "laer/planner/TokenSplit.h"
#include "laer/planner/Planner.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <numeric>
#include <random>

using namespace laer;
using namespace laer::planner;

namespace {

/// The least busiest-rank rows over every integer split (exhaustive).
std::int64_t bestByEnumeration(const rt::Layout &layout,
                               std::span<const std::int64_t> loads) {
  std::vector<std::int64_t> rows(layout.numRanks(), 0);
  std::int64_t best = std::numeric_limits<std::int64_t>::max();
  std::function<void(int)> expert = [&](int e) {
    if (e == layout.numExperts()) {
      best = std::min(best, *std::max_element(rows.begin(), rows.end()));
      return;
    }
    std::span<const int> copies = layout.replicasOf(e);
    if (copies.empty()) {
      expert(e + 1);
      return;
    }
    // Every composition of loads[e] over the copies.
    std::function<void(std::size_t, std::int64_t)> give =
        [&](std::size_t c, std::int64_t left) {
          int rank = layout.replicas()[copies[c]].rank;
          if (c + 1 == copies.size()) {
            rows[rank] += left;
            expert(e + 1);
            rows[rank] -= left;
            return;
          }
          for (std::int64_t take = 0; take <= left; ++take) {
            rows[rank] += take;
            give(c + 1, left - take);
            rows[rank] -= take;
          }
        };
    give(0, loads[e]);
  };
  expert(0);
  return best;
}

/// Layout slots: each rank's first min(C, E) slots hold distinct experts
/// drawn at random, the rest stay empty.
std::vector<int> distinctExpertsPerRank(std::mt19937 &rng, int N, int C,
                                        int E) {
  std::vector<int> slots(N * C, rt::Layout::kEmpty);
  std::vector<int> order(E);
  std::iota(order.begin(), order.end(), 0);
  for (int rank = 0; rank < N; ++rank) {
    std::shuffle(order.begin(), order.end(), rng);
    for (int c = 0; c < C && c < E; ++c)
      slots[rank * C + c] = order[c];
  }
  return slots;
}

void expectValidSplit(const rt::Layout &layout,
                      std::span<const std::int64_t> loads,
                      const TokenSplit &split) {
  ASSERT_EQ(split.shares.size(), layout.replicas().size());
  std::vector<std::int64_t> rows(layout.numRanks(), 0);
  for (int e = 0; e < layout.numExperts(); ++e) {
    std::int64_t sum = 0;
    for (int copy : layout.replicasOf(e)) {
      EXPECT_GE(split.shares[copy], 0);
      sum += split.shares[copy];
      rows[layout.replicas()[copy].rank] += split.shares[copy];
    }
    EXPECT_EQ(sum, loads[e]) << "expert " << e;
  }
  EXPECT_EQ(*std::max_element(rows.begin(), rows.end()), split.maxRankRows);
}

TEST(TokenSplit, MatchesEnumerationOnSmallLayouts) {
  std::mt19937 rng(7);
  int instances = 0;
  for (int trial = 0; trial < 400; ++trial) {
    int N = 2 + trial % 3, C = 1 + trial % 2, E = 2 + trial % 3;
    if (N * C < E)
      continue;
    // Every expert placed somewhere.
    std::vector<int> slots = distinctExpertsPerRank(rng, N, C, E);
    for (int e = 0; e < E; ++e)
      if (std::find(slots.begin(), slots.end(), e) == slots.end())
        slots[e % N * C] = e; // may drop another: checked below
    rt::Layout layout(N, C, E, slots);
    std::vector<std::int64_t> counts(N * E, 0), loads(E, 0);
    for (int e = 0; e < E; ++e)
      if (!layout.replicasOf(e).empty())
        for (int source = 0; source < N; ++source)
          loads[e] += counts[source * E + e] =
              std::uniform_int_distribution<int>(0, 3)(rng);
    TokenSplit split = optimalTokenSplit(layout, loads);
    expectValidSplit(layout, loads, split);
    EXPECT_EQ(split.maxRankRows, bestByEnumeration(layout, loads))
        << "trial " << trial;
    ++instances;
  }
  EXPECT_GT(instances, 200);
}

TEST(TokenSplit, RebalanceMovesOnlyTheRowsAboveTheCap) {
  // From a lopsided start (each expert's tokens on a random replica), every
  // cap from the optimum up: a valid split, ranks above the cap end at it,
  // ranks at or below it never lose rows; below the optimum, no split.
  std::mt19937 rng(11);
  int capped = 0;
  for (int trial = 0; trial < 200; ++trial) {
    int N = 2 + trial % 5, C = 1 + trial % 3, E = 2 + trial % 4;
    if (N * C < E)
      continue;
    rt::Layout layout(N, C, E, distinctExpertsPerRank(rng, N, C, E));
    std::vector<std::int64_t> loads(E, 0), start(layout.replicas().size(), 0);
    for (int e = 0; e < E; ++e) {
      std::span<const int> copies = layout.replicasOf(e);
      if (copies.empty())
        continue;
      loads[e] = std::uniform_int_distribution<int>(0, 40)(rng);
      start[copies[std::uniform_int_distribution<std::size_t>(
          0, copies.size() - 1)(rng)]] = loads[e];
    }
    std::vector<std::int64_t> startRows(N, 0);
    for (std::size_t i = 0; i < start.size(); ++i)
      startRows[layout.replicas()[i].rank] += start[i];
    std::int64_t optimum = optimalTokenSplit(layout, loads).maxRankRows;
    std::int64_t startBusiest =
        *std::max_element(startRows.begin(), startRows.end());
    EXPECT_FALSE(rebalanceTokenSplit(layout, start, optimum - 1).has_value())
        << "trial " << trial;
    for (std::int64_t cap = optimum; cap <= startBusiest; ++cap) {
      std::optional<TokenSplit> split = rebalanceTokenSplit(layout, start, cap);
      ASSERT_TRUE(split.has_value()) << "trial " << trial << " cap " << cap;
      expectValidSplit(layout, loads, *split);
      EXPECT_LE(split->maxRankRows, cap);
      std::vector<std::int64_t> rows(N, 0);
      for (std::size_t i = 0; i < split->shares.size(); ++i)
        rows[layout.replicas()[i].rank] += split->shares[i];
      for (int rank = 0; rank < N; ++rank) {
        if (startRows[rank] > cap) {
          EXPECT_EQ(rows[rank], cap) << "trial " << trial << " rank " << rank;
        } else {
          EXPECT_GE(rows[rank], startRows[rank])
              << "trial " << trial << " rank " << rank;
        }
      }
      if (cap == startBusiest) {
        EXPECT_EQ(split->shares, start) << "nothing to move";
      }
      ++capped;
    }
  }
  EXPECT_GT(capped, 300);
}

TEST(TokenSplit, MovesAWholeExpertWhereTheEvenSplitDoesNot) {
  // Rank 0 computes A and B, rank 1 only A: the even split of A leaves
  // rank 0 with 15 rows; sending A to rank 1 gives 10 and 10.
  rt::Layout layout(2, 2, 2, {0, 1, 0, rt::Layout::kEmpty});
  std::vector<std::int64_t> loads = {10, 10};
  TokenSplit split = optimalTokenSplit(layout, loads);
  expectValidSplit(layout, loads, split);
  EXPECT_EQ(split.maxRankRows, 10);
  EXPECT_EQ(split.shares[layout.replicaAt(1, 0)], 10);
}

TEST(TokenSplit, AnExpertWithTokensNeedsAReplica) {
  rt::Layout layout(2, 1, 3, {0, 1});
  std::vector<std::int64_t> loads = {1, 1, 4};
  EXPECT_THROW(optimalTokenSplit(layout, loads), rt::RuntimeError);
  std::vector<std::int64_t> idle = {1, 1, 0};
  EXPECT_EQ(optimalTokenSplit(layout, idle).maxRankRows, 1);
  std::vector<std::int64_t> negative = {1, -1, 0};
  EXPECT_THROW(optimalTokenSplit(layout, negative), rt::RuntimeError);
}

// laer+ weighs the optimal split against equal shares on its own layout
// (on clusters above 64 ranks, where it does not also weigh the paper's
// plan): its plan is never costlier than the equal shares' in the cost
// model.
TEST(TokenSplit, LaerPlusRoutesNoWorseThanTheEvenSplit) {
  std::mt19937 rng(3);
  const int N = 96, E = 8, C = 2;
  for (int trial = 0; trial < 20; ++trial) {
    std::vector<std::int64_t> counts(N * E);
    for (int source = 0; source < N; ++source)
      for (int e = 0; e < E; ++e)
        counts[source * E + e] =
            std::uniform_int_distribution<int>(0, 400 >> e)(rng);
    PlannerInput input;
    input.cluster.numRanks = N;
    input.cluster.gpusPerNode = 4;
    input.layer.numExperts = E;
    input.layer.slotsPerRank = C;
    input.counts = counts;
    rt::Plan plan = makePlanner("laer+")->plan(input);
    rt::validatePlan(plan, counts, {});
    rt::Plan even{plan.layout, rt::Routing::evenSplit(plan.layout, counts)};
    EXPECT_LE(evaluate(plan, input.cluster, input.layer).criticalPath,
              evaluate(even, input.cluster, input.layer).criticalPath * 1.0001);
    std::vector<std::int64_t> loads(E, 0);
    for (int source = 0; source < N; ++source)
      for (int e = 0; e < E; ++e)
        loads[e] += counts[source * E + e];
    // The optimum bounds every split of the layout from below.
    std::vector<std::int64_t> rows = rt::rowsPerRank(plan);
    EXPECT_GE(*std::max_element(rows.begin(), rows.end()),
              optimalTokenSplit(plan.layout, loads).maxRankRows);
  }
}

} // namespace
