//===- Bounds.cpp - lower bounds on what any plan can achieve -------------===//

#include "laer/planner/Bounds.h"

#include "laer/runtime/Error.h"

#include <algorithm>

using namespace laer;
using namespace laer::planner;

std::int64_t
planner::maxRankRowsLowerBound(std::span<const std::int64_t> expertLoads,
                               int numRanks, int slotsPerRank) {
  if (numRanks < 1 || slotsPerRank < 1)
    rt::fail({}, "the bound needs N >= 1 and C >= 1, got N = ", numRanks,
             ", C = ", slotsPerRank);
  std::int64_t total = 0, largest = 0, loaded = 0;
  for (std::int64_t load : expertLoads) {
    if (load < 0)
      rt::fail({}, "the bound got a negative expert load ", load);
    if (load > 0)
      ++loaded;
    total += load;
    largest = std::max(largest, load);
  }
  std::int64_t slots = static_cast<std::int64_t>(numRanks) * slotsPerRank;
  if (loaded > slots)
    rt::fail({}, loaded, " experts have tokens but N * C = ", slots,
             " slots cannot hold a replica of each");
  if (total == 0)
    return 0;
  // Replicas of one expert sit on distinct ranks: at most N.
  auto replicasNeeded = [&](std::int64_t rows) {
    std::int64_t sum = 0;
    for (std::int64_t load : expertLoads) {
      std::int64_t r = (load + rows - 1) / rows;
      if (r > numRanks)
        return slots + 1;
      sum += r;
      if (sum > slots)
        return sum;
    }
    return sum;
  };
  // The smallest rows >= the mean with enough slots; feasible at the
  // largest load (one replica each), monotone in between.
  std::int64_t lo =
                   std::max<std::int64_t>((total + numRanks - 1) / numRanks, 1),
               hi = std::max(largest, lo);
  while (lo < hi) {
    std::int64_t mid = lo + (hi - lo) / 2;
    if (replicasNeeded(mid) <= slots)
      hi = mid;
    else
      lo = mid + 1;
  }
  return lo;
}

double planner::criticalPathLowerBound(std::int64_t busiestRows,
                                       const ClusterSpec &cluster,
                                       const LayerSpec &layer) {
  double rows = static_cast<double>(busiestRows);
  double secondsPerToken = layer.flopsPerToken() /
                           (cluster.flopsPerSecond * cluster.computeEfficiency);
  return layer.computePasses() * rows * secondsPerToken;
}
