//===- PlanBuilding.h - pieces the planners share ---------------*- C++ -*-===//

#ifndef LAER_PLANNER_PLANBUILDING_H
#define LAER_PLANNER_PLANBUILDING_H

#include "laer/planner/Planner.h"

#include <vector>

namespace laer::planner::detail {

/// Total tokens per expert of the load the layout is planned for: the
/// history when the input has one, else this step's counts.
std::vector<std::int64_t> layoutLoads(const PlannerInput &input);

/// True when every expert with tokens in `loads` has a replica in `layout`.
bool servesAll(const rt::Layout &layout, std::span<const std::int64_t> loads);

/// Fails (with a message naming N, C and E) unless N * C >= E.
void requireEnoughSlots(const PlannerInput &input, const char *planner);

/// "even" candidate: N*C/E replicas each, the remainder to the most loaded
/// experts; never more than N replicas (one per rank).
std::vector<int> evenReplicaCounts(std::span<const std::int64_t> loads,
                                   int numRanks, int slotsPerRank);

/// Priority-queue candidate: one replica per loaded expert, then `step`
/// more at a time to the expert with the highest load per replica, until
/// the slots run out.
std::vector<int> priorityReplicaCounts(std::span<const std::int64_t> loads,
                                       int numRanks, int slotsPerRank,
                                       int step);

/// Longest processing time first: replicas by load per replica (load /
/// count), each onto the least loaded rank with a free slot that does not
/// hold the expert yet; node-unaware.
rt::Layout placeLongestFirst(const std::vector<int> &replicaCounts,
                             std::span<const std::int64_t> loads, int numRanks,
                             int slotsPerRank);

/// `layout` slots from per-rank expert lists.
rt::Layout layoutFromRanks(const std::vector<std::vector<int>> &perRank,
                           int slotsPerRank, int numExperts);

/// Each source splits an expert's tokens evenly over the replicas in its
/// own node, or over all replicas when its node has none.
rt::Routing routeEvenPreferNode(const rt::Layout &layout,
                                std::span<const std::int64_t> counts,
                                const ClusterSpec &cluster);

/// Every replica of an expert gets the same share of its tokens (within
/// one token); shares are filled from the replica's own rank first, then
/// its node, then other nodes, so balance costs as little traffic as
/// possible.
rt::Routing routeBalanced(const rt::Layout &layout,
                          std::span<const std::int64_t> counts,
                          const ClusterSpec &cluster);

/// Equal shares of each expert's load over its replicas (within one
/// token), indexed like layout.replicas().
std::vector<std::int64_t> equalShares(const rt::Layout &layout,
                                      std::span<const std::int64_t> loads);

/// The rows of the busiest rank when replica i computes `shares[i]`.
std::int64_t busiestRankRows(const rt::Layout &layout,
                             std::span<const std::int64_t> shares);

/// Phases 1 and 2 of routeShares: the tokens that stay on a replica's own
/// rank and those that stay inside its node.
struct LocalFill {
  /// Per source, `entries[rowStart[s] .. rowStart[s + 1])` by replica.
  std::vector<std::size_t> rowStart;
  std::vector<rt::Routing::Entry> entries;
  /// Per replica, the room left for other nodes' tokens.
  std::vector<std::int64_t> capacityLeft;
};

LocalFill fillLocal(const rt::Layout &layout,
                    std::span<const std::int64_t> counts,
                    const ClusterSpec &cluster,
                    std::span<const std::int64_t> shares);

/// The traffic of routeShares' routing, from its local fill alone
/// (`sourceTokens`: tokens per source; `loads`: per expert): O(N * C +
/// local entries) where the routing is O(N * E).
RankTraffic trafficOfShares(const rt::Layout &layout,
                            std::span<const std::int64_t> shares,
                            const LocalFill &fill,
                            std::span<const std::int64_t> sourceTokens,
                            std::span<const std::int64_t> loads);

/// Phase 3 of routeShares: the rest crosses nodes; the whole routing.
rt::Routing finishRouting(const rt::Layout &layout,
                          std::span<const std::int64_t> counts,
                          std::span<const std::int64_t> shares, LocalFill fill);

/// Replica i takes `shares[i]` tokens (per expert summing to its load),
/// filled as routeBalanced fills its equal shares: own rank, node, others.
rt::Routing routeShares(const rt::Layout &layout,
                        std::span<const std::int64_t> counts,
                        const ClusterSpec &cluster,
                        std::span<const std::int64_t> shares);

} // namespace laer::planner::detail

#endif // LAER_PLANNER_PLANBUILDING_H
