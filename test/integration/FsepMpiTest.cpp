//===- FsepMpiTest.cpp - FSEP across MPI processes vs. the reference -----===//
//
// Run as `mpirun -np N laer-fsep-mpi-test`. Every rank runs every test with
// the MPI communicator; rank 0 prints, and all ranks exit with the same
// code so a failure on any rank fails the run.
//
//===----------------------------------------------------------------------===//

#include "CommunicatorConformance.h"
#include "FsepScenarios.h"
#include "ReferenceMoE.h"
#include "ValidationScenarios.h"

#include "laer/runtime/comm/InProcessCommunicator.h"
#include "laer/runtime/comm/MpiCommunicator.h"

#include <gtest/gtest.h>

using namespace laer;
using namespace laer::rt;
using namespace laer::test;

namespace {

constexpr double kTolerance = 1e-5;

/// The communicator of the test run, set up in main.
MpiCommunicator *world = nullptr;

TEST(Mpi, CommunicatorConforms) {
  for (const std::string &failure : checkCommunicator(*world))
    ADD_FAILURE() << failure;
}

TEST(Mpi, FsepMatchesReference) {
  for (const Scenario &scenario : standardScenarios()) {
    SCOPED_TRACE(scenario.name);
    std::vector<StepCheck> checks = runScenario(*world, scenario);
    ASSERT_EQ(checks.size(), static_cast<std::size_t>(scenario.steps));
    for (std::size_t step = 0; step < checks.size(); ++step) {
      EXPECT_LT(checks[step].output, kTolerance) << "step " << step;
      EXPECT_LT(checks[step].dInput, kTolerance) << "step " << step;
      EXPECT_LT(checks[step].dGate, kTolerance) << "step " << step;
      EXPECT_LT(checks[step].dExperts, kTolerance) << "step " << step;
      EXPECT_LT(checks[step].aux, kTolerance) << "step " << step;
      EXPECT_LT(checks[step].z, kTolerance) << "step " << step;
    }
    if (scenario.planner == PlannerKind::HotExpert) {
      EXPECT_EQ(checks[0].maxReplicas, world->size());
    }
  }
}

TEST(Mpi, AdamWEqualsSingleRank) {
  Scenario scenario = standardScenarios()[1];
  scenario.steps = 3;
  AdamWConfig adamw;
  adamw.learningRate = 1e-2f;
  adamw.weightDecay = 0.1f;
  std::vector<float> distributed = trainScenario(*world, scenario, adamw);
  // The single-rank run happens inside this process.
  std::vector<float> single;
  InProcessGroup::run(1, [&](Communicator &comm) {
    single = trainScenario(comm, scenario, adamw);
  });
  std::vector<double> reference(single.begin(), single.end());
  EXPECT_LT(relativeError(distributed, reference), kTolerance);
}

TEST(Mpi, BadInputsFailOnEveryRankWithoutHanging) {
  struct Case {
    BadInput kind;
    const char *fragment;
  };
  for (Case bad : {Case{BadInput::ExpertWithoutReplica, "no replica"},
                   Case{BadInput::RoutingDoesNotAddUp, "routing sends"},
                   Case{BadInput::WrongShardSize, "shard of expert 2 has"}}) {
    std::string message = runBadInput(*world, bad.kind);
    EXPECT_EQ(
        message.rfind("rank " + std::to_string(world->rank()) + ", layer 3", 0),
        0u)
        << message;
    EXPECT_NE(message.find(bad.fragment), std::string::npos) << message;
  }
  // The communicator is still usable afterwards: nothing was left pending.
  world->barrier();
}

} // namespace

int main(int argc, char **argv) {
  MpiRuntime mpi(&argc, &argv);
  int failed = 1;
  try {
    MpiCommunicator comm(MPI_COMM_WORLD, std::chrono::seconds(60));
    world = &comm;
    ::testing::InitGoogleTest(&argc, argv);
    if (comm.rank() != 0) {
      auto &listeners = ::testing::UnitTest::GetInstance()->listeners();
      delete listeners.Release(listeners.default_result_printer());
    }
    int local = RUN_ALL_TESTS() != 0;
    // A rank's failures are printed only on rank 0's screen if rank 0 also
    // failed; make every rank report the job's verdict.
    std::int32_t any = local;
    comm.allReduceSum(std::span<std::int32_t>(&any, 1));
    if (local && comm.rank() != 0)
      std::fprintf(stderr, "laer-fsep-mpi-test: rank %d had failures\n",
                   comm.rank());
    failed = any != 0;
    world = nullptr;
  } catch (const std::exception &error) {
    MpiRuntime::abortJob(error.what());
  }
  return failed;
}
