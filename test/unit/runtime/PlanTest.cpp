//===- PlanTest.cpp - layouts, routings and their validation --------------===//

#include "ErrorOf.h"

#include "laer/runtime/fsep/Plan.h"
#include "laer/runtime/fsep/RelayoutHook.h"

#include <gtest/gtest.h>

using namespace laer::rt;
using laer::test::errorOf;

namespace {

TEST(Layout, ReplicasAreOrderedByExpertThenRank) {
  // 3 ranks x 2 slots, expert 1 on ranks 0 and 2, expert 0 on rank 1.
  Layout layout(3, 2, 3, {1, Layout::kEmpty, 0, 2, 2, 1});
  ASSERT_EQ(layout.replicas().size(), 5u);
  std::span<const int> ones = layout.replicasOf(1);
  ASSERT_EQ(ones.size(), 2u);
  EXPECT_EQ(layout.replicas()[ones[0]].rank, 0);
  EXPECT_EQ(layout.replicas()[ones[1]].rank, 2);
  EXPECT_EQ(layout.replicas()[ones[1]].slot, 1);
  EXPECT_EQ(layout.replicaAt(0, 1), -1);
  EXPECT_EQ(layout.usedSlots(0), 1);
  EXPECT_EQ(layout.usedSlots(2), 2);
}

TEST(Layout, RejectsOutOfRangeAndDuplicateExperts) {
  EXPECT_EQ(errorOf([] {
              Layout(2, 2, 4, {0, 1, 2, 4}, {1, 2, 3});
            }),
            "rank 1, layer 2, step 3: layout slot 1 of rank 1 holds expert "
            "4, outside [0, 4)");
  EXPECT_EQ(errorOf([] {
              Layout(2, 2, 4, {0, 0, 2, 3});
            }),
            "layout puts expert 0 twice on rank 0 (slots 0 and 1)");
  EXPECT_EQ(errorOf([] {
              Layout(2, 2, 4, {0, 1, 2});
            }),
            "layout has 3 slots but N * C = 4");
}

TEST(Layout, RoundRobinNeedsEnoughSlots) {
  EXPECT_NE(errorOf([] {
              Layout::roundRobin(2, 1, 3);
            }).find("needs N * C >= E, got N = 2, C = 1, E = 3"),
            std::string::npos);
  Layout layout = Layout::roundRobin(4, 3, 8);
  for (int e = 0; e < 8; ++e)
    EXPECT_GE(layout.replicasOf(e).size(), 1u) << e;
  // C > E: a rank never holds one expert twice.
  Layout wide = Layout::roundRobin(2, 3, 2);
  EXPECT_EQ(wide.usedSlots(0), 2);
}

TEST(Routing, EvenSplitConservesTokensAndBalances) {
  Layout layout(3, 1, 1, {0, 0, 0});
  std::vector<std::int64_t> counts = {10, 2, 0};
  Routing routing = Routing::evenSplit(layout, counts);
  EXPECT_EQ(routing.at(0, 0) + routing.at(0, 1) + routing.at(0, 2), 10);
  EXPECT_EQ(routing.at(1, 0) + routing.at(1, 1) + routing.at(1, 2), 2);
  for (int r = 0; r < 3; ++r)
    EXPECT_LE(routing.at(0, r), 4);
  // The remainder rotates with the source so it is not always rank 0's.
  EXPECT_EQ(routing.at(1, 0), 0);
  EXPECT_NO_THROW(validatePlan({layout, routing}, counts, {}));
}

TEST(Routing, RowsPerRankAndImbalance) {
  // Expert 0 on ranks 0 and 1, expert 1 on rank 1; rank 2 computes nothing.
  Layout layout(3, 2, 2,
                {0, Layout::kEmpty, 0, 1, Layout::kEmpty, Layout::kEmpty});
  std::vector<std::int64_t> counts = {4, 0, 2, 3, 0, 3};
  Plan plan{layout, Routing::evenSplit(layout, counts)};
  std::vector<std::int64_t> rows = rowsPerRank(plan);
  EXPECT_EQ(rows, (std::vector<std::int64_t>{3, 9, 0}));
  EXPECT_DOUBLE_EQ(maxOverMeanRows(rows), 9.0 * 3 / 12);
  std::vector<std::int64_t> none = {0, 0};
  EXPECT_DOUBLE_EQ(maxOverMeanRows(none), 1.0);
}

TEST(ValidatePlan, NamesTheExpertWithoutReplica) {
  Layout layout(2, 1, 3, {0, 1});
  std::vector<std::int64_t> counts = {1, 0, 0, 0, 0, 5};
  Plan plan{layout, Routing::evenSplit(layout, counts)};
  EXPECT_EQ(errorOf([&] {
              validatePlan(plan, counts, {0, 4, 9});
            }),
            "rank 0, layer 4, step 9: expert 2 receives 5 tokens but the "
            "layout gives it no replica");
}

TEST(ValidatePlan, NamesTheRoutingThatDoesNotAddUp) {
  Layout layout(2, 1, 2, {0, 1});
  std::vector<std::int64_t> counts = {3, 1, 2, 4};
  Plan plan{layout, Routing::evenSplit(layout, counts)};
  plan.routing.set(1, layout.replicasOf(1)[0], 5);
  EXPECT_EQ(errorOf([&] {
              validatePlan(plan, counts, {1, 0, -1});
            }),
            "rank 1, layer 0: routing sends 5 tokens of source rank 1 to the "
            "replicas of expert 1 but rank 1 routes 4 tokens to it");
}

TEST(ValidatePlan, RejectsNegativeShares) {
  Layout layout(1, 2, 1, {0, Layout::kEmpty});
  std::vector<std::int64_t> counts = {0};
  Plan plan{layout, Routing(1, 1)};
  plan.routing.set(0, 0, -1);
  EXPECT_NE(errorOf([&] {
              validatePlan(plan, counts, {});
            }).find("routing sends -1 tokens"),
            std::string::npos);
}

TEST(Fingerprint, DistinguishesLayoutsAndRoutings) {
  Layout a(2, 1, 2, {0, 1}), b(2, 1, 2, {1, 0});
  std::vector<std::int64_t> counts = {1, 1, 1, 1};
  Plan pa{a, Routing::evenSplit(a, counts)};
  Plan pb{b, Routing::evenSplit(b, counts)};
  EXPECT_NE(fingerprint(pa), fingerprint(pb));
  Plan pc = pa;
  EXPECT_EQ(fingerprint(pa), fingerprint(pc));
  pc.routing.add(0, 0, 1);
  EXPECT_NE(fingerprint(pa), fingerprint(pc));
}

TEST(StaticRoundRobinHook, GivesAValidPlan) {
  std::vector<std::int64_t> counts(4 * 8);
  for (std::size_t i = 0; i < counts.size(); ++i)
    counts[i] = static_cast<std::int64_t>(i % 5);
  PlanRequest request{0, 0, 4, 2, 8, counts};
  Plan plan = StaticRoundRobinHook().plan(request);
  EXPECT_NO_THROW(validatePlan(plan, counts, {}));
}

} // namespace
