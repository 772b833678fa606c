//===- LaerPlusPlanner.cpp - our planner ----------------------------------===//
//
// Three ideas over the paper's heuristic:
// 1. Node-aware placement: an expert's replicas go to nodes in proportion
//    to the tokens those nodes route to it, then LPT onto the node's ranks;
//    tokens can then stay inside their node.
// 2. Balanced routing: every replica of an expert gets the same share of
//    its tokens, filled from the same rank, then the same node.
// 3. Replica counts by water-filling the load per replica, and plans
//    judged on the critical path of the cost model, not on summed traffic.
// 4. No lag: given a history, the layout for it (restorable ahead) and the
//    layout for this step's counts (restored after the plan) compete on
//    the critical path, so moving hot experts do not leave it behind.
// Candidates are priced from the tokens that stay in their node; only
// the chosen one is routed in full. O(N*C*G + E*N) work: milliseconds at
// N = 1024.
//
//===----------------------------------------------------------------------===//

#include "PlanBuilding.h"
#include "Planners.h"
#include "laer/planner/TokenSplit.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

using namespace laer;
using namespace laer::planner;

namespace {

/// Up to this many ranks laer+ also tries the paper's plan.
constexpr int kSmallCluster = 64;

rt::Layout placeNodeAware(const std::vector<int> &replicaCounts,
                          std::span<const std::int64_t> load,
                          std::span<const std::int64_t> loads,
                          const ClusterSpec &cluster, int slotsPerRank) {
  int N = cluster.numRanks, E = static_cast<int>(loads.size());
  int M = cluster.numNodes(), G = cluster.gpusPerNode;
  auto nodeSize = [&](int node) {
    return std::min(N, (node + 1) * G) - node * G;
  };
  std::vector<std::int64_t> nodeDemand(static_cast<std::size_t>(M) * E, 0);
  for (int source = 0; source < N; ++source)
    for (int e = 0; e < E; ++e)
      nodeDemand[cluster.nodeOf(source) * E + e] +=
          load[static_cast<std::size_t>(source) * E + e];
  std::vector<long> nodeFree(M);
  for (int node = 0; node < M; ++node)
    nodeFree[node] = static_cast<long>(nodeSize(node)) * slotsPerRank;

  // Replicas per (node, expert): proportional to demand, largest remainder.
  // Expert by expert over all nodes, so demand and copies are kept
  // expert-major here (M = 1024 nodes at N = 8192).
  std::vector<std::int64_t> demandOf(static_cast<std::size_t>(E) * M);
  for (int node = 0; node < M; ++node)
    for (int e = 0; e < E; ++e)
      demandOf[static_cast<std::size_t>(e) * M + node] =
          nodeDemand[static_cast<std::size_t>(node) * E + e];
  std::vector<int> order(E);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int a, int b) { return loads[a] > loads[b]; });
  std::vector<int> copies(static_cast<std::size_t>(M) * E, 0);
  std::vector<double> gap(M);
  std::vector<int> byGap;
  for (int e : order) {
    int R = replicaCounts[e];
    if (R == 0)
      continue;
    double perToken = loads[e] > 0 ? double(R) / double(loads[e]) : 0.0;
    auto room = [&](int node) {
      return std::min<long>(nodeSize(node) - copies[e * M + node],
                            nodeFree[node]);
    };
    // First the whole part of each node's share; then the rest by largest
    // remainder (ties to the lower node), then anywhere with room; each
    // pass over the nodes places at most one copy per node. Room never
    // grows, so only nodes with room after their whole part take part.
    int placed = 0;
    byGap.clear();
    for (int node = 0; node < M; ++node) {
      double want = loads[e] > 0 ? perToken * double(demandOf[e * M + node])
                                 : double(R) / M;
      // want >= 0: the cast is the floor.
      int take =
          static_cast<int>(std::min<long>({static_cast<long>(want), room(node),
                                           static_cast<long>(R - placed)}));
      copies[e * M + node] += take;
      nodeFree[node] -= take;
      placed += take;
      if (room(node) > 0) {
        byGap.push_back(node);
        gap[node] = want - copies[e * M + node];
      }
    }
    if (placed == R)
      continue;
    auto larger = [&](int a, int b) {
      return gap[a] > gap[b] || (gap[a] == gap[b] && a < b);
    };
    std::size_t needed = static_cast<std::size_t>(R - placed);
    if (needed < byGap.size())
      // One pass gives each of the first `needed` nodes a copy: only which
      // nodes they are matters, not their order.
      std::nth_element(byGap.begin(),
                       byGap.begin() + static_cast<std::ptrdiff_t>(needed),
                       byGap.end(), larger);
    else
      std::sort(byGap.begin(), byGap.end(), larger);
    while (placed < R) {
      int before = placed;
      for (int node : byGap) {
        if (placed == R)
          break;
        if (room(node) > 0) {
          ++copies[e * M + node];
          --nodeFree[node];
          ++placed;
        }
      }
      if (placed == before)
        break; // no node can take another copy
    }
  }

  // Inside each node: LPT by load per replica onto the least loaded rank
  // with a free slot that does not hold the expert yet.
  std::vector<std::vector<int>> perRank(N);
  std::vector<double> rankLoad(N, 0.0);
  // Which experts each rank holds, as bits: the check runs for every
  // (replica, candidate rank) pair.
  std::size_t words = (E + 63) / 64;
  std::vector<std::uint64_t> held(N * words, 0);
  auto holds = [&](int rank, int expert) {
    return (held[rank * words + expert / 64] >> (expert % 64)) & 1;
  };
  struct Item {
    double load;
    int expert;
  };
  std::vector<Item> items;
  for (int node = 0; node < M; ++node) {
    items.clear();
    for (int e = 0; e < E; ++e)
      for (int c = 0; c < copies[e * M + node]; ++c)
        items.push_back({double(loads[e]) / replicaCounts[e], e});
    std::stable_sort(
        items.begin(), items.end(),
        [](const Item &a, const Item &b) { return a.load > b.load; });
    int first = node * G, last = first + nodeSize(node);
    for (const Item &item : items) {
      int best = -1;
      for (int rank = first; rank < last; ++rank) {
        if (static_cast<int>(perRank[rank].size()) >= slotsPerRank ||
            holds(rank, item.expert))
          continue;
        if (best < 0 || rankLoad[rank] < rankLoad[best])
          best = rank;
      }
      if (best < 0)
        continue;
      perRank[best].push_back(item.expert);
      rankLoad[best] += item.load;
      held[static_cast<std::size_t>(best) * words + item.expert / 64] |=
          1ull << (item.expert % 64);
    }
  }
  return detail::layoutFromRanks(perRank, slotsPerRank, E);
}

