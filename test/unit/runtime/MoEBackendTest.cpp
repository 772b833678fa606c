//===- MoEBackendTest.cpp - choosing where the MoE layers compute ---------===//
//
// The backend choice behind --device/--precision: bad choices are refused
// with a message naming the rank, and token chunks (the pipelining a GPU
// run relies on) change the numbers by no more than a sum's order.
// (The CUDA backend against this one: test/unit/cuda/GpuMoEBackendTest.)
//
//===----------------------------------------------------------------------===//

#include "LanguageModelRuns.h"
#include "RelativeError.h"

#include "laer/runtime/DeviceInfo.h"
#include "laer/runtime/comm/InProcessCommunicator.h"
#include "laer/runtime/model/MoELanguageModel.h"

#include <gtest/gtest.h>

using namespace laer;
using namespace laer::rt;

namespace {

LanguageModelConfig smallConfig() {
  LanguageModelConfig config;
  config.hidden = 32;
  config.ffn = 48;
  config.experts = 4;
  config.layers = 2;
  config.sequence = 16;
  config.historyWindow = 2;
  return config;
}

/// The message of the error building a model with `options` throws.
std::string errorOf(const MoEBackendOptions &options) {
  std::string message;
  InProcessGroup::run(2, [&](Communicator &comm) {
    try {
      MoELanguageModel model(comm, smallConfig(), 1, options);
      ADD_FAILURE() << "no error for device '" << options.device
                    << "', precision '" << options.precision << "'";
    } catch (const RuntimeError &error) {
      if (comm.rank() == 1)
        message = error.what();
    }
  });
  return message;
}

/// Two ranks train `steps` steps with laer+ on the CPU backend.
test::TrainingResult train(const LanguageModelConfig &config, int steps) {
  test::TrainingRun run;
  run.config = config;
  run.ranks = 2;
  run.seed = 3;
  run.dataSeed = 7;
  run.batch = 6;
  run.to = steps;
  return test::trainLanguageModel(run);
}

} // namespace

TEST(MoEBackend, UnknownDeviceOrPrecisionIsRefusedWithTheRank) {
  MoEBackendOptions tpu;
  tpu.device = "tpu";
  EXPECT_EQ(errorOf(tpu), "rank 1: --device must be cpu or cuda, got 'tpu'");
  MoEBackendOptions cpuBf16;
  cpuBf16.precision = "bf16";
  EXPECT_EQ(errorOf(cpuBf16), "rank 1: --precision bf16: MoE layers on CPU "
                              "ranks compute in fp32 only");
  MoEBackendOptions cudaFp16;
  cudaFp16.device = "cuda";
  cudaFp16.precision = "fp16";
  EXPECT_EQ(errorOf(cudaFp16),
            "rank 1: --precision must be fp32 or bf16, got 'fp16'");
}

TEST(MoEBackend, CpuRanksAreTheDefault) {
  InProcessGroup::run(1, [](Communicator &comm) {
    MoELanguageModel model(comm, smallConfig(), 1);
    EXPECT_EQ(model.moeBackend().describe(), "cpu");
  });
}

TEST(MoEBackend, CudaWithoutAGpuSaysWhy) {
  if (!listGpus().empty())
    GTEST_SKIP() << "a GPU is visible: GpuMoEBackendTest covers --device "
                    "cuda here";
  MoEBackendOptions cuda;
  cuda.device = "cuda";
  std::string message = errorOf(cuda);
  std::string expected = builtWithCuda()
                             ? "rank 1: --device cuda: no GPU"
                             : "rank 1: --device cuda: this runtime was "
                               "built without its CUDA backend";
  EXPECT_EQ(message.substr(0, expected.size()), expected) << message;
}

TEST(MoEBackend, TokenChunksChangeOnlyTheSumOrder) {
  // Chunks reorder the exchange; each pair meets the same expert weights,
  // and only the weight gradients sum their rows chunk by chunk.
  LanguageModelConfig chunked = smallConfig();
  chunked.tokenChunks = 3;
  test::TrainingResult plain = train(smallConfig(), 3);
  test::TrainingResult split = train(chunked, 3);
  ASSERT_EQ(split.losses.size(), plain.losses.size());
  for (std::size_t step = 0; step < plain.losses.size(); ++step)
    EXPECT_NEAR(split.losses[step], plain.losses[step],
                1e-6 * plain.losses[step])
        << "step " << step;
  EXPECT_LT(test::relativeError(split.params, plain.params), 1e-6);
  // The weights really moved: not two untouched initialisations.
  test::TrainingResult initial = train(smallConfig(), 0);
  EXPECT_GT(test::relativeError(plain.params, initial.params), 1e-4);
  EXPECT_EQ(plain.restoresAhead, 0) << "the CPU layers restore after "
                                       "their routers";
}
