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
// previous layer's compute. In bf16 the second step starts the CPU layer
// from the GPU's updated state (see paramTol).
//
//===----------------------------------------------------------------------===//

#include "CudaTestSupport.h"

#include "laer/runtime/comm/InProcessCommunicator.h"
#include "laer/runtime/cuda/GpuFsepMoELayer.h"
#include "laer/runtime/fsep/FsepMoELayer.h"

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

void copyInto(const std::vector<float> &from, std::span<float> to) {
  ASSERT_EQ(from.size(), to.size());
  std::copy(from.begin(), from.end(), to.begin());
}

std::vector<float> copyOf(std::span<const float> values) {
  return {values.begin(), values.end()};
}

/// The expert-shard and gate gradients of the two layers agree within
/// `tol`.
void expectGradientsMatch(const GpuFsepMoELayer &gpu, FsepMoELayer &cpu,
                          double tol) {
  EXPECT_LT(relativeError(gpu.shardGrads(), copyOf(cpu.experts().allGrads())),
            tol);
  EXPECT_LT(relativeError(gpu.gateGrad(), copyOf(cpu.gateGrad())), tol);
}

/// The CPU layer takes the GPU layer's parameters and AdamW moments.
void takeGpuState(FsepMoELayer &cpu, const GpuFsepMoELayer &gpu) {
  copyInto(gpu.shardParams(), cpu.experts().allParams());
  copyInto(gpu.shardFirstMoments(), cpu.experts().firstMoments());
  copyInto(gpu.shardSecondMoments(), cpu.experts().secondMoments());
  copyInto(gpu.gate(), cpu.gate());
  copyInto(gpu.gateFirstMoments(), cpu.gateFirstMoment());
  copyInto(gpu.gateSecondMoments(), cpu.gateSecondMoment());
}

