//===- TokenSplit.cpp - the best split of tokens among replicas -----------===//

#include "laer/planner/TokenSplit.h"

#include <algorithm>
#include <limits>

using namespace laer;
using namespace laer::planner;

namespace {

/// Dinic's maximum flow, kept between calls so that raising capacities
/// only adds flow.
class FlowGraph {
public:
  FlowGraph(int nodes, int source, int sink)
      : head(nodes, -1), source(source), sink(sink) {}

  int addEdge(int from, int to, std::int64_t cap) {
    int edge = static_cast<int>(target.size());
    target.push_back(to);
    capacity.push_back(cap);
    link.push_back(head[from]);
    head[from] = edge;
    target.push_back(from);
    capacity.push_back(0);
    link.push_back(head[to]);
    head[to] = edge + 1;
    return edge;
  }
  /// The flow on forward edge `edge`: its reverse edge's residual.
  std::int64_t flowOn(int edge) const { return capacity[edge ^ 1]; }
  /// Sets what forward edge `edge` may still carry.
  void setResidual(int edge, std::int64_t cap) { capacity[edge] = cap; }

  /// Augments to a maximum flow; returns the total so far.
  std::int64_t run() {
    while (levels()) {
      next = head;
      while (std::int64_t pushed =
                 augment(source, std::numeric_limits<std::int64_t>::max()))
        total += pushed;
    }
    return total;
  }

  /// Whether `node` is reachable from the source in the residual graph.
  bool reachable(int node) const { return level[node] >= 0; }
  /// Recomputes reachability (after run(): the nodes still reachable).
  bool levels() {
    level.assign(head.size(), -1);
    queue.assign(1, source);
    level[source] = 0;
    for (std::size_t i = 0; i < queue.size(); ++i)
      for (int edge = head[queue[i]]; edge >= 0; edge = link[edge])
        if (capacity[edge] > 0 && level[target[edge]] < 0) {
          level[target[edge]] = level[queue[i]] + 1;
          queue.push_back(target[edge]);
        }
    return level[sink] >= 0;
  }

private:
  std::int64_t augment(int node, std::int64_t limit) {
    if (node == sink)
      return limit;
    for (int &edge = next[node]; edge >= 0; edge = link[edge]) {
      int to = target[edge];
      if (capacity[edge] <= 0 || level[to] != level[node] + 1)
        continue;
      if (std::int64_t pushed = augment(to, std::min(limit, capacity[edge]))) {
        capacity[edge] -= pushed;
        capacity[edge ^ 1] += pushed;
        return pushed;
      }
    }
    return 0;
  }

  std::vector<int> head, next, level, queue, target, link;
  std::vector<std::int64_t> capacity;
  int source, sink;
  std::int64_t total = 0;
};

/// Source -> experts -> ranks -> sink: a flow is a split, the ranks'
/// edges cap their rows.
class SplitFlow {
public:
  SplitFlow(const rt::Layout &layout, std::span<const std::int64_t> loads)
      : E(layout.numExperts()), N(layout.numRanks()),
        graph(E + N + 2, E + N, E + N + 1) {
    for (int e = 0; e < E; ++e)
      graph.addEdge(E + N, e, loads[e]);
    replicaEdge.reserve(layout.replicas().size());
    for (const rt::Replica &r : layout.replicas())
      replicaEdge.push_back(
          graph.addEdge(r.expert, E + r.rank, loads[r.expert]));
    for (int rank = 0; rank < N; ++rank)
      rankEdge.push_back(graph.addEdge(E + rank, E + N + 1, 0));
  }

  /// Every rank may take up to `cap` rows (not less than before); returns
  /// the total flow.
  std::int64_t raise(std::int64_t cap) {
    for (int edge : rankEdge)
      graph.setResidual(edge, cap - graph.flowOn(edge));
    return graph.run();
  }

  /// Ranks reachable from the source in the residual graph: once the flow
  /// is maximum, the full ranks every token still to place can only reach.
  int blockingRanks() {
    graph.levels();
    int count = 0;
    for (int rank = 0; rank < N; ++rank)
      count += graph.reachable(E + rank);
    return count;
  }

  std::int64_t replicaFlow(std::size_t replica) const {
    return graph.flowOn(replicaEdge[replica]);
  }

private:
  int E, N;
  FlowGraph graph;
  std::vector<int> replicaEdge, rankEdge;
};

} // namespace

