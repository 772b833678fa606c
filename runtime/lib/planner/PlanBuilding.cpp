//===- PlanBuilding.cpp - pieces the planners share -----------------------===//

#include "PlanBuilding.h"

#include <algorithm>
#include <numeric>
#include <queue>

using namespace laer;
using namespace laer::planner;

std::vector<std::int64_t>
detail::expertLoads(std::span<const std::int64_t> counts, int numRanks,
                    int numExperts) {
  std::vector<std::int64_t> loads(numExperts, 0);
  for (int source = 0; source < numRanks; ++source)
    for (int e = 0; e < numExperts; ++e)
      loads[e] += counts[static_cast<std::size_t>(source) * numExperts + e];
  return loads;
}

std::vector<std::int64_t> detail::layoutLoads(const PlannerInput &input) {
  return expertLoads(input.layoutLoad.empty() ? input.counts
                                              : input.layoutLoad,
                     input.cluster.numRanks, input.layer.numExperts);
}

bool detail::servesAll(const rt::Layout &layout,
                       std::span<const std::int64_t> loads) {
  for (int e = 0; e < layout.numExperts(); ++e)
    if (loads[e] > 0 && layout.replicasOf(e).empty())
      return false;
  return true;
}

void detail::requireEnoughSlots(const PlannerInput &input,
                                const char *planner) {
  const ClusterSpec &cluster = input.cluster;
  const LayerSpec &layer = input.layer;
  if (static_cast<long>(cluster.numRanks) * layer.slotsPerRank <
      layer.numExperts)
    rt::fail({}, planner, " planner needs N * C >= E to give every expert a "
                          "slot, got N = ",
             cluster.numRanks, ", C = ", layer.slotsPerRank, ", E = ",
             layer.numExperts);
  auto expected = static_cast<std::size_t>(cluster.numRanks) *
                  static_cast<std::size_t>(layer.numExperts);
  if (input.counts.size() != expected)
    rt::fail({}, planner, " planner got ", input.counts.size(),
             " load counts for N * E = ", expected);
  if (!input.layoutLoad.empty() && input.layoutLoad.size() != expected)
    rt::fail({}, planner, " planner got ", input.layoutLoad.size(),
             " layout-load counts for N * E = ", expected);
}

namespace {
/// Experts by decreasing load, ties by index: a deterministic order.
std::vector<int> byLoad(std::span<const std::int64_t> loads) {
  std::vector<int> order(loads.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int a, int b) { return loads[a] > loads[b]; });
  return order;
}
} // namespace

std::vector<int> detail::evenReplicaCounts(std::span<const std::int64_t> loads,
                                           int numRanks, int slotsPerRank) {
  int E = static_cast<int>(loads.size());
  long slots = static_cast<long>(numRanks) * slotsPerRank;
  std::vector<int> counts(E, static_cast<int>(std::min<long>(slots / E,
                                                             numRanks)));
  long extra = slots - static_cast<long>(counts[0]) * E;
  for (int e : byLoad(loads)) {
    if (extra == 0)
      break;
    if (counts[e] < numRanks) {
      ++counts[e];
      --extra;
    }
  }
  return counts;
}

std::vector<int>
detail::priorityReplicaCounts(std::span<const std::int64_t> loads,
                              int numRanks, int slotsPerRank, int step) {
  int E = static_cast<int>(loads.size());
  long slots = static_cast<long>(numRanks) * slotsPerRank;
  std::vector<int> counts(E, 0);
  long used = 0;
  for (int e = 0; e < E; ++e)
    if (loads[e] > 0) {
      counts[e] = 1;
      ++used;
    }
  // Max-heap on load per replica; ties to the lower expert index.
  auto less = [&](int a, int b) {
    double la = double(loads[a]) / counts[a], lb = double(loads[b]) / counts[b];
    return la < lb || (la == lb && a > b);
  };
  std::priority_queue<int, std::vector<int>, decltype(less)> heap(less);
  for (int e = 0; e < E; ++e)
    if (counts[e] > 0 && counts[e] < numRanks)
      heap.push(e);
  while (used < slots && !heap.empty()) {
    int e = heap.top();
    heap.pop();
    int add = static_cast<int>(
        std::min<long>({step, slots - used, numRanks - counts[e]}));
    counts[e] += add;
    used += add;
    if (counts[e] < numRanks)
      heap.push(e);
  }
  return counts;
}

rt::Layout
detail::layoutFromRanks(const std::vector<std::vector<int>> &perRank,
                        int slotsPerRank, int numExperts) {
  std::vector<int> slots(perRank.size() * slotsPerRank, rt::Layout::kEmpty);
  for (std::size_t rank = 0; rank < perRank.size(); ++rank)
    for (std::size_t c = 0; c < perRank[rank].size(); ++c)
      slots[rank * slotsPerRank + c] = perRank[rank][c];
  return rt::Layout(static_cast<int>(perRank.size()), slotsPerRank,
                    numExperts, std::move(slots));
}

