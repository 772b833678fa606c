//===- GpuMoEBackendTest.cpp - the LM with its MoE layers on the GPU ------===//
//
// The language model trained with --device cuda against the same model
// with its MoE layers on the CPU (the independent reference: the CPU
// layers' own kernels): same seed (fresh each run), same text, laer+
// re-planning every step, 2 token chunks. Losses and final parameters
// agree within 1e-5 in fp32 and 2e-2 in bf16, also when layouts are kept
// between re-plans and the backend starts their restores ahead. A
// checkpoint written from the GPU carries the device state: a run resumed
// from it on the GPU ends where the uninterrupted one did, and the CPU
// backend can read it.
//
//===----------------------------------------------------------------------===//

#include "CudaTestSupport.h"

#include "LanguageModelRuns.h"

#include "laer/runtime/comm/InProcessCommunicator.h"
#include "laer/runtime/io/Trace.h"

#include <filesystem>
#include <optional>

using namespace laer;
using namespace laer::rt;
using namespace laer::test;

namespace {

LanguageModelConfig gpuConfig() {
  LanguageModelConfig config;
  config.hidden = 64;
  config.ffn = 96;
  config.experts = 4;
  config.layers = 2;
  config.sequence = 32;
  config.historyWindow = 2;
  config.tokenChunks = 2;
  return config;
}

MoEBackendOptions onDevice(const std::string &device,
                           const std::string &precision) {
  MoEBackendOptions options;
  options.device = device;
  options.precision = precision;
  return options;
}

/// Steps [from, to) on one rank, laer+ re-planning every `replanEvery`
/// steps, on the batches of data seed `seed`, from a model initialised
/// with `modelSeed` (default `seed`); loads `resumeFrom` first and writes
/// `saveTo` after the last step when they are given.
TrainingResult train(const MoEBackendOptions &backend, std::uint64_t seed,
                     long from, long to, const std::string &resumeFrom = "",
                     const std::string &saveTo = "", long replanEvery = 1,
                     std::optional<std::uint64_t> modelSeed = std::nullopt) {
  TrainingRun run;
  run.config = gpuConfig();
  run.backend = backend;
  run.dataSeed = seed;
  run.seed = modelSeed.value_or(seed);
  run.batch = 4;
  run.from = from;
  run.to = to;
  run.replanEvery = replanEvery;
  run.resumeFrom = resumeFrom;
  run.saveTo = saveTo;
  return trainLanguageModel(run);
}

void compareWithCpu(const std::string &precision, double tolerance,
                    long replanEvery = 1) {
  LAER_REQUIRE_GPU();
  FreshRandom random;
  SCOPED_TRACE(random.seed);
  TrainingResult cpu =
      train(onDevice("cpu", ""), random.seed, 0, 4, "", "", replanEvery);
  TrainingResult gpu = train(onDevice("cuda", precision), random.seed, 0, 4, "",
                             "", replanEvery);
  // Between re-plans (steps 1 and 3 of 0-3 when re-planning every 2
  // steps) both layers' restores start before their routers.
  EXPECT_EQ(gpu.restoresAhead, replanEvery == 2 ? 4 : 0);
  EXPECT_EQ(cpu.restoresAhead, 0);
  ASSERT_EQ(gpu.losses.size(), cpu.losses.size());
  for (std::size_t step = 0; step < cpu.losses.size(); ++step)
    EXPECT_NEAR(gpu.losses[step], cpu.losses[step],
                tolerance * cpu.losses[step])
        << "step " << step;
  EXPECT_LT(relativeError(gpu.params, cpu.params), tolerance);
}

} // namespace

TEST(GpuMoEBackend, TrainsLikeTheCpuLayersInFp32) {
  compareWithCpu("fp32", 1e-5);
}

TEST(GpuMoEBackend, TrainsLikeTheCpuLayersInBf16) {
  compareWithCpu("bf16", 2e-2);
}

TEST(GpuMoEBackend, RestoresKeptLayoutsAheadAndStillTrainsLikeTheCpu) {
  compareWithCpu("fp32", 1e-5, /*replanEvery=*/2);
}

