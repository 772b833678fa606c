//===- MoEBackendTest.cpp - choosing where the MoE layers compute ---------===//
//
// The backend choice behind --device/--precision: bad choices are refused
// with a message naming the rank, and token chunks (the pipelining a GPU
// run relies on) change the numbers by no more than a sum's order.
// (The CUDA backend against this one: test/unit/cuda/GpuMoEBackendTest.)
//
//===----------------------------------------------------------------------===//

#include "laer/planner/Planner.h"
#include "laer/runtime/DeviceInfo.h"
#include "laer/runtime/InProcessCommunicator.h"
#include "laer/runtime/model/MoELanguageModel.h"
#include "laer/runtime/model/TextData.h"

#include <gtest/gtest.h>

#include <cmath>

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

/// Two ranks train `steps` steps with laer+; the losses and the final
/// parameters.
std::pair<std::vector<double>, std::vector<float>>
train(const LanguageModelConfig &config, int steps) {
  TextData data = TextData::fromPaths({LAER_SOURCE_DIR "/runtime"}, ".cpp",
                                      1 << 20);
  std::vector<double> losses(steps);
  std::vector<float> params;
  InProcessGroup::run(2, [&](Communicator &comm) {
    MoELanguageModel model(comm, config, /*seed=*/3);
    EXPECT_EQ(model.moeBackend().describe(), "cpu");
    planner::LayerSpec layer;
    layer.hidden = config.hidden;
    layer.ffn = config.ffn;
    planner::PlannerHook hook(planner::makePlanner("laer+"),
                              planner::ClusterSpec{}, layer);
    std::vector<std::int32_t> ids, targets;
    for (int step = 0; step < steps; ++step) {
      data.batch(step, 7, /*batch=*/6, config.sequence, comm.rank(),
                 comm.size(), ids, targets);
      double loss =
          model.trainStep(ids, targets, step, hook, AdamWConfig{}).loss;
      if (comm.rank() == 0)
        losses[step] = loss;
    }
    std::vector<float> all = model.gatherParameters();
    if (comm.rank() == 0)
      params = std::move(all);
  });
  return {losses, params};
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
  auto [losses, params] = train(smallConfig(), 3);
  auto [chunkedLosses, chunkedParams] = train(chunked, 3);
  ASSERT_EQ(chunkedLosses.size(), losses.size());
  for (std::size_t step = 0; step < losses.size(); ++step)
    EXPECT_NEAR(chunkedLosses[step], losses[step], 1e-6 * losses[step])
        << "step " << step;
  ASSERT_EQ(chunkedParams.size(), params.size());
  double diff = 0, norm = 0;
  for (std::size_t i = 0; i < params.size(); ++i) {
    diff += std::pow(double(chunkedParams[i]) - params[i], 2);
    norm += std::pow(double(params[i]), 2);
  }
  EXPECT_LT(std::sqrt(diff / norm), 1e-6);
  EXPECT_NE(chunkedParams, std::vector<float>(params.size(), 0.0f));
  EXPECT_LT(losses.back(), losses.front());
}