/// Each source splits an expert's tokens evenly over the replicas in its
/// own node, or over all replicas when its node has none.
rt::Routing detail::routeEvenPreferNode(const rt::Layout &layout,
                                        std::span<const std::int64_t> counts,
                                        const ClusterSpec &cluster) {
  int N = layout.numRanks(), E = layout.numExperts(), M = cluster.numNodes();
  // Replicas of each expert per node, bucketed once: O(N * C).
  std::vector<std::vector<int>> local(static_cast<std::size_t>(M) * E);
  for (int index = 0; index < static_cast<int>(layout.replicas().size());
       ++index) {
    const rt::Replica &replica = layout.replicas()[index];
    local[cluster.nodeOf(replica.rank) * E + replica.expert].push_back(index);
  }
  std::vector<rt::Routing::Triplet> triplets;
  triplets.reserve(static_cast<std::size_t>(N) * E * 2);
  for (int source = 0; source < N; ++source) {
    for (int e = 0; e < E; ++e) {
      std::int64_t count = counts[static_cast<std::size_t>(source) * E + e];
      std::span<const int> replicas = layout.replicasOf(e);
      if (count == 0 || replicas.empty())
        continue;
      const std::vector<int> &inNode = local[cluster.nodeOf(source) * E + e];
      std::span<const int> targets =
          inNode.empty() ? replicas : std::span<const int>(inNode);
      auto n = static_cast<std::int64_t>(targets.size());
      for (std::int64_t i = 0; i < n; ++i) {
        std::int64_t share =
            count / n + ((i - source % n + n) % n < count % n);
        if (share > 0)
          triplets.push_back({source, targets[i], share});
      }
    }
  }
  return rt::Routing::fromTriplets(
      N, static_cast<int>(layout.replicas().size()), triplets);
}

rt::Routing detail::routeBalanced(const rt::Layout &layout,
                                  std::span<const std::int64_t> counts,
                                  const ClusterSpec &cluster) {
  int N = layout.numRanks(), E = layout.numExperts();
  std::vector<std::int64_t> loads = expertLoads(counts, N, E);
  std::vector<std::int64_t> shares(layout.replicas().size(), 0);
  for (int e = 0; e < E; ++e) {
    std::span<const int> copies = layout.replicasOf(e);
    auto R = static_cast<std::int64_t>(copies.size());
    for (std::int64_t i = 0; i < R; ++i)
      shares[copies[i]] = loads[e] / R + (i < loads[e] % R ? 1 : 0);
  }
  return routeShares(layout, counts, cluster, shares);
}

rt::Routing detail::routeShares(const rt::Layout &layout,
                                std::span<const std::int64_t> counts,
                                const ClusterSpec &cluster,
                                std::span<const std::int64_t> shares) {
  int N = layout.numRanks(), E = layout.numExperts();
  const auto &replicas = layout.replicas();
  std::vector<rt::Routing::Triplet> triplets;
  triplets.reserve(static_cast<std::size_t>(N) * E * 2);
  std::vector<std::int64_t> demand(N), capacity;
  for (int e = 0; e < E; ++e) {
    std::span<const int> copies = layout.replicasOf(e);
    if (copies.empty())
      continue;
    std::int64_t total = 0;
    for (int source = 0; source < N; ++source)
      total += demand[source] = counts[static_cast<std::size_t>(source) * E + e];
    if (total == 0)
      continue;
    capacity.resize(copies.size());
    std::int64_t shared = 0;
    for (std::size_t c = 0; c < copies.size(); ++c)
      shared += capacity[c] = shares[copies[c]];
    if (shared != total)
      rt::fail({}, "routing: the replicas of expert ", e, " take ", shared,
               " tokens, its sources route ", total);
    auto send = [&](int source, std::size_t copy, std::int64_t tokens) {
      triplets.push_back({source, copies[copy], tokens});
      demand[source] -= tokens;
      capacity[copy] -= tokens;
    };
    // 1. Tokens of the replica's own rank stay there.
    for (std::size_t copy = 0; copy < copies.size(); ++copy) {
      int rank = replicas[copies[copy]].rank;
      std::int64_t take = std::min(demand[rank], capacity[copy]);
      if (take > 0)
        send(rank, copy, take);
    }
    // 2. Inside each node; replicas are in rank order, so a node's copies
    // are contiguous.
    std::size_t begin = 0;
    while (begin < copies.size()) {
      int node = cluster.nodeOf(replicas[copies[begin]].rank);
      std::size_t end = begin;
      while (end < copies.size() &&
             cluster.nodeOf(replicas[copies[end]].rank) == node)
        ++end;
      int firstRank = node * cluster.gpusPerNode;
      int lastRank = std::min(N, firstRank + cluster.gpusPerNode);
      std::size_t copy = begin;
      for (int source = firstRank; source < lastRank; ++source) {
        while (demand[source] > 0 && copy < end) {
          std::int64_t take = std::min(demand[source], capacity[copy]);
          if (take > 0)
            send(source, copy, take);
          if (capacity[copy] == 0)
            ++copy;
        }
      }
      begin = end;
    }
    // 3. What is left crosses nodes.
    std::size_t copy = 0;
    for (int source = 0; source < N; ++source) {
      while (demand[source] > 0 && copy < copies.size()) {
        std::int64_t take = std::min(demand[source], capacity[copy]);
        if (take > 0)
          send(source, copy, take);
        if (capacity[copy] == 0)
          ++copy;
      }
    }
  }
  return rt::Routing::fromTriplets(N, static_cast<int>(replicas.size()),
                                   triplets);
}