void compareSteps(Precision precision) {
  LAER_REQUIRE_GPU();
  FreshRandom random;
  SCOPED_TRACE(random.seed);
  SCOPED_TRACE(name(precision));
  double tol = tolerance(precision);
  // AdamW's first steps move a weight by about +-lr whatever its
  // gradient's size, so a gradient near zero whose sign rounding flips
  // moves the bf16 weight 2 lr away from the fp32 one (measured on an
  // H200: 1.1e-2 relative after a step at lr 1e-2).
  double paramTol = precision == Precision::Float32 ? tol : 2 * tol;
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
      expectGradientsMatch(gpu, cpu, tol);

      cpu.applyAdamW(adamw, step);
      gpu.applyAdamW(adamw, step);
      EXPECT_LT(
          relativeError(gpu.shardParams(), copyOf(cpu.experts().allParams())),
          paramTol);
      if (precision != Precision::Float32) {
        // The next step starts both layers from the GPU's state, so it
        // compares that step and not this update's rounding again.
        takeGpuState(cpu, gpu);
      }
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

/// A layer of the HF families' routing with its router losses and bias
/// balancing: E 8, top-2, 9 slots (one empty).
MoELayerConfig variantConfig(bool deepseekV3) {
  MoELayerConfig config;
  config.shape = {48, 80};
  config.numExperts = 8;
  config.topK = 2;
  config.slotsPerRank = 9;
  config.tokenChunks = 2;
  RoutingConfig &r = config.routing;
  if (deepseekV3) {
    // DeepSeek-V3: sigmoid, 4 groups of 2 ranked by their two best, 2
    // kept, a selection bias moved after each step, scaled weights, the
    // sequence-wise aux loss.
    r.score = ScoreFunction::Sigmoid;
    r.groups = 4;
    r.topGroups = 2;
    r.groupScore = GroupScore::TopTwoSum;
    r.selectionBias = true;
    r.scale = 2.5;
    config.biasUpdateRate = 1e-2;
    config.losses.aux = AuxLoss::Sequence;
    config.losses.sequenceLength = 8;
  } else {
    // Qwen-like: softmax without renormalisation, the global-batch aux
    // loss and the z-loss.
    r.renormalize = false;
    config.losses.aux = AuxLoss::GlobalBatch;
    config.losses.z = true;
  }
  return config;
}

/// Two steps of a variant layer on the GPU and on the CPU, the losses'
/// gradients entering the backward: choices, losses, outputs, gradients,
/// and the parameters and bias after the optimizer step agree.
void compareVariantSteps(bool deepseekV3) {
  LAER_REQUIRE_GPU();
  FreshRandom random;
  SCOPED_TRACE(random.seed);
  SCOPED_TRACE(deepseekV3 ? "DeepSeek-V3 routing" : "Qwen routing");
  MoELayerConfig config = variantConfig(deepseekV3);
  std::int64_t hidden = config.shape.hidden;
  double tol = tolerance(Precision::Float32);
  InProcessGroup::run(1, [&](Communicator &host) {
    NcclCommunicator tokens(host, 0), params(host, 0);
    GpuContext context(host, tokens, params, Precision::Float32);
    FsepMoELayer cpu(host, config, /*layerIndex=*/1);
    GpuFsepMoELayer gpu(context, config, /*layerIndex=*/1);
    cpu.initialize(random.seed, 0.1f, 0.5f);
    gpu.load(cpu.experts().allParams(), cpu.gate());
    if (deepseekV3) {
      std::vector<float> bias = random.uniform(8, 0.2f);
      std::copy(bias.begin(), bias.end(), cpu.selectionBias().begin());
      gpu.setSelectionBias(bias);
    }
    Layout layout(1, 9, 8, {5, 0, 7, Layout::kEmpty, 3, 1, 6, 2, 4});
    FixedLayoutHook hook(layout);
    AdamWConfig adamw;
    adamw.learningRate = 1e-2f;
    // Without renormalisation some expert gradients are ~1e-8, where
    // AdamW's update g / (|g| + eps) at eps 1e-8 turns their last-bit
    // differences into 4e-5 of the weights (measured on an H200); at 1e-4
    // the update is linear in such gradients and compares the arithmetic.
    adamw.epsilon = 1e-4f;
    long step = 1;
    for (std::int64_t tokenCount : {40, 56}) {
      SCOPED_TRACE(tokenCount);
      auto n = static_cast<std::size_t>(tokenCount * hidden);
      DeviceTensor x(n, Precision::Float32), out(n, Precision::Float32),
          dOut(n, Precision::Float32), dx(n, Precision::Float32);
      std::vector<float> hostX = x.rounded(random.uniform(n));
      std::vector<float> hostDOut = dOut.rounded(random.uniform(n));
      cpu.zeroGrads();
      gpu.zeroGrads();
      std::vector<float> expectedOut = cpu.forward(hostX, step, hook);
      gpu.forward(x.data(), out.data(), tokenCount, step, hook);
      synchronize();
      EXPECT_EQ(gpu.lastCounts(), cpu.lastCounts());
      cpu::RouterLosses want = cpu.routerLosses(), got = gpu.routerLosses();
      EXPECT_NEAR(got.aux, want.aux, tol * want.aux);
      EXPECT_NEAR(got.z, want.z, tol * want.z);
      float dAux = 0.3f, dZ = 0.05f;
      cpu.setAuxLossGradient(dAux);
      gpu.setAuxLossGradient(dAux);
      if (config.losses.z) {
        cpu.setZLossGradient(dZ);
        gpu.setZLossGradient(dZ);
      }
      std::vector<float> expectedDx = cpu.backward(hostDOut);
      gpu.backward(dOut.data(), dx.data());
      synchronize();
      EXPECT_LT(relativeError(out.download(), expectedOut), tol);
      EXPECT_LT(relativeError(dx.download(), expectedDx), tol);
      expectGradientsMatch(gpu, cpu, tol);
      EXPECT_NEAR(gpu.gradSquaredNorm(), cpu.gradSquaredNorm(),
                  tol * cpu.gradSquaredNorm());

      cpu.applyAdamW(adamw, step);
      gpu.applyAdamW(adamw, step);
      EXPECT_LT(
          relativeError(gpu.shardParams(), copyOf(cpu.experts().allParams())),
          tol);
      std::span<const float> bias = cpu.selectionBias();
      EXPECT_EQ(gpu.selectionBias(),
                std::vector<float>(bias.begin(), bias.end()));
      // The next step starts both layers from the GPU's state.
      takeGpuState(cpu, gpu);
      ++step;
    }
  });
}

TEST(GpuFsepMoELayer, DeepSeekV3RoutingLossesAndBiasMatchCpuLayer) {
  compareVariantSteps(/*deepseekV3=*/true);
}

TEST(GpuFsepMoELayer, QwenRoutingAndGlobalLossesMatchCpuLayer) {
  compareVariantSteps(/*deepseekV3=*/false);
}

TEST(GpuFsepMoELayer, APrefetchBeforeTheBackwardLeavesTheSlotsToIt) {
  // Layer A prefetches its next restore between a forward and its
  // backward (the backward still reads the slots); layer B, the same
  // weights, does not prefetch. Both give the same gradients, then the
  // same next forward, which A runs on its prefetched restore.
  LAER_REQUIRE_GPU();
  FreshRandom random;
  SCOPED_TRACE(random.seed);
  MoELayerConfig config = layerConfig();
  std::int64_t hidden = config.shape.hidden;
  InProcessGroup::run(1, [&](Communicator &host) {
    NcclCommunicator tokens(host, 0), params(host, 0);
    GpuContext context(host, tokens, params, Precision::Float32);
    FsepMoELayer cpu(host, config, 0);
    cpu.initialize(random.seed, 0.1f, 0.5f);
    GpuFsepMoELayer a(context, config, 0), b(context, config, 0);
    a.load(cpu.experts().allParams(), cpu.gate());
    b.load(cpu.experts().allParams(), cpu.gate());
    Layout layout(1, 5, 4, {2, 0, Layout::kEmpty, 3, 1});
    FixedLayoutHook hook(layout);
    const std::int64_t count = 29;
    auto n = static_cast<std::size_t>(count * hidden);
    DeviceTensor x(n, Precision::Float32), dOut(n, Precision::Float32);
    x.rounded(random.uniform(n));
    dOut.rounded(random.uniform(n));
    std::vector<std::vector<float>> outs, dxs;
    for (GpuFsepMoELayer *layer : {&a, &b}) {
      DeviceTensor out(n, Precision::Float32), dx(n, Precision::Float32);
      layer->zeroGrads();
      layer->forward(x.data(), out.data(), count, /*step=*/1, hook);
      if (layer == &a)
        layer->prefetchRestore(layout);
      layer->backward(dOut.data(), dx.data());
      synchronize();
      dxs.push_back(dx.download());
      DeviceTensor next(n, Precision::Float32);
      layer->forward(x.data(), next.data(), count, /*step=*/2, hook);
      synchronize();
      outs.push_back(next.download());
    }
    EXPECT_LT(relativeError(dxs[0], dxs[1]), 1e-6);
    EXPECT_LT(relativeError(a.shardGrads(), b.shardGrads()), 1e-6);
    EXPECT_LT(relativeError(outs[0], outs[1]), 1e-6);
  });
}

TEST(GpuFsepMoELayer, RefusesMoreGroupsThanTheRouterMasks) {
  LAER_REQUIRE_GPU();
  MoELayerConfig config = variantConfig(/*deepseekV3=*/true);
  config.numExperts = 256;
  config.routing.groups = 128;
  config.routing.topGroups = 4;
  config.slotsPerRank = 256;
  InProcessGroup::run(1, [&](Communicator &host) {
    NcclCommunicator tokens(host, 0), params(host, 0);
    GpuContext context(host, tokens, params, Precision::Float32);
    try {
      GpuFsepMoELayer gpu(context, config, /*layerIndex=*/4);
      FAIL() << "128 groups were accepted";
    } catch (const RuntimeError &error) {
      std::string message = error.what();
      EXPECT_NE(message.find("at most 64 groups"), std::string::npos)
          << message;
      EXPECT_NE(message.find("layer 4"), std::string::npos) << message;
    }
  });
}

/// Runs `body` with an fp32 GPU layer (index `layerIndex`, zero weights)
/// on one rank and 8 random tokens `x` on the device.
void withGpuLayer(
    int layerIndex,
    const std::function<void(GpuFsepMoELayer &, const float *)> &body) {
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
    EXPECT_THROW(gpu.computeExperts(1), RuntimeError);   // not dispatched
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
      EXPECT_NE(std::string(error.what()).find("prefetched"), std::string::npos)
          << error.what();
    }
  });
}

} // namespace