TokenSplit planner::optimalTokenSplit(const rt::Layout &layout,
                                      std::span<const std::int64_t> loads) {
  const int E = layout.numExperts(), N = layout.numRanks();
  if (static_cast<int>(loads.size()) != E)
    rt::fail({}, "token split: ", loads.size(), " expert loads for ", E,
             " experts");
  std::int64_t total = 0, lower = 0;
  std::vector<char> used(N, 0);
  for (int e = 0; e < E; ++e) {
    if (loads[e] < 0)
      rt::fail({}, "token split: expert ", e, " has a negative load ",
               loads[e]);
    std::span<const int> copies = layout.replicasOf(e);
    if (loads[e] > 0 && copies.empty())
      rt::fail({}, "token split: expert ", e, " has ", loads[e],
               " tokens and no replica");
    total += loads[e];
    if (!copies.empty()) {
      auto R = static_cast<std::int64_t>(copies.size());
      lower = std::max(lower, (loads[e] + R - 1) / R);
    }
    for (int copy : copies)
      used[layout.replicas()[copy].rank] = 1;
  }
  auto ranks =
      static_cast<std::int64_t>(std::count(used.begin(), used.end(), 1));
  if (ranks > 0)
    lower = std::max(lower, (total + ranks - 1) / ranks);

  // Raise the cap by the deficit over the ranks that block it: those are
  // full and every token still to place can only reach them, so the
  // optimum is at least the raised cap.
  SplitFlow flow(layout, loads);
  std::int64_t cap = lower;
  for (std::int64_t routed = flow.raise(cap); routed < total;
       routed = flow.raise(cap)) {
    int blocking = std::max(flow.blockingRanks(), 1);
    cap += (total - routed + blocking - 1) / blocking;
  }
  TokenSplit split;
  split.shares.resize(layout.replicas().size());
  std::vector<std::int64_t> rows(N, 0);
  for (std::size_t i = 0; i < split.shares.size(); ++i) {
    split.shares[i] = flow.replicaFlow(i);
    rows[layout.replicas()[i].rank] += split.shares[i];
  }
  split.maxRankRows =
      rows.empty() ? 0 : *std::max_element(rows.begin(), rows.end());
  return split;
}

std::optional<TokenSplit>
planner::rebalanceTokenSplit(const rt::Layout &layout,
                             std::span<const std::int64_t> start,
                             std::int64_t cap) {
  const int E = layout.numExperts(), N = layout.numRanks();
  const auto &replicas = layout.replicas();
  if (start.size() != replicas.size())
    rt::fail({}, "token split: ", start.size(), " shares for ", replicas.size(),
             " replicas");
  std::vector<std::int64_t> rows(N, 0);
  for (std::size_t i = 0; i < replicas.size(); ++i) {
    if (start[i] < 0)
      rt::fail({}, "token split: replica ", i, " has a negative share ",
               start[i]);
    rows[replicas[i].rank] += start[i];
  }
  // Ranks above the cap shed their excess along replicas of the experts
  // they hold (rank -> expert, at most the replica's share), to other
  // replicas of those experts (expert -> rank), possibly through further
  // ranks, until ranks below the cap absorb it: every token moved is one
  // the cap forces off its rank.
  int source = E + N, sink = E + N + 1;
  FlowGraph graph(E + N + 2, source, sink);
  std::int64_t excess = 0;
  for (int rank = 0; rank < N; ++rank) {
    if (rows[rank] > cap) {
      graph.addEdge(source, E + rank, rows[rank] - cap);
      excess += rows[rank] - cap;
    } else if (rows[rank] < cap) {
      graph.addEdge(E + rank, sink, cap - rows[rank]);
    }
  }
  std::vector<int> away(replicas.size()), toward(replicas.size());
  for (std::size_t i = 0; i < replicas.size(); ++i) {
    away[i] = graph.addEdge(E + replicas[i].rank, replicas[i].expert, start[i]);
    toward[i] = graph.addEdge(replicas[i].expert, E + replicas[i].rank,
                              std::numeric_limits<std::int64_t>::max() / 4);
  }
  if (graph.run() < excess)
    return std::nullopt;
  TokenSplit split;
  split.shares.resize(replicas.size());
  std::fill(rows.begin(), rows.end(), 0);
  for (std::size_t i = 0; i < replicas.size(); ++i) {
    split.shares[i] =
        start[i] - graph.flowOn(away[i]) + graph.flowOn(toward[i]);
    rows[replicas[i].rank] += split.shares[i];
  }
  split.maxRankRows =
      rows.empty() ? 0 : *std::max_element(rows.begin(), rows.end());
  return split;
}
