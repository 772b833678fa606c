//===- RankDeath.cpp - a rank dies in the middle of a training step ------===//
//
// `mpirun -np N laer-rank-death <rank> <timeout s> [exit|stall]`: trains
// one FSEP layer; at step 2 the chosen rank either exits abruptly or stalls
// (alive but silent) just before the parameter restore. The survivors must
// not hang: Open MPI tears the job down when a process exits, and the
// communicator's deadline turns a stall into an error and a job abort.
//
//===----------------------------------------------------------------------===//

#include "laer/runtime/comm/MpiCommunicator.h"
#include "laer/runtime/fsep/FsepMoELayer.h"

#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

using namespace laer::rt;

namespace {

/// Round-robin plan whose `plan` call ends the process on one rank.
class DyingHook : public StaticRoundRobinHook {
public:
  DyingHook(int rank, int dyingRank, bool stall)
      : rank_(rank), dyingRank_(dyingRank), stall_(stall) {}
  Plan plan(const PlanRequest &request) override {
    if (request.step == 2 && rank_ == dyingRank_) {
      std::fprintf(stderr, "rank %d: %s at step 2\n", rank_,
                   stall_ ? "stalling" : "exiting abruptly");
      std::fflush(stderr);
      if (!stall_)
        std::_Exit(3);
      std::this_thread::sleep_for(std::chrono::seconds(120));
    }
    return StaticRoundRobinHook::plan(request);
  }

private:
  int rank_, dyingRank_;
  bool stall_;
};

} // namespace

int main(int argc, char **argv) {
  MpiRuntime mpi(&argc, &argv);
  int dyingRank = argc > 1 ? std::atoi(argv[1]) : 1;
  int timeoutSeconds = argc > 2 ? std::atoi(argv[2]) : 10;
  bool stall = argc > 3 && std::string(argv[3]) == "stall";
  try {
    MpiCommunicator comm(MPI_COMM_WORLD, std::chrono::seconds(timeoutSeconds));
    MoELayerConfig config;
    config.shape = {16, 32};
    config.numExperts = 8;
    config.topK = 2;
    config.slotsPerRank = (8 + comm.size() - 1) / comm.size();
    FsepMoELayer layer(comm, config, 0);
    layer.initialize(1, 0.1f, 0.5f);
    DyingHook hook(comm.rank(), dyingRank, stall);
    std::vector<float> x(32 * 16, 0.5f), dOut(32 * 16, 0.1f);
    for (long step = 0; step < 5; ++step) {
      layer.zeroGrads();
      layer.forward(x, step, hook);
      layer.backward(dOut);
      layer.applyAdamW({}, step + 1);
      std::printf("rank %d: step %ld done\n", comm.rank(), step);
      std::fflush(stdout);
    }
  } catch (const std::exception &error) {
    MpiRuntime::abortJob(error.what(), 2);
  }
  return 0;
}
