//===- RelayoutHookTest.cpp - the re-planning hook ------------------------===//
//
// ReplanningHook asks its planner every K steps and keeps each layer's
// layout in between; the layout it will keep is what layoutAhead reports,
// so a GPU layer can start its restore before its router runs.
//
//===----------------------------------------------------------------------===//

#include "laer/runtime/fsep/RelayoutHook.h"

#include <gtest/gtest.h>

using namespace laer::rt;

namespace {

/// A planner whose every answer is a new layout: call k puts expert
/// (i + k) mod E in slot i.
class RotatingHook : public RelayoutHook {
public:
  std::string name() const override { return "rotating"; }
  Plan plan(const PlanRequest &request) override {
    std::vector<int> slots(request.numRanks * request.slotsPerRank);
    for (std::size_t i = 0; i < slots.size(); ++i)
      slots[i] = static_cast<int>((i + calls_) % request.numExperts);
    ++calls_;
    Layout layout(request.numRanks, request.slotsPerRank, request.numExperts,
                  slots);
    return {layout, Routing::evenSplit(layout, request.counts)};
  }
  int calls() const { return calls_; }

private:
  int calls_ = 0;
};

} // namespace

TEST(ReplanningHook, KeepsLayoutsBetweenReplansAndKnowsThemAhead) {
  auto owned = std::make_unique<RotatingHook>();
  RotatingHook &planner = *owned;
  ReplanningHook hook(std::move(owned), /*every=*/3);
  EXPECT_EQ(hook.name(), "rotating");
  std::vector<std::int64_t> counts = {5, 0, 2, 7, 1, 3, 0, 4}; // 2 ranks, E 4
  PlanRequest request;
  request.numRanks = 2;
  request.slotsPerRank = 2;
  request.numExperts = 4;
  request.counts = counts;
  for (int layer : {0, 1}) {
    request.layer = layer;
    EXPECT_FALSE(hook.layoutAhead(layer, 0)) << "nothing planned yet";
  }
  std::vector<Layout> planned(2);
  for (long step = 0; step < 7; ++step)
    for (int layer : {0, 1}) {
      request.layer = layer;
      request.step = step;
      std::optional<Layout> ahead = hook.layoutAhead(layer, step);
      int callsBefore = planner.calls();
      Plan plan = hook.plan(request);
      bool replans = step % 3 == 0;
      EXPECT_EQ(planner.calls(), callsBefore + (replans ? 1 : 0))
          << "layer " << layer << ", step " << step;
      if (replans) {
        EXPECT_FALSE(ahead) << "layer " << layer << ", step " << step;
        planned[layer] = plan.layout;
      } else {
        ASSERT_TRUE(ahead) << "layer " << layer << ", step " << step;
        EXPECT_EQ(ahead->slots(), planned[layer].slots());
        EXPECT_EQ(plan.layout.slots(), planned[layer].slots());
      }
      // Whatever the layout, the routing moves this step's counts.
      EXPECT_NO_THROW(validatePlan(plan, counts, {}));
    }
  EXPECT_GT(hook.takeSeconds(), 0.0);
  EXPECT_EQ(hook.takeSeconds(), 0.0);
}

TEST(ReplanningHook, RefusesAPeriodBelowOne) {
  EXPECT_THROW(ReplanningHook(std::make_unique<RotatingHook>(), 0),
               RuntimeError);
}

namespace {

/// A planner that leaves expert 3 (no load when it plans) out.
class LeavesOutIdleExpertHook : public RelayoutHook {
public:
  std::string name() const override { return "leaves-out"; }
  Plan plan(const PlanRequest &request) override {
    ++calls;
    Layout layout(2, 2, 4, {0, 1, 2, 0});
    return {layout, Routing::evenSplit(layout, request.counts)};
  }
  int calls = 0;
};

} // namespace

TEST(ReplanningHook, ReplansWhenTheKeptLayoutMissesAnExpert) {
  auto owned = std::make_unique<LeavesOutIdleExpertHook>();
  LeavesOutIdleExpertHook &planner = *owned;
  ReplanningHook hook(std::move(owned), /*every=*/4);
  std::vector<std::int64_t> idle = {3, 1, 2, 0, 1, 0, 5, 0};
  PlanRequest request;
  request.numRanks = 2;
  request.slotsPerRank = 2;
  request.numExperts = 4;
  request.counts = idle;
  hook.plan(request);
  // Step 1 could route tokens to expert 3: nothing is promised ahead, and
  // the planner is asked again.
  request.step = 1;
  EXPECT_FALSE(hook.layoutAhead(0, 1));
  hook.plan(request);
  EXPECT_EQ(planner.calls, 2);
}
