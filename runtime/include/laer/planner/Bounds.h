//===- Bounds.h - lower bounds on what any plan can achieve -----*- C++ -*-===//
//
// Every quality figure of a planner is stated against a bound no plan can
// beat, so that "1.02" means 2% above the best possible, not 2% above the
// mean. The bound on the busiest rank's rows is the slot-counting bound:
// a plan whose busiest rank computes M rows gives expert e at least
// ceil(load_e / M) replicas on distinct ranks, and the N * C slots hold
// them all; M is also at least the mean. The smallest integer M that
// passes both is below the rows of every plan's busiest rank.
//
//===----------------------------------------------------------------------===//

#ifndef LAER_PLANNER_BOUNDS_H
#define LAER_PLANNER_BOUNDS_H

#include "laer/planner/CostModel.h"

#include <cstdint>
#include <span>

namespace laer::planner {

/// The slot-counting bound on the rows of the busiest rank of any plan
/// that serves `expertLoads` (tokens per expert) on `numRanks` ranks of
/// `slotsPerRank` slots. Fails when N * C < the experts with tokens (no
/// plan exists) or a load is negative.
std::int64_t maxRankRowsLowerBound(std::span<const std::int64_t> expertLoads,
                                   int numRanks, int slotsPerRank);

/// A bound on evaluate()'s critical path of any plan whose busiest rank
/// computes at least `busiestRows` rows (maxRankRowsLowerBound): that
/// rank's compute, every pass of it; the traffic terms are bounded below
/// by 0.
double criticalPathLowerBound(std::int64_t busiestRows,
                              const ClusterSpec &cluster,
                              const LayerSpec &layer);

} // namespace laer::planner

#endif // LAER_PLANNER_BOUNDS_H
