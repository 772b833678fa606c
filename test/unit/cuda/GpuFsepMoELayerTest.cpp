//===- GpuFsepMoELayerTest.cpp - the GPU FSEP layer against the CPU one ---===//
//
// A whole layer step, forward and backward, then AdamW, on the GPU and on
// the CPU layer (the independent reference: its own kernels, OpenBLAS
// GEMMs and host row copies), from the same weights and fresh random
// tokens; two steps with different token counts so the step buffers grow
// and the second step runs on weights the optimizer updated. One rank per
// GPU, so a one-GPU machine runs one rank with several slots and chunks;
// an empty slot checks that unused slots move nothing. The second step
// prefetches its restore before the router, as a layer does beside the
// previous layer's compute.
//
//===----------------------------------------------------------------------===//

#include "CudaTestSupport.h"

#include "laer/runtime/FsepMoELayer.h"
#include "laer/runtime/InProcessCommunicator.h"
#include "laer/runtime/cuda/GpuFsepMoELayer.h"

#include <functional>

using namespace laer::rt;
using namespace laer::rt::cuda;
using namespace laer::test;

namespace {

/// A fixed layout, tokens split evenly over replicas.
class FixedLayoutHook : public RelayoutHook {
public:
  explicit FixedLayoutHook(Layout layout) : layout_(std::move(layout)) {}
  std::string name() const override { return "fixed"; }
  Plan plan(const PlanRequest &request) override {
    return {layout_, Routing::evenSplit(layout_, request.counts)};
  }

private:
  Layout layout_;
};

MoELayerConfig layerConfig() {
  MoELayerConfig config;
  config.shape = {64, 96};
  config.numExperts = 4;
  config.topK = 2;
  config.slotsPerRank = 5;
  config.tokenChunks = 3;
  return config;
}

/// Rounds `values` to what the device stores in `precision`.
void roundTo(std::span<float> values, Precision precision) {
  DeviceTensor tensor(values.size(), precision);
  std::vector<float> rounded =
      tensor.rounded(std::vector<float>(values.begin(), values.end()));
  std::copy(rounded.begin(), rounded.end(), values.begin());
}

void compareSteps(Precision precision) {
  LAER_REQUIRE_GPU();
  FreshRandom random;
  SCOPED_TRACE(random.seed);
  SCOPED_TRACE(name(precision));
  double tol = tolerance(precision);
  MoELayerConfig config = layerConfig();
  std::int64_t hidden = config.shape.hidden;
  InProcessGroup::run(1, [&](Communicator &host) {
    NcclCommunicator tokens(host, 0), params(host, 0);
    GpuContext context(host, tokens, params, precision);
    FsepMoELayer cpu(host, config, /*layerIndex=*/3);
    GpuFsepMoELayer gpu(context, config, /*layerIndex=*/3);
    cpu.initialize(random.seed, 0.1f, 0.5f);
    // Both start from weights the device stores exactly.
    roundTo(cpu.experts().allParams(), precision);
    roundTo(cpu.gate(), precision);
    gpu.load(cpu.experts().allParams(), cpu.gate());
    Layout layout(1, 5, 4, {2, 0, Layout::kEmpty, 3, 1});
    FixedLayoutHook hook(layout);
    AdamWConfig adamw;
    adamw.learningRate = 1e-2f;

    long step = 1;
    for (std::int64_t tokenCount : {37, 53}) {
      SCOPED_TRACE(tokenCount);
      auto n = static_cast<std::size_t>(tokenCount * hidden);
      DeviceTensor x(n, precision), out(n, precision), dOut(n, precision),
          dx(n, precision);
      std::vector<float> hostX = x.rounded(random.uniform(n));
      std::vector<float> hostDOut = dOut.rounded(random.uniform(n));
      out.poison();
      dx.poison();
      synchronize(); // the poison is on the legacy stream, the layer's not

      cpu.zeroGrads();
      gpu.zeroGrads();
      std::vector<float> expectedOut = cpu.forward(hostX, step, hook);
      std::vector<float> expectedDx = cpu.backward(hostDOut);
      if (step == 2)
        gpu.prefetchRestore(layout);
      gpu.forward(x.data(), out.data(), tokenCount, step, hook);
      gpu.backward(dOut.data(), dx.data());
      synchronize();

      EXPECT_EQ(gpu.lastCounts(), cpu.lastCounts());
      EXPECT_LT(relativeError(out.download(), expectedOut), tol);
      EXPECT_LT(relativeError(dx.download(), expectedDx), tol);
      std::span<const float> grads = cpu.experts().allGrads();
      EXPECT_LT(relativeError(gpu.shardGrads(),
                              std::vector<float>(grads.begin(), grads.end())),
                tol);
      std::span<const float> gateGrad = cpu.gateGrad();
      EXPECT_LT(relativeError(gpu.gateGrad(), std::vector<float>(
                                                  gateGrad.begin(),
                                                  gateGrad.end())),
                tol);

      cpu.applyAdamW(adamw, step);
      gpu.applyAdamW(adamw, step);
      std::span<const float> weights = cpu.experts().allParams();
      EXPECT_LT(relativeError(gpu.shardParams(),
                              std::vector<float>(weights.begin(), weights.end())),
                tol);
      ++step;
    }
  });
}

TEST(GpuFsepMoELayer, StepMatchesCpuLayerFloat32) {
  compareSteps(Precision::Float32);
}

TEST(GpuFsepMoELayer, StepMatchesCpuLayerBFloat16) {
  compareSteps(Precision::BFloat16);
}

/// Runs `body` with an fp32 GPU layer (index `layerIndex`, zero weights)
/// on one rank and 8 random tokens `x` on the device.
void withGpuLayer(int layerIndex,
                  const std::function<void(GpuFsepMoELayer &, const float *)>
                      &body) {
  MoELayerConfig config = layerConfig();
  InProcessGroup::run(1, [&](Communicator &host) {
    NcclCommunicator tokens(host, 0), params(host, 0);
    GpuContext context(host, tokens, params, Precision::Float32);
    GpuFsepMoELayer gpu(context, config, layerIndex);
    DeviceBuffer<float> x(static_cast<std::size_t>(8 * config.shape.hidden));
    fillUniform(x.data(), Precision::Float32,
                static_cast<std::int64_t>(x.size()), 7, 1.0f, nullptr);
    synchronize();
    body(gpu, x.data());
  });
}

TEST(GpuFsepMoELayer, PhasesOutOfOrderNameRankLayerAndStep) {
  LAER_REQUIRE_GPU();
  withGpuLayer(/*layerIndex=*/2, [](GpuFsepMoELayer &gpu, const float *x) {
    FixedLayoutHook hook(Layout(1, 5, 4, {2, 0, Layout::kEmpty, 3, 1}));
    gpu.route(x, 8, /*step=*/11);
    try {
      gpu.startRestore();
      FAIL() << "the restore ran before the relayout";
    } catch (const RuntimeError &error) {
      std::string message = error.what();
      EXPECT_NE(message.find("rank 0"), std::string::npos) << message;
      EXPECT_NE(message.find("layer 2"), std::string::npos) << message;
      EXPECT_NE(message.find("step 11"), std::string::npos) << message;
      EXPECT_NE(message.find("after the relayout"), std::string::npos)
          << message;
    }
    gpu.relayout(hook);
    gpu.startRestore();
    gpu.startDispatch(0, 2);
    EXPECT_THROW(gpu.computeExperts(0), RuntimeError); // not restored
    gpu.finishRestore();
    EXPECT_THROW(gpu.computeExperts(1), RuntimeError); // not dispatched
    EXPECT_THROW(gpu.startDispatch(1, 3), RuntimeError); // chunk count
    EXPECT_THROW(gpu.finishDispatch(2), RuntimeError);   // no chunk 2
  });
}

TEST(GpuFsepMoELayer, PrefetchForAnotherLayoutIsRefused) {
  LAER_REQUIRE_GPU();
  withGpuLayer(/*layerIndex=*/0, [](GpuFsepMoELayer &gpu, const float *x) {
    EXPECT_THROW(gpu.prefetchRestore(Layout(1, 4, 4, {0, 1, 2, 3})),
                 RuntimeError); // C = 4, the layer has 5 slots
    gpu.prefetchRestore(Layout(1, 5, 4, {0, 1, 2, 3, Layout::kEmpty}));
    FixedLayoutHook hook(Layout(1, 5, 4, {2, 0, Layout::kEmpty, 3, 1}));
    gpu.route(x, 8, /*step=*/1);
    try {
      gpu.relayout(hook);
      FAIL() << "the plan's layout differs from the prefetched one";
    } catch (const RuntimeError &error) {
      EXPECT_NE(std::string(error.what()).find("prefetched"),
                std::string::npos)
          << error.what();
    }
  });
}

} // namespace
