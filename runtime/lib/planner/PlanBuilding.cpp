//===- PlanBuilding.cpp - pieces the planners share -----------------------===//

#include "PlanBuilding.h"

#include <algorithm>
#include <numeric>
#include <queue>

using namespace laer;
using namespace laer::planner;

using Entry = rt::Routing::Entry;

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
  return expertLoads(input.layoutLoad.empty() ? input.counts : input.layoutLoad,
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
    rt::fail({}, planner,
             " planner needs N * C >= E to give every expert a "
             "slot, got N = ",
             cluster.numRanks, ", C = ", layer.slotsPerRank,
             ", E = ", layer.numExperts);
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
  std::vector<int> counts(
      E, static_cast<int>(std::min<long>(slots / E, numRanks)));
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
detail::priorityReplicaCounts(std::span<const std::int64_t> loads, int numRanks,
                              int slotsPerRank, int step) {
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

rt::Layout detail::layoutFromRanks(const std::vector<std::vector<int>> &perRank,
                                   int slotsPerRank, int numExperts) {
  std::vector<int> slots(perRank.size() * slotsPerRank, rt::Layout::kEmpty);
  for (std::size_t rank = 0; rank < perRank.size(); ++rank)
    for (std::size_t c = 0; c < perRank[rank].size(); ++c)
      slots[rank * slotsPerRank + c] = perRank[rank][c];
  return rt::Layout(static_cast<int>(perRank.size()), slotsPerRank, numExperts,
                    std::move(slots));
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
        std::int64_t share = count / n + ((i - source % n + n) % n < count % n);
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

namespace {

/// One source's `want` tokens of an expert into its copies [next, end) in
/// order, each up to its room: appends an entry per copy that takes some,
/// and moves `next` past the copies it fills up.
void fillCopies(std::span<const int> copies, std::size_t &next, std::size_t end,
                std::int64_t &want, std::vector<std::int64_t> &capacity,
                std::vector<Entry> &entries) {
  while (want > 0 && next < end) {
    int r = copies[next];
    std::int64_t take = std::min(want, capacity[r]);
    if (take > 0) {
      entries.push_back({r, take});
      want -= take;
      capacity[r] -= take;
    }
    if (capacity[r] == 0)
      ++next;
  }
}

} // namespace

detail::LocalFill detail::fillLocal(const rt::Layout &layout,
                                    std::span<const std::int64_t> counts,
                                    const ClusterSpec &cluster,
                                    std::span<const std::int64_t> shares) {
  int N = layout.numRanks(), E = layout.numExperts(), C = layout.slotsPerRank();
  const auto &replicas = layout.replicas();
  if (shares.size() != replicas.size())
    rt::fail({}, "routing: ", shares.size(), " shares for ", replicas.size(),
             " replicas");
  LocalFill fill;
  fill.capacityLeft.assign(shares.begin(), shares.end());
  std::vector<std::int64_t> &capacity = fill.capacityLeft;
  auto count = [&](int source, int expert) {
    return counts[static_cast<std::size_t>(source) * E + expert];
  };

  // 1. Tokens of a replica's own rank stay there.
  std::vector<std::int64_t> ownTaken(replicas.size(), 0);
  for (std::size_t r = 0; r < replicas.size(); ++r) {
    ownTaken[r] =
        std::min(count(replicas[r].rank, replicas[r].expert), capacity[r]);
    capacity[r] -= ownTaken[r];
  }
  // The replica of each expert on the source at hand (-1: none), set and
  // cleared per source.
  std::vector<int> ownReplica(E, -1);

  // 2. Inside each node: the node's copies of each expert (contiguous in
  // its rank-ordered replicas) filled by the node's sources in order.
  fill.rowStart.assign(N + 1, 0);
  std::vector<Entry> &local = fill.entries;
  std::vector<std::span<const int>> copiesOf(E);
  for (int e = 0; e < E; ++e)
    copiesOf[e] = layout.replicasOf(e);
  std::vector<int> replicaNode(replicas.size());
  for (std::size_t r = 0; r < replicas.size(); ++r)
    replicaNode[r] = cluster.nodeOf(replicas[r].rank);
  std::vector<std::size_t> nodeBegin(E, 0), next(E), end(E);
  std::vector<int> present;
  for (int n = 0; n < cluster.numNodes(); ++n) {
    int firstRank = n * cluster.gpusPerNode;
    int lastRank = std::min(N, firstRank + cluster.gpusPerNode);
    present.clear();
    for (int e = 0; e < E; ++e) {
      std::span<const int> copies = copiesOf[e];
      std::size_t last = nodeBegin[e];
      while (last < copies.size() && replicaNode[copies[last]] == n)
        ++last;
      next[e] = nodeBegin[e];
      end[e] = last;
      nodeBegin[e] = last;
      if (next[e] < end[e])
        present.push_back(e);
    }
    for (int source = firstRank; source < lastRank; ++source) {
      for (int slot = 0; slot < C; ++slot)
        if (int r = layout.replicaAt(source, slot); r >= 0)
          ownReplica[replicas[r].expert] = r;
      for (int e : present) {
        int own = ownReplica[e];
        std::int64_t want = count(source, e);
        if (own >= 0) {
          want -= ownTaken[own];
          if (ownTaken[own] > 0)
            local.push_back({own, ownTaken[own]});
        }
        // Tokens left after the own replica's fill mean it is full.
        fillCopies(copiesOf[e], next[e], end[e], want, capacity, local);
      }
      // Copies of one expert are rank-ordered, but the own replica may
      // follow a lower rank's copy: order the row by replica.
      std::sort(
          local.begin() + static_cast<std::ptrdiff_t>(fill.rowStart[source]),
          local.end(),
          [](const Entry &a, const Entry &b) { return a.replica < b.replica; });
      fill.rowStart[source + 1] = local.size();
      for (int slot = 0; slot < C; ++slot)
        if (int r = layout.replicaAt(source, slot); r >= 0)
          ownReplica[replicas[r].expert] = -1;
    }
  }
  return fill;
}

namespace {

/// Fails unless the replicas of every expert with some take exactly its
/// load.
void requireSharesMatchLoads(const rt::Layout &layout,
                             std::span<const std::int64_t> shares,
                             std::span<const std::int64_t> loads) {
  for (int e = 0; e < layout.numExperts(); ++e) {
    std::span<const int> copies = layout.replicasOf(e);
    std::int64_t shared = 0;
    for (int r : copies)
      shared += shares[r];
    if (!copies.empty() && shared != loads[e])
      rt::fail({}, "routing: the replicas of expert ", e, " take ", shared,
               " tokens, its sources route ", loads[e]);
  }
}

} // namespace

RankTraffic detail::trafficOfShares(const rt::Layout &layout,
                                    std::span<const std::int64_t> shares,
                                    const LocalFill &fill,
                                    std::span<const std::int64_t> sourceTokens,
                                    std::span<const std::int64_t> loads) {
  // Phase 3 sends a source's tokens to other nodes only (its node's copies
  // are full by then) and fills every replica's room left: the crossing
  // traffic follows from the local fill without building the rows.
  requireSharesMatchLoads(layout, shares, loads);
  int N = layout.numRanks();
  const auto &replicas = layout.replicas();
  RankTraffic traffic(N);
  for (std::size_t r = 0; r < replicas.size(); ++r) {
    traffic.rows[replicas[r].rank] += shares[r];
    traffic.recvInter[replicas[r].rank] += fill.capacityLeft[r];
  }
  for (int source = 0; source < N; ++source) {
    std::int64_t kept = 0;
    for (std::size_t i = fill.rowStart[source]; i < fill.rowStart[source + 1];
         ++i) {
      const Entry &entry = fill.entries[i];
      kept += entry.tokens;
      int target = replicas[entry.replica].rank;
      if (target == source)
        continue;
      traffic.sendIntra[source] += entry.tokens;
      traffic.recvIntra[target] += entry.tokens;
    }
    traffic.sendInter[source] = sourceTokens[source] - kept;
  }
  return traffic;
}

rt::Routing detail::finishRouting(const rt::Layout &layout,
                                  std::span<const std::int64_t> counts,
                                  std::span<const std::int64_t> shares,
                                  LocalFill fill) {
  // 3. What is left crosses nodes, source by source in one pass over the
  // counts, each row written in its final order: per expert its local
  // entries, then the crossing ones (a source reaches other nodes only
  // once its node's copies are full, so no replica appears twice), merged
  // by replica. N = 8192 x E = 256 is millions of entries.
  int N = layout.numRanks(), E = layout.numExperts();
  const auto &replicas = layout.replicas();
  std::vector<std::int64_t> &capacity = fill.capacityLeft;
  std::vector<std::span<const int>> copiesOf(E);
  for (int e = 0; e < E; ++e)
    copiesOf[e] = layout.replicasOf(e);
  std::vector<std::int64_t> loads(E, 0);
  std::vector<std::size_t> rowStart(N + 1, 0), next(E, 0);
  std::vector<Entry> entries;
  entries.reserve(static_cast<std::size_t>(N) * E + fill.entries.size() +
                  replicas.size());
  auto byReplica = [](const Entry &a, const Entry &b) {
    return a.replica < b.replica;
  };
  for (int source = 0; source < N; ++source) {
    std::size_t l = fill.rowStart[source],
                lastLocal = fill.rowStart[source + 1];
    const std::int64_t *row =
        counts.data() + static_cast<std::size_t>(source) * E;
    for (int e = 0; e < E; ++e) {
      std::int64_t want = row[e];
      loads[e] += want;
      std::size_t first = entries.size();
      for (; l < lastLocal && replicas[fill.entries[l].replica].expert == e;
           ++l) {
        entries.push_back(fill.entries[l]);
        want -= fill.entries[l].tokens;
      }
      if (want == 0)
        continue;
      std::size_t localEnd = entries.size();
      fillCopies(copiesOf[e], next[e], copiesOf[e].size(), want, capacity,
                 entries);
      if (localEnd > first && entries.size() > localEnd)
        std::inplace_merge(entries.begin() + static_cast<std::ptrdiff_t>(first),
                           entries.begin() +
                               static_cast<std::ptrdiff_t>(localEnd),
                           entries.end(), byReplica);
    }
    rowStart[source + 1] = entries.size();
  }
  requireSharesMatchLoads(layout, shares, loads);
  return rt::Routing::fromRows(static_cast<int>(replicas.size()),
                               std::move(rowStart), std::move(entries));
}

rt::Routing detail::routeShares(const rt::Layout &layout,
                                std::span<const std::int64_t> counts,
                                const ClusterSpec &cluster,
                                std::span<const std::int64_t> shares) {
  return finishRouting(layout, counts, shares,
                       fillLocal(layout, counts, cluster, shares));
}