TEST(GpuMoEBackend, CheckpointsCarryTheDeviceState) {
  LAER_REQUIRE_GPU();
  FreshRandom random;
  SCOPED_TRACE(random.seed);
  std::string directory = ::testing::TempDir() + "/laer-gpu-checkpoint-" +
                          std::to_string(random.seed);
  MoEBackendOptions gpu = onDevice("cuda", "fp32");
  TrainingResult straight = train(gpu, random.seed, 0, 5);
  TrainingResult first = train(gpu, random.seed, 0, 3, "", directory);
  // The same batches from another initial model: every weight and
  // moment must come from the checkpoint.
  TrainingResult resumed =
      train(gpu, random.seed, 3, 5, directory, "", 1, random.seed + 1);
  // Two runs on the GPU agree to rounding (its reductions need not run in
  // the same order each time).
  for (int step = 0; step < 5; ++step)
    EXPECT_NEAR(step < 3 ? first.losses[step] : resumed.losses[step - 3],
                straight.losses[step], 1e-6 * straight.losses[step])
        << "step " << step;
  EXPECT_LT(relativeError(resumed.params, straight.params), 1e-6);
  // The CPU backend reads what the GPU wrote: the same parameters.
  TrainingResult onCpu = train(onDevice("cpu", ""), random.seed, 3, 3,
                               directory, "", 1, random.seed + 2);
  EXPECT_EQ(onCpu.params, first.params);
  std::filesystem::remove_all(directory);
}

TEST(GpuMoEBackend, EveryRankOfAMachineNeedsAGpuOfItsOwn) {
  LAER_REQUIRE_GPU();
  int gpus = 0;
  rt::cuda::check(cudaGetDeviceCount(&gpus), "cudaGetDeviceCount");
  MoEBackendOptions options = onDevice("cuda", "bf16");
  options.localRanks = gpus + 1;
  options.localRank = gpus;
  InProcessGroup::run(1, [&](Communicator &comm) {
    if (gpus == 1) {
      // One visible GPU: the launcher gave this rank its own (as with
      // CUDA_VISIBLE_DEVICES per rank), whatever its index on the machine.
      MoELanguageModel model(comm, gpuConfig(), 1, options);
      EXPECT_NE(model.moeBackend().describe().find("on GPU 0"),
                std::string::npos);
      return;
    }
    try {
      MoELanguageModel model(comm, gpuConfig(), 1, options);
      ADD_FAILURE() << "no error";
    } catch (const RuntimeError &error) {
      EXPECT_NE(std::string(error.what())
                    .find("NCCL needs a GPU of its own for every rank"),
                std::string::npos)
          << error.what();
    }
  });
}

TEST(GpuMoEBackend, RanksSharingAGpuAreNamed) {
  LAER_REQUIRE_GPU();
  // Two ranks that each see only GPU 0 (one per machine by their count):
  // refused before NCCL's set-up, naming both.
  std::vector<std::string> errors(2);
  InProcessGroup::run(2, [&](Communicator &comm) {
    MoEBackendOptions options = onDevice("cuda", "bf16");
    options.localRanks = 1;
    options.localRank = 0;
    try {
      MoELanguageModel model(comm, gpuConfig(), 1, options);
    } catch (const RuntimeError &error) {
      errors[comm.rank()] = error.what();
    }
  });
  for (int rank = 0; rank < 2; ++rank)
    EXPECT_NE(errors[rank].find("ranks 0 and 1 share GPU 0"), std::string::npos)
        << "rank " << rank << ": " << errors[rank];
}

TEST(GpuMoEBackend, TracesEachLayersForwardAndBackward) {
  LAER_REQUIRE_GPU();
  InProcessGroup::run(1, [&](Communicator &comm) {
    MoELanguageModel model(comm, gpuConfig(), 1, onDevice("cuda", "bf16"));
    Tracer tracer(comm.rank());
    for (int l = 0; l < gpuConfig().layers; ++l)
      model.state().moe[l]->times().attach(&tracer, l);
    std::vector<std::int32_t> ids(2 * gpuConfig().sequence, 3),
        targets(ids.size(), 4);
    StaticRoundRobinHook hook;
    model.trainStep(ids, targets, /*step=*/6, hook, AdamWConfig{});
    std::vector<std::string> names;
    for (const Tracer::Event &event : tracer.events()) {
      EXPECT_EQ(event.step, 6) << event.name;
      EXPECT_GT(event.durationMicros, 0.0) << event.name;
      names.push_back(event.name);
    }
    EXPECT_EQ(names,
              (std::vector<std::string>{"GPU forward L0", "GPU forward L1",
                                        "GPU backward L1", "GPU backward L0"}));
  });
}
