//===- StaticPlanner.cpp - fixed round-robin layout (FSDP+EP baseline) ----===//

#include "PlanBuilding.h"
#include "Planners.h"

using namespace laer;
using namespace laer::planner;

rt::Plan StaticPlanner::plan(const PlannerInput &input) {
  detail::requireEnoughSlots(input, "static");
  rt::Layout layout = rt::Layout::roundRobin(
      input.cluster.numRanks, input.layer.slotsPerRank, input.layer.numExperts);
  rt::Routing routing = rt::Routing::evenSplit(layout, input.counts);
  return rt::Plan{std::move(layout), std::move(routing), /*layoutAhead=*/true};
}
