//===- GpuCompiledModelTest.cpp - a compiled model's MoE layers on a GPU --===//
//
// A model IR (examples/tiny_moe_lm.mlir, or a tiny DeepSeek-V3 imported
// from its HF config: see test/unit/CMakeLists.txt) compiled by
// laer-compile (no --ranks: its MoE layers are whole laerrt_moe_* calls)
// and linked in: trained with its MoE layers on the GPU (fp32) and on the
// CPU, from the same fresh seed, on one rank; losses and final parameters
// agree within 1e-5. Its own executable, linked like a compiled training
// binary (liblaer_train).
//
//===----------------------------------------------------------------------===//

#include "LaerPlusHook.h"
#include "RelativeError.h"
#include "TrainingText.h"

#include "laer/runtime/DeviceInfo.h"
#include "laer/runtime/comm/InProcessCommunicator.h"
#include "laer/runtime/compiled/CompiledModel.h"
#include "laer/runtime/model/TextData.h"

#include <gtest/gtest.h>

#include <random>

extern "C" void _mlir_ciface_laer_model_declare(void *ctx);
extern "C" float
_mlir_ciface_laer_train_step(void *ctx, laer::rt::MemRef<std::int32_t, 1> *ids,
                             laer::rt::MemRef<std::int32_t, 1> *targets);

using namespace laer;
using namespace laer::rt;
using laer::test::relativeError;

namespace {

struct Trained {
  std::vector<double> losses;
  std::vector<float> params;
};

Trained train(const std::string &device, std::uint64_t seed, int steps) {
  TextData data = test::trainingText();
  Trained trained;
  InProcessGroup::run(1, [&](Communicator &comm) {
    CompiledModelOptions options;
    options.seed = seed;
    options.backend.device = device;
    options.backend.precision = device == "cuda" ? "fp32" : "";
    CompiledModel model(
        comm, {&_mlir_ciface_laer_model_declare, &_mlir_ciface_laer_train_step},
        options);
    const MoELayerConfig &moe = model.state().moe.front()->config();
    ReplanningHook hook =
        test::laerPlusHook(moe.shape.hidden, moe.shape.ffn, 1);
    AdamWConfig adamw;
    std::vector<std::int32_t> ids, targets;
    for (int step = 0; step < steps; ++step) {
      data.batch(step, seed, /*batch=*/4, static_cast<int>(model.sequence()),
                 comm.rank(), comm.size(), ids, targets);
      trained.losses.push_back(
          model.trainStep(ids, targets, step, hook, adamw).loss);
    }
    trained.params = model.state().gatherParameters();
  });
  return trained;
}

} // namespace

TEST(GpuCompiledModel, TrainsLikeItsCpuLayers) {
  if (listGpus().empty())
    GTEST_SKIP() << "no GPU visible: " << describeDevices();
  std::uint64_t seed = std::random_device{}();
  SCOPED_TRACE(seed);
  Trained cpu = train("cpu", seed, 3);
  Trained gpu = train("cuda", seed, 3);
  ASSERT_EQ(gpu.losses.size(), cpu.losses.size());
  for (std::size_t step = 0; step < cpu.losses.size(); ++step)
    EXPECT_NEAR(gpu.losses[step], cpu.losses[step], 1e-5 * cpu.losses[step])
        << "step " << step;
  EXPECT_LT(relativeError(gpu.params, cpu.params), 1e-5);
  // Not two untouched initialisations.
  EXPECT_GT(relativeError(train("cpu", seed, 0).params, cpu.params), 1e-4);
}