/// A plan and the per-rank traffic its routing makes.
struct CostedPlan {
  rt::Plan plan;
  RankTraffic traffic;
};

/// laer+'s plan with the layout for `input`'s layout load (history or
/// this step's counts) and this step's tokens routed over it.
CostedPlan planForLoad(const PlannerInput &input) {
  const ClusterSpec &cluster = input.cluster;
  int N = cluster.numRanks, C = input.layer.slotsPerRank,
      E = input.layer.numExperts;
  std::span<const std::int64_t> load =
      input.layoutLoad.empty() ? input.counts : input.layoutLoad;
  // This step's tokens per expert and per source, in one pass.
  std::vector<std::int64_t> now(E, 0), sourceTokens(N, 0);
  for (int source = 0; source < N; ++source) {
    const std::int64_t *row =
        input.counts.data() + static_cast<std::size_t>(source) * E;
    std::int64_t total = 0;
    for (int e = 0; e < E; ++e) {
      now[e] += row[e];
      total += row[e];
    }
    sourceTokens[source] = total;
  }
  std::vector<std::int64_t> loads =
      input.layoutLoad.empty() ? now : detail::layoutLoads(input);
  // An expert that has tokens now must get a replica even if the layout
  // load says it is idle.
  for (int e = 0; e < E; ++e)
    if (now[e] > 0 && loads[e] == 0)
      loads[e] = 1;

  // Replicas by water-filling the load per replica; the even and
  // node-step counts of the paper never won on our test loads, so they
  // are not worth their time at scale.
  std::vector<int> replicaCounts =
      detail::priorityReplicaCounts(loads, N, C, 1);
  // Two layouts: node-aware (tokens can stay in their node) and plain
  // longest-first (the busiest rank can be lighter when nodes' demands are
  // lopsided, e.g. one replica per expert and node at E = 256). On each,
  // two splits of this step's tokens, each filled from the replica's own
  // rank, then its node, then others: equal shares per replica, and the
  // shares that minimise the busiest rank (a max flow). The flow ignores
  // where the tokens come from, so where token traffic outweighs the
  // compute it saves, the cost model keeps the equal shares. Longest-first
  // with equal shares is the greedy planner's plan, so laer+ never costs
  // more than the greedy.
  //
  // Each candidate is priced from the tokens that stay in their node
  // (O(N * C) work); only the cheapest gets its whole routing, millions of
  // entries at N = 8192.
  std::vector<rt::Layout> layouts;
  layouts.reserve(2);
  double secondsPerToken = input.layer.flopsPerToken() /
                           (cluster.flopsPerSecond * cluster.computeEfficiency);
  double bestCost = std::numeric_limits<double>::infinity();
  const rt::Layout *chosenLayout = nullptr;
  std::vector<std::int64_t> chosenShares;
  detail::LocalFill chosenFill;
  RankTraffic chosenTraffic;
  auto price = [&](const rt::Layout &layout, std::vector<std::int64_t> shares) {
    detail::LocalFill fill =
        detail::fillLocal(layout, input.counts, cluster, shares);
    RankTraffic traffic =
        detail::trafficOfShares(layout, shares, fill, sourceTokens, now);
    double cost = evaluate(traffic, cluster, input.layer).criticalPath;
    if (cost < bestCost) {
      bestCost = cost;
      chosenLayout = &layout;
      chosenShares = std::move(shares);
      chosenFill = std::move(fill);
      chosenTraffic = std::move(traffic);
    }
    return cost;
  };
  for (int which = 0; which < 2; ++which) {
    rt::Layout candidate =
        which == 0 ? placeNodeAware(replicaCounts, load, loads, cluster, C)
                   : detail::placeLongestFirst(replicaCounts, loads, N, C);
    if (!detail::servesAll(candidate, now))
      continue;
    const rt::Layout &layout = layouts.emplace_back(std::move(candidate));
    std::vector<std::int64_t> equal = detail::equalShares(layout, now);
    TokenSplit split = optimalTokenSplit(layout, now);
    std::int64_t equalBusiest = detail::busiestRankRows(layout, equal);
    double equalCost = price(layout, equal);
    double flowCost = price(layout, std::move(split.shares));
    // On the node-aware layout, splits in between: equal shares with only
    // the rows above a cap moved, so most tokens keep their node while the
    // busiest rank gets lighter. The cap halfway, then a quarter of the
    // way from the cheaper end; not worth it where all the compute the
    // flow saves is under 0.5% of the step.
    double computeSpread =
        input.layer.computePasses() *
        static_cast<double>(equalBusiest - split.maxRankRows) * secondsPerToken;
    if (which == 1 || computeSpread < 0.005 * std::min(equalCost, flowCost))
      continue;
    auto capped = [&](int quarters) {
      std::int64_t cap =
          split.maxRankRows + (equalBusiest - split.maxRankRows) * quarters / 4;
      std::optional<TokenSplit> rebalanced =
          rebalanceTokenSplit(layout, equal, cap);
      if (rebalanced)
        price(layout, std::move(rebalanced->shares));
    };
    capped(2);
    capped(flowCost < equalCost ? 1 : 3);
  }

  CostedPlan best;
  bool planned = chosenLayout != nullptr;
  if (planned) {
    best.plan.layout = *chosenLayout;
    best.plan.routing = detail::finishRouting(
        *chosenLayout, input.counts, chosenShares, std::move(chosenFill));
    best.traffic = std::move(chosenTraffic);
  }
  // On small clusters the paper's plan is cheap: keep it if it is better
  // (it has not been on our test loads), so laer+ is never worse there.
  if (N <= kSmallCluster) {
    rt::Plan paper = LaerPlanner().plan(input);
    if (detail::servesAll(paper.layout, now)) {
      RankTraffic traffic = trafficOf(paper, cluster);
      if (evaluate(traffic, cluster, input.layer).criticalPath < bestCost) {
        best = {std::move(paper), std::move(traffic)};
        planned = true;
      }
    }
  }
  if (!planned) {
    best.plan = StaticPlanner().plan(input);
    best.traffic = trafficOf(best.plan, cluster);
  }
  best.plan.layoutAhead = !input.layoutLoad.empty();
  return best;
}

} // namespace

rt::Plan LaerPlusPlanner::plan(const PlannerInput &input) {
  detail::requireEnoughSlots(input, "laer+");
  PlannerInput fresh = input;
  fresh.layoutLoad = {};
  if (input.layoutLoad.empty())
    return planForLoad(fresh).plan;
  // A layout for the history can be restored before the router (where the
  // executor prefetches); one for this step's counts balances this step
  // but restores after the plan. When hot experts move, the history's
  // layout is off by far more than the exposed restore costs: choose by
  // the critical path each would have.
  CostedPlan predicted = planForLoad(input);
  CostedPlan current = planForLoad(fresh);
  double predictedCost =
      evaluate(predicted.traffic, input.cluster, input.layer,
               input.prefetchesRestore ? RestoreStart::BeforeRouter
                                       : RestoreStart::AfterPlan)
          .criticalPath;
  double currentCost = evaluate(current.traffic, input.cluster, input.layer,
                                RestoreStart::AfterPlan)
                           .criticalPath;
  return predictedCost <= currentCost ? std::move(predicted.plan)
                                      : std::move(current.plan);
}
