//===- RelayoutHook.cpp - the static and the re-planning hooks ------------===//

#include "laer/runtime/fsep/RelayoutHook.h"

#include <chrono>
#include <utility>

using namespace laer::rt;

Plan StaticRoundRobinHook::plan(const PlanRequest &request) {
  ErrorContext context{-1, request.layer, request.step};
  Layout layout = Layout::roundRobin(request.numRanks, request.slotsPerRank,
                                     request.numExperts, context);
  Routing routing = Routing::evenSplit(layout, request.counts);
  return Plan{std::move(layout), std::move(routing), /*layoutAhead=*/true};
}

ReplanningHook::ReplanningHook(std::unique_ptr<RelayoutHook> inner, long every)
    : inner_(std::move(inner)), every_(every) {
  if (every < 1)
    fail({}, "re-planning every ", every, " steps: must be at least 1");
}

const Layout *ReplanningHook::keptLayout(int layer, long step) const {
  auto last = layouts_.find(layer);
  if (last == layouts_.end() || step % every_ == 0)
    return nullptr;
  // Only a layout with a replica of every expert serves any step's
  // tokens; a planner may have left out experts that had no load.
  const Layout &layout = last->second;
  for (int e = 0; e < layout.numExperts(); ++e)
    if (layout.replicasOf(e).empty())
      return nullptr;
  return &layout;
}

Plan ReplanningHook::plan(const PlanRequest &request) {
  auto start = std::chrono::steady_clock::now();
  Plan plan;
  if (const Layout *kept = keptLayout(request.layer, request.step)) {
    plan.layout = *kept;
    plan.routing = Routing::evenSplit(plan.layout, request.counts);
    plan.layoutAhead = true;
  } else {
    plan = inner_->plan(request);
    layouts_[request.layer] = plan.layout;
  }
  seconds_ +=
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  return plan;
}

std::optional<Layout> ReplanningHook::layoutAhead(int layer, long step) const {
  if (const Layout *kept = keptLayout(layer, step))
    return *kept;
  return std::nullopt;
}

double ReplanningHook::takeSeconds() { return std::exchange(seconds_, 0.0); }
