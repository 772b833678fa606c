//===- BoundsTest.cpp - the bounds are below every plan, and tight --------===//

#include "ErrorOf.h"
#include "LoadGenerator.h"

#include "laer/planner/Bounds.h"
#include "laer/planner/Exact.h"
#include "laer/planner/Planner.h"

#include <gtest/gtest.h>

#include <random>

using namespace laer;
using namespace laer::planner;
using namespace laer::test;

namespace {

std::int64_t busiest(const rt::Plan &plan) {
  std::vector<std::int64_t> rows = rt::rowsPerRank(plan);
  return *std::max_element(rows.begin(), rows.end());
}

} // namespace

TEST(Bounds, SlotCountingByHand) {
  // One hot expert over 4 single-slot ranks: a quarter each.
  EXPECT_EQ(
      maxRankRowsLowerBound(std::vector<std::int64_t>{100, 0, 0, 0}, 4, 1), 25);
  // Two experts, two single-slot ranks: each rank holds one whole expert.
  EXPECT_EQ(maxRankRowsLowerBound(std::vector<std::int64_t>{90, 10}, 2, 1), 90);
  // With two slots the hot expert splits: 50 + (40 + 10).
  EXPECT_EQ(maxRankRowsLowerBound(std::vector<std::int64_t>{90, 10}, 2, 2), 50);
  // The mean rounds up; no tokens, no rows.
  EXPECT_EQ(maxRankRowsLowerBound(std::vector<std::int64_t>{5, 5}, 4, 1), 3);
  EXPECT_EQ(maxRankRowsLowerBound(std::vector<std::int64_t>{0, 0}, 4, 1), 0);
  // 3 experts, 2 ranks x 2 slots: one replica spare. 70 needs 2 replicas
  // of at most 50 ... at M = 50: 2 + 1 + 1 = 4 slots.
  EXPECT_EQ(maxRankRowsLowerBound(std::vector<std::int64_t>{70, 20, 10}, 2, 2),
            50);
}

TEST(Bounds, RefusesImpossibleInputs) {
  EXPECT_EQ(errorOf([] {
              maxRankRowsLowerBound(std::vector<std::int64_t>{1, 1, 1}, 1, 2);
            }),
            "3 experts have tokens but N * C = 2 slots cannot hold a replica "
            "of each");
  EXPECT_EQ(errorOf([] {
              maxRankRowsLowerBound(std::vector<std::int64_t>{1, -1}, 2, 1);
            }),
            "the bound got a negative expert load -1");
  EXPECT_EQ(errorOf([] {
              maxRankRowsLowerBound(std::vector<std::int64_t>{1}, 0, 1);
            }),
            "the bound needs N >= 1 and C >= 1, got N = 0, C = 1");
}

TEST(Bounds, NoPlanBeatsEitherBound) {
  std::mt19937_64 rng(17);
  const char *planners[] = {"static", "flexmoe", "laer", "laer+"};
  int checked = 0;
  while (checked < 400) {
    int N = 1 + rng() % 24, E = 1 + rng() % 24, C = 1 + rng() % 4;
    if (N * C < E)
      continue;
    std::vector<std::int64_t> counts =
        skewedCounts(rng, N, E, 1 + rng() % 3000, (rng() % 250) / 100.0);
    PlannerInput input;
    input.cluster.numRanks = N;
    input.cluster.gpusPerNode = std::min(N, 8);
    input.layer.numExperts = E;
    input.layer.slotsPerRank = C;
    input.counts = counts;
    std::int64_t rows = maxRankRowsLowerBound(expertLoads(counts, N, E), N, C);
    double path = criticalPathLowerBound(rows, input.cluster, input.layer);
    for (const char *name : planners) {
      rt::Plan plan = makePlanner(name)->plan(input);
      EXPECT_LE(rows, busiest(plan)) << name << " N " << N << " E " << E;
      for (RestoreStart restore :
           {RestoreStart::BeforeRouter, RestoreStart::AfterPlan})
        EXPECT_LE(
            path,
            evaluate(plan, input.cluster, input.layer, restore).criticalPath *
                (1 + 1e-12))
            << name;
    }
    ++checked;
  }
}

TEST(Bounds, TheExactOptimumMeetsTheRowBoundWhenComputeDominates) {
  // Tiny instances: the optimum of exhaustive search is never below the
  // bound, and on compute-bound shapes it comes within 3% of it.
  std::mt19937_64 rng(5);
  for (int i = 0; i < 8; ++i) {
    std::vector<std::int64_t> counts = skewedCounts(rng, 4, 4, 16384, 1.2);
    PlannerInput input;
    input.cluster.numRanks = 4;
    input.cluster.gpusPerNode = 4;
    input.layer.numExperts = 4;
    input.layer.slotsPerRank = 2;
    input.counts = counts;
    ExactSolution exact = solveExact(input);
    std::int64_t rows = maxRankRowsLowerBound(expertLoads(counts, 4, 4), 4, 2);
    double path = criticalPathLowerBound(rows, input.cluster, input.layer);
    // (The bound rounds rows up to whole tokens; the search's routing is
    // fractional.)
    EXPECT_LE(path, exact.lowerBound * (1 + 1e-4));
    EXPECT_LT(exact.lowerBound, path * 1.03);
    EXPECT_LE(rows, busiest(exact.plan));
  }
}
