//===- InProcessFsepTest.cpp - FSEP on 1, 2, 4 threads vs. the reference -===//

#include "CommunicatorConformance.h"
#include "FsepScenarios.h"
#include "ReferenceMoE.h"
#include "ValidationScenarios.h"

#include "laer/runtime/comm/InProcessCommunicator.h"

#include <gtest/gtest.h>

#include <mutex>

using namespace laer;
using namespace laer::rt;
using namespace laer::test;

namespace {

constexpr double kTolerance = 1e-5;

/// Runs `body` on `ranks` threads and returns each rank's result.
template <typename Result>
std::vector<Result> onRanks(int ranks,
                            const std::function<Result(Communicator &)> &body) {
  std::vector<Result> results(ranks);
  InProcessGroup::run(
      ranks, [&](Communicator &comm) { results[comm.rank()] = body(comm); });
  return results;
}

class InProcessRanks : public ::testing::TestWithParam<int> {};

TEST_P(InProcessRanks, CommunicatorConforms) {
  auto failures = onRanks<std::vector<std::string>>(
      GetParam(), [](Communicator &comm) { return checkCommunicator(comm); });
  for (const auto &rankFailures : failures)
    for (const std::string &failure : rankFailures)
      ADD_FAILURE() << failure;
}

TEST_P(InProcessRanks, FsepMatchesReference) {
  int ranks = GetParam();
  for (const Scenario &scenario : standardScenarios()) {
    SCOPED_TRACE(scenario.name + " on " + std::to_string(ranks) + " ranks");
    auto checks = onRanks<std::vector<StepCheck>>(
        ranks, [&](Communicator &comm) { return runScenario(comm, scenario); });
    for (int rank = 0; rank < ranks; ++rank) {
      ASSERT_EQ(checks[rank].size(), static_cast<std::size_t>(scenario.steps));
      for (std::size_t step = 0; step < checks[rank].size(); ++step) {
        const StepCheck &check = checks[rank][step];
        EXPECT_LT(check.output, kTolerance)
            << "rank " << rank << " step " << step;
        EXPECT_LT(check.dInput, kTolerance)
            << "rank " << rank << " step " << step;
        EXPECT_LT(check.dGate, kTolerance)
            << "rank " << rank << " step " << step;
        EXPECT_LT(check.dExperts, kTolerance)
            << "rank " << rank << " step " << step;
        EXPECT_LT(check.aux, kTolerance) << "rank " << rank << " step " << step;
        EXPECT_LT(check.z, kTolerance) << "rank " << rank << " step " << step;
      }
    }
    const std::vector<StepCheck> &first = checks[0];
    if (scenario.planner == PlannerKind::HotExpert) {
      EXPECT_EQ(first[0].maxReplicas, ranks);
    }
    if (scenario.starveLastExpert) {
      for (const StepCheck &check : first) {
        EXPECT_EQ(check.starvedExpertTokens, 0);
      }
    }
    if (scenario.planner == PlannerKind::Random && scenario.steps > 1 &&
        ranks > 1) {
      bool changed = false;
      for (std::size_t step = 1; step < first.size(); ++step)
        changed |= first[step].slots != first[0].slots;
      EXPECT_TRUE(changed) << "the layout never changed between steps";
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Ranks, InProcessRanks, ::testing::Values(1, 2, 3, 4),
                         [](const auto &info) {
                           return std::to_string(info.param) + "ranks";
                         });

TEST(InProcessFsep, AdamWOnFourRanksEqualsOneRank) {
  Scenario scenario = standardScenarios()[1]; // random layouts
  scenario.steps = 3;
  AdamWConfig adamw;
  adamw.learningRate = 1e-2f;
  adamw.weightDecay = 0.1f;
  auto one = onRanks<std::vector<float>>(1, [&](Communicator &comm) {
    return trainScenario(comm, scenario, adamw);
  });
  auto four = onRanks<std::vector<float>>(4, [&](Communicator &comm) {
    return trainScenario(comm, scenario, adamw);
  });
  std::vector<double> reference(one[0].begin(), one[0].end());
  for (int rank = 0; rank < 4; ++rank) {
    EXPECT_LT(relativeError(four[rank], reference), kTolerance)
        << "rank " << rank;
  }
  // The weights really moved: the comparison is not between two untouched
  // initialisations.
  Scenario untrained = scenario;
  untrained.steps = 0;
  auto initial = onRanks<std::vector<float>>(1, [&](Communicator &comm) {
    return trainScenario(comm, untrained, adamw);
  });
  EXPECT_GT(relativeError(initial[0], reference), 1e-3);
}

TEST(InProcessFsep, PhasesOutOfOrderAreClearErrors) {
  MoELayerConfig config;
  config.shape = {8, 12};
  config.numExperts = 4;
  config.slotsPerRank = 2;
  std::vector<std::string> errors(2);
  InProcessGroup::run(2, [&](Communicator &comm) {
    FsepMoELayer layer(comm, config, /*layerIndex=*/5);
    layer.initialize(1, 0.1f, 0.5f);
    std::vector<float> x(6 * 8, 0.5f);
    StaticRoundRobinHook hook;
    layer.route(x, /*step=*/9);
    layer.relayout(hook);
    layer.startRestore();
    layer.finishRestore();
    layer.startDispatch(0, 2);
    try {
      // Chunk 0 has not arrived yet: computing on it would read garbage.
      layer.computeExperts(0);
    } catch (const RuntimeError &error) {
      errors[comm.rank()] = error.what();
    }
    layer.finishDispatch(0); // both ranks started chunk 0: complete it
  });
  for (int rank = 0; rank < 2; ++rank) {
    EXPECT_NE(errors[rank].find("rank " + std::to_string(rank)),
              std::string::npos)
        << errors[rank];
    EXPECT_NE(errors[rank].find("layer 5"), std::string::npos) << errors[rank];
    EXPECT_NE(errors[rank].find("step 9"), std::string::npos) << errors[rank];
    EXPECT_NE(errors[rank].find("before its dispatch completed"),
              std::string::npos)
        << errors[rank];
  }
}

TEST(InProcessFsep, ExpertMemoryIsOneNthPlusTheRestoredWorkingSet) {
  // 3 * 16 * 23 = 1104 parameters per expert: 276 per shard on 4 ranks.
  MoELayerConfig config;
  config.shape = {16, 23};
  config.numExperts = 8;
  config.topK = 2;
  config.slotsPerRank = 2;
  constexpr int ranks = 4;
  std::vector<std::int64_t> held(ranks), restored(ranks);
  InProcessGroup::run(ranks, [&](Communicator &comm) {
    FsepMoELayer layer(comm, config, 0);
    layer.initialize(1, 0.1f, 0.5f);
    std::vector<float> x(12 * 16, 0.25f);
    StaticRoundRobinHook hook;
    layer.forward(x, 0, hook);
    held[comm.rank()] = layer.experts().bytesHeld();
    restored[comm.rank()] = layer.restoredBytes();
  });
  // Parameters, gradients and two AdamW moments: 4 floats per element.
  std::int64_t fullState = 4 * 8 * 1104 * sizeof(float);
  for (int rank = 0; rank < ranks; ++rank) {
    EXPECT_EQ(held[rank], fullState / ranks) << rank;
    // Two restored experts (C = 2), full weights only.
    EXPECT_EQ(restored[rank], 2 * 1104 * std::int64_t(sizeof(float))) << rank;
  }
}

TEST(InProcessFsep, RelayoutHookSeesTheLoadHistory) {
  // A hook that records what it is given and plans round-robin.
  struct Recorder : StaticRoundRobinHook {
    std::vector<std::vector<std::int64_t>> counts, history;
    Plan plan(const PlanRequest &request) override {
      counts.emplace_back(request.counts.begin(), request.counts.end());
      history.emplace_back(request.history.begin(), request.history.end());
      return StaticRoundRobinHook::plan(request);
    }
  };
  MoELayerConfig config;
  config.shape = {8, 12};
  config.numExperts = 4;
  config.topK = 2;
  config.slotsPerRank = 2;
  config.historyWindow = 2;
  Recorder recorders[2];
  InProcessGroup::run(2, [&](Communicator &comm) {
    FsepMoELayer layer(comm, config, 0);
    layer.initialize(3, 0.2f, 0.5f);
    for (long step = 0; step < 4; ++step) {
      std::vector<float> x(10 * 8);
      for (std::size_t i = 0; i < x.size(); ++i)
        x[i] = 2.0f * uniformAt(step, comm.rank(), i) - 1.0f;
      layer.forward(x, step, recorders[comm.rank()]);
    }
  });
  for (const Recorder &recorder : recorders) {
    ASSERT_EQ(recorder.counts.size(), 4u);
    EXPECT_TRUE(recorder.history[0].empty());
    EXPECT_EQ(recorder.history[1], recorder.counts[0]);
    for (int step = 2; step < 4; ++step)
      for (std::size_t i = 0; i < recorder.counts[0].size(); ++i)
        EXPECT_EQ(recorder.history[step][i],
                  recorder.counts[step - 1][i] + recorder.counts[step - 2][i])
            << "step " << step << " entry " << i;
  }
  EXPECT_EQ(recorders[0].history, recorders[1].history);
}

struct BadInputCase {
  BadInput kind;
  std::vector<std::string> fragments;
};

class InProcessBadInput : public ::testing::TestWithParam<BadInputCase> {};

std::string badInputName(const ::testing::TestParamInfo<BadInputCase> &info) {
  const char *names[] = {"ExpertWithoutReplica", "RoutingDoesNotAddUp",
                         "WrongShardSize", "RankDependentPlan"};
  return names[static_cast<int>(info.param.kind)];
}

TEST_P(InProcessBadInput, EveryRankGetsAClearError) {
  const BadInputCase &bad = GetParam();
  constexpr int ranks = 4;
  std::vector<std::string> messages(ranks);
  try {
    InProcessGroup::run(
        ranks,
        [&](Communicator &comm) {
          messages[comm.rank()] = runBadInput(comm, bad.kind);
        },
        std::chrono::seconds(20));
  } catch (const std::exception &error) {
    FAIL() << "a rank failed outside the checked region: " << error.what();
  }
  for (int rank = 0; rank < ranks; ++rank) {
    const std::string &message = messages[rank];
    EXPECT_EQ(message.rfind("rank " + std::to_string(rank) + ", layer 3", 0),
              0u)
        << message;
    for (const std::string &fragment : bad.fragments)
      EXPECT_NE(message.find(fragment), std::string::npos)
          << "rank " << rank << ": '" << message << "' lacks '" << fragment
          << "'";
  }
}

INSTANTIATE_TEST_SUITE_P(
    Cases, InProcessBadInput,
    ::testing::Values(
        BadInputCase{BadInput::ExpertWithoutReplica,
                     {"step 12", "expert 3 receives", "no replica"}},
        BadInputCase{BadInput::RoutingDoesNotAddUp,
                     {"step 12", "source rank 3", "expert 1"}},
        BadInputCase{BadInput::WrongShardSize,
                     {"shard of expert 2 has", "elements but"}},
        BadInputCase{BadInput::RankDependentPlan,
                     {"step 12", "differs between this rank and rank"}}),
    badInputName);

TEST(InProcessGroup, FailingRankReleasesItsPeers) {
  // Rank 1 throws before a collective the others are already waiting in;
  // they must be released with an error, not hang until the timeout.
  auto start = std::chrono::steady_clock::now();
  try {
    InProcessGroup::run(
        3,
        [](Communicator &comm) {
          if (comm.rank() == 1)
            throw RuntimeError({1, 0, 0}, "simulated failure");
          comm.barrier();
        },
        std::chrono::seconds(30));
    FAIL() << "no error";
  } catch (const RuntimeError &error) {
    EXPECT_STREQ(error.what(), "rank 1, layer 0, step 0: simulated failure");
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
}

TEST(InProcessGroup, MismatchedAllToAllIsAnErrorNotAHang) {
  try {
    InProcessGroup::run(
        2,
        [](Communicator &comm) {
          // Every rank sends 1 element to each peer; rank 1 expects 2 from
          // rank 0.
          std::vector<std::int64_t> sendCounts = {1, 1};
          std::vector<std::int64_t> recvCounts = {comm.rank() == 1 ? 2 : 1, 1};
          AllToAllSizes sizes = AllToAllSizes::packed(sendCounts, recvCounts);
          std::vector<float> out(2), in(sizes.totalRecv());
          comm.allToAllV(std::span<const float>(out), std::span<float>(in),
                         sizes);
        },
        std::chrono::seconds(10));
    FAIL() << "no error";
  } catch (const RuntimeError &error) {
    EXPECT_NE(std::string(error.what()).find("expects 2"), std::string::npos)
        << error.what();
  }
}

} // namespace
