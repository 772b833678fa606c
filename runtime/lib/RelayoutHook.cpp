//===- RelayoutHook.cpp - the static round-robin plan ---------------------===//

#include "laer/runtime/RelayoutHook.h"

using namespace laer::rt;

Plan StaticRoundRobinHook::plan(const PlanRequest &request) {
  ErrorContext context{-1, request.layer, request.step};
  Layout layout = Layout::roundRobin(request.numRanks, request.slotsPerRank,
                                     request.numExperts, context);
  Routing routing = Routing::evenSplit(layout, request.counts);
  return Plan{std::move(layout), std::move(routing)};
}
