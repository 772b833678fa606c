//===- PlanBuilding.cpp - pieces the planners share -----------------------===//

#include "PlanBuilding.h"

#include <algorithm>
#include <numeric>
#include <queue>

using namespace laer;
using namespace laer::planner;

std::vector<std::int64_t>
planner::expertLoads(std::span<const std::int64_t> counts, int numRanks,
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

rt::Layout detail::placeLongestFirst(const std::vector<int> &replicaCounts,
                                     std::span<const std::int64_t> loads,
                                     int numRanks, int slotsPerRank) {
  int E = static_cast<int>(loads.size());
  // Experts by load per replica, heaviest first (ties: lower expert).
  std::vector<int> order;
  for (int e = 0; e < E; ++e)
    if (replicaCounts[e] > 0)
      order.push_back(e);
  auto perReplica = [&](int e) { return double(loads[e]) / replicaCounts[e]; };
  std::stable_sort(order.begin(), order.end(),
                   [&](int a, int b) { return perReplica(a) > perReplica(b); });
  // Min-heap of (load, rank) over ranks with a free slot; ties to the
  // lower rank. An expert's copies go to distinct ranks: the least loaded
  // ones, all popped before any is pushed back (placing them one by one,
  // each skipping the ranks that already hold the expert, chooses the
  // same ranks, at O(N) a copy when an expert has hundreds of copies).
  using Entry = std::pair<double, int>;
  std::priority_queue<Entry, std::vector<Entry>, std::greater<>> open;
  for (int rank = 0; rank < numRanks; ++rank)
    open.push({0.0, rank});
  std::vector<std::vector<int>> perRank(numRanks);
  std::vector<Entry> chosen;
  for (int e : order) {
    chosen.clear();
    while (static_cast<int>(chosen.size()) < replicaCounts[e] &&
           !open.empty()) {
      chosen.push_back(open.top());
      open.pop();
    }
    for (auto [load, rank] : chosen) {
      perRank[rank].push_back(e);
      if (static_cast<int>(perRank[rank].size()) < slotsPerRank)
        open.push({load + perReplica(e), rank});
    }
  }
  return layoutFromRanks(perRank, slotsPerRank, E);
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

std::vector<std::int64_t>
detail::equalShares(const rt::Layout &layout,
                    std::span<const std::int64_t> loads) {
  std::vector<std::int64_t> shares(layout.replicas().size(), 0);
  for (int e = 0; e < layout.numExperts(); ++e) {
    std::span<const int> copies = layout.replicasOf(e);
    auto R = static_cast<std::int64_t>(copies.size());
    for (std::int64_t i = 0; i < R; ++i)
      shares[copies[i]] = loads[e] / R + (i < loads[e] % R ? 1 : 0);
  }
  return shares;
}

std::int64_t detail::busiestRankRows(const rt::Layout &layout,
                                     std::span<const std::int64_t> shares) {
  std::vector<std::int64_t> rows(layout.numRanks(), 0);
  for (std::size_t r = 0; r < shares.size(); ++r)
    rows[layout.replicas()[r].rank] += shares[r];
  return rows.empty() ? 0 : *std::max_element(rows.begin(), rows.end());
}

rt::Routing detail::routeBalanced(const rt::Layout &layout,
                                  std::span<const std::int64_t> counts,
                                  const ClusterSpec &cluster) {
  std::vector<std::int64_t> loads =
      expertLoads(counts, layout.numRanks(), layout.numExperts());
  return routeShares(layout, counts, cluster, equalShares(layout, loads));
}

rt::Routing detail::routeShares(const rt::Layout &layout,
                                std::span<const std::int64_t> counts,
                                const ClusterSpec &cluster,
                                std::span<const std::int64_t> shares) {
  // Per expert, replicas take their shares from (1) their own rank, (2)
  // their node's ranks in order, (3) every rank in order. Each expert's
  // fill is independent of the others', so the three phases run source by
  // source over all experts at once: the counts are read row by row and
  // the entries come out in source order (N = 8192 x E = 256 gives
  // millions of entries; the order is what keeps that fast).
  int N = layout.numRanks(), E = layout.numExperts(), C = layout.slotsPerRank();
  const auto &replicas = layout.replicas();
  std::vector<std::int64_t> loads = expertLoads(counts, N, E);
  std::vector<std::int64_t> capacity(shares.begin(), shares.end());
  std::vector<std::int64_t> shared(E, 0);
  for (std::size_t r = 0; r < replicas.size(); ++r)
    shared[replicas[r].expert] += capacity[r];
  for (int e = 0; e < E; ++e)
    if (!layout.replicasOf(e).empty() && shared[e] != loads[e])
      rt::fail({}, "routing: the replicas of expert ", e, " take ", shared[e],
               " tokens, its sources route ", loads[e]);
  std::vector<std::int64_t> demand(counts.begin(), counts.end());
  // Each phase emits its entries source by source (a phase's row of one
  // source is by increasing replica, but for the own-rank phase's C); the
  // rows are merged at the end.
  using Entry = rt::Routing::Entry;
  struct Phase {
    std::vector<std::size_t> rowStart;
    std::vector<Entry> entries;
  };
  Phase own, node, rest;
  for (Phase *phase : {&own, &node, &rest})
    phase->rowStart.assign(N + 1, 0);
  auto send = [&](Phase &phase, int replica, std::int64_t &want) {
    std::int64_t take = std::min(want, capacity[replica]);
    if (take > 0) {
      phase.entries.push_back({replica, take});
      want -= take;
      capacity[replica] -= take;
    }
  };

  // 1. Tokens of a replica's own rank stay there.
  own.entries.reserve(static_cast<std::size_t>(N) * C);
  for (int rank = 0; rank < N; ++rank) {
    for (int slot = 0; slot < C; ++slot)
      if (int r = layout.replicaAt(rank, slot); r >= 0)
        send(own, r,
             demand[static_cast<std::size_t>(rank) * E + replicas[r].expert]);
    auto row =
        own.entries.begin() + static_cast<std::ptrdiff_t>(own.rowStart[rank]);
    std::sort(row, own.entries.end(), [](const Entry &a, const Entry &b) {
      return a.replica < b.replica;
    });
    own.rowStart[rank + 1] = own.entries.size();
  }

  // 2. Inside each node: the node's copies of each expert (contiguous in
  // its rank-ordered replicas) filled by the node's sources in order.
  std::vector<std::size_t> nodeBegin(E, 0), next(E), end(E);
  std::vector<int> present;
  for (int n = 0; n < cluster.numNodes(); ++n) {
    present.clear();
    for (int e = 0; e < E; ++e) {
      std::span<const int> copies = layout.replicasOf(e);
      std::size_t last = nodeBegin[e];
      while (last < copies.size() &&
             cluster.nodeOf(replicas[copies[last]].rank) == n)
        ++last;
      next[e] = nodeBegin[e];
      end[e] = last;
      nodeBegin[e] = last;
      if (next[e] < end[e])
        present.push_back(e);
    }
    int firstRank = n * cluster.gpusPerNode;
    int lastRank = std::min(N, firstRank + cluster.gpusPerNode);
    for (int source = firstRank; source < lastRank; ++source) {
      for (int e : present) {
        std::span<const int> copies = layout.replicasOf(e);
        std::int64_t &want = demand[static_cast<std::size_t>(source) * E + e];
        while (want > 0 && next[e] < end[e]) {
          send(node, copies[next[e]], want);
          if (capacity[copies[next[e]]] == 0)
            ++next[e];
        }
      }
      node.rowStart[source + 1] = node.entries.size();
    }
  }

  // 3. What is left crosses nodes.
  std::size_t pairs = 0;
  for (std::int64_t d : demand)
    pairs += d != 0;
  // Each pair left ends one entry; a replica that fills up, at most one
  // more.
  rest.entries.reserve(pairs + replicas.size());
  std::fill(next.begin(), next.end(), 0);
  for (int source = 0; source < N; ++source) {
    for (int e = 0; e < E; ++e) {
      std::int64_t &want = demand[static_cast<std::size_t>(source) * E + e];
      if (want == 0)
        continue;
      std::span<const int> copies = layout.replicasOf(e);
      while (want > 0 && next[e] < copies.size()) {
        send(rest, copies[next[e]], want);
        if (capacity[copies[next[e]]] == 0)
          ++next[e];
      }
    }
    rest.rowStart[source + 1] = rest.entries.size();
  }

  // Each row: the three phases' runs merged by replica (a source never
  // sends to one replica in two phases: a phase moves on only once the
  // source's tokens or the replica's room are used up).
  std::vector<std::size_t> rowStart(N + 1, 0);
  std::vector<Entry> entries(own.entries.size() + node.entries.size() +
                             rest.entries.size());
  auto byReplica = [](const Entry &a, const Entry &b) {
    return a.replica < b.replica;
  };
  std::vector<Entry> mergedTwo;
  std::size_t out = 0;
  for (int source = 0; source < N; ++source) {
    auto run = [&](const Phase &phase) {
      return std::span<const Entry>(phase.entries)
          .subspan(phase.rowStart[source],
                   phase.rowStart[source + 1] - phase.rowStart[source]);
    };
    std::span<const Entry> a = run(own), b = run(node), c = run(rest);
    mergedTwo.resize(a.size() + b.size());
    std::merge(a.begin(), a.end(), b.begin(), b.end(), mergedTwo.begin(),
               byReplica);
    out = static_cast<std::size_t>(
        std::merge(mergedTwo.begin(), mergedTwo.end(), c.begin(), c.end(),
                   entries.begin() + static_cast<std::ptrdiff_t>(out),
                   byReplica) -
        entries.begin());
    rowStart[source + 1] = out;
  }
  return rt::Routing::fromRows(static_cast<int>(replicas.size()),
                               std::move(rowStart), std::move(entries));
}
