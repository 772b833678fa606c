//===- PlanBuildingTest.cpp - routing by shares and its traffic -----------===//
//
// laer+ prices its candidates from the tokens that stay in their node and
// routes only the chosen one in full: the priced traffic must be exactly
// the routed one's, and the routing must keep tokens in their node where
// the shares allow.
//
//===----------------------------------------------------------------------===//

#include "PlanBuilding.h"
#include "LoadGenerator.h"

#include "laer/planner/TokenSplit.h"

#include <gtest/gtest.h>

#include <random>

using namespace laer;
using namespace laer::planner;
using namespace laer::test;

namespace {

/// A valid random layout: every expert once (each in its own random
/// slot), the other slots random experts not yet on the rank, or empty.
rt::Layout randomLayout(std::mt19937_64 &rng, int N, int C, int E) {
  std::vector<int> slots(static_cast<std::size_t>(N) * C, rt::Layout::kEmpty);
  std::vector<int> order(static_cast<std::size_t>(N) * C);
  std::iota(order.begin(), order.end(), 0);
  std::shuffle(order.begin(), order.end(), rng);
  auto holds = [&](int rank, int expert) {
    for (int c = 0; c < C; ++c)
      if (slots[rank * C + c] == expert)
        return true;
    return false;
  };
  std::size_t next = 0;
  for (int e = 0; e < E; ++e)
    slots[order[next++]] = e;
  std::uniform_int_distribution<int> pick(-1, E - 1);
  for (; next < order.size(); ++next) {
    int expert = pick(rng);
    if (expert >= 0 && !holds(order[next] / C, expert))
      slots[order[next]] = expert;
  }
  return rt::Layout(N, C, E, std::move(slots));
}

TEST(RouteShares, PricedTrafficIsTheRoutedTraffic) {
  std::mt19937_64 rng(41);
  for (int trial = 0; trial < 300; ++trial) {
    int N = std::uniform_int_distribution<int>(2, 40)(rng);
    int C = std::uniform_int_distribution<int>(1, 4)(rng);
    int E = std::uniform_int_distribution<int>(1, std::min(N * C, 24))(rng);
    ClusterSpec cluster;
    cluster.numRanks = N;
    cluster.gpusPerNode = std::uniform_int_distribution<int>(1, 8)(rng);
    std::vector<std::int64_t> counts =
        skewedCounts(rng, N, E, std::uniform_int_distribution<int>(0, 300)(rng),
                     std::uniform_real_distribution<double>(0, 2)(rng));
    rt::Layout layout = randomLayout(rng, N, C, E);
    std::vector<std::int64_t> loads = expertLoads(counts, N, E);
    std::vector<std::int64_t> sourceTokens(N, 0);
    for (int s = 0; s < N; ++s)
      for (int e = 0; e < E; ++e)
        sourceTokens[s] += counts[static_cast<std::size_t>(s) * E + e];
    for (bool optimal : {false, true}) {
      std::vector<std::int64_t> shares =
          optimal ? optimalTokenSplit(layout, loads).shares
                  : detail::equalShares(layout, loads);
      SCOPED_TRACE(
          "trial " + std::to_string(trial) + " N " + std::to_string(N) + " G " +
          std::to_string(cluster.gpusPerNode) + " C " + std::to_string(C) +
          " E " + std::to_string(E) + (optimal ? " optimal" : " equal"));
      detail::LocalFill fill =
          detail::fillLocal(layout, counts, cluster, shares);
      RankTraffic priced =
          detail::trafficOfShares(layout, shares, fill, sourceTokens, loads);
      rt::Plan plan{layout,
                    detail::finishRouting(layout, counts, shares, fill)};
      ASSERT_NO_THROW(rt::validatePlan(plan, counts, {}));
      RankTraffic routed = trafficOf(plan, cluster);
      EXPECT_EQ(priced.rows, routed.rows);
      EXPECT_EQ(priced.sendIntra, routed.sendIntra);
      EXPECT_EQ(priced.sendInter, routed.sendInter);
      EXPECT_EQ(priced.recvIntra, routed.recvIntra);
      EXPECT_EQ(priced.recvInter, routed.recvInter);

      // Every replica computes its share; a source's tokens leave its node
      // only when its node's copies of the expert are full.
      const auto &replicas = layout.replicas();
      std::vector<std::int64_t> received(replicas.size(), 0);
      for (int s = 0; s < N; ++s)
        for (const rt::Routing::Entry &entry : plan.routing.row(s))
          received[entry.replica] += entry.tokens;
      EXPECT_EQ(received, shares);
      for (int s = 0; s < N; ++s)
        for (const rt::Routing::Entry &entry : plan.routing.row(s)) {
          int expert = replicas[entry.replica].expert;
          if (cluster.nodeOf(replicas[entry.replica].rank) == cluster.nodeOf(s))
            continue;
          for (int r : layout.replicasOf(expert))
            if (cluster.nodeOf(replicas[r].rank) == cluster.nodeOf(s)) {
              EXPECT_EQ(received[r], shares[r])
                  << "source " << s << " sends expert " << expert
                  << " out of its node";
            }
        }
    }
  }
}

TEST(RouteShares, SharesThatDoNotSumToTheLoadAreRefused) {
  rt::Layout layout = rt::Layout::roundRobin(4, 1, 2);
  ClusterSpec cluster;
  cluster.numRanks = 4;
  cluster.gpusPerNode = 2;
  std::vector<std::int64_t> counts = {3, 1, 2, 2, 0, 4, 1, 1};
  std::vector<std::int64_t> shares = {3, 4, 4, 4}; // expert 0 routes 6
  EXPECT_THROW(detail::routeShares(layout, counts, cluster, shares),
               rt::RuntimeError);
}

} // namespace
