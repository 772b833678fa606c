//===- RouterVariantsTest.cpp - routing variants and router losses --------===//
//
// The float64 reference's hand-derived gradients of the router variants
// and losses against central differences of its own forward (so the
// FSEP-vs-reference scenarios rest on a checked reference), the selection
// rules on hand-made scores, the bias update, and configuration errors.
//
//===----------------------------------------------------------------------===//

#include "ReferenceMoE.h"

#include "laer/runtime/comm/InProcessCommunicator.h"
#include "laer/runtime/cpu/Kernels.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>

using namespace laer;
using namespace laer::rt;
using namespace laer::test;

namespace {

std::vector<float> randomValues(std::size_t n, float scale, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-scale, scale);
  std::vector<float> v(n);
  for (float &x : v)
    x = u(rng);
  return v;
}

struct Variant {
  const char *name;
  RoutingConfig routing;
  RouterLossConfig losses;
  int topK;
};

class ReferenceGradients : public ::testing::TestWithParam<Variant> {};

// loss = <dOut, output> + dAux * sum_r aux_r + dZ * sum_r z_r; its gradient
// with respect to the gate, by central differences, is the reference's.
TEST_P(ReferenceGradients, GateGradientMatchesCentralDifferences) {
  const Variant &v = GetParam();
  MoELayerConfig config;
  config.shape = {5, 4};
  config.numExperts = 8;
  config.topK = v.topK;
  config.routing = v.routing;
  config.losses = v.losses;
  const int H = 5, E = 8, T = 12;
  std::vector<float> x = randomValues(T * H, 1.0f, 1);
  std::vector<float> gate = randomValues(H * E, 0.8f, 2);
  std::vector<float> experts =
      randomValues(static_cast<std::size_t>(E) * 3 * H * 4, 0.4f, 3);
  std::vector<float> dOut = randomValues(T * H, 1.0f, 4);
  std::vector<float> bias = randomValues(E, 0.1f, 5);
  ReferenceRouterInputs router{bias, 2, 0.7, 0.4};
  auto loss = [&](std::span<const float> g) {
    ReferenceResult r = referenceMoE(config, x, g, experts, dOut, router);
    double l = 0;
    for (std::size_t i = 0; i < r.output.size(); ++i)
      l += r.output[i] * dOut[i];
    if (v.losses.aux != AuxLoss::None)
      for (double a : r.aux)
        l += router.dAux * a;
    if (v.losses.z)
      for (double z : r.z)
        l += router.dZ * z;
    return l;
  };
  ReferenceResult r = referenceMoE(config, x, gate, experts, dOut, router);
  if (v.losses.aux != AuxLoss::None) {
    EXPECT_GT(r.aux[0], 0.0);
  }
  if (v.losses.z) {
    EXPECT_GT(r.z[0], 0.0);
  }
  // A float perturbation small enough that no token changes its experts.
  const float h = 1e-3f;
  double maxError = 0, maxGrad = 0;
  for (int i = 0; i < H * E; ++i) {
    std::vector<float> plus = gate, minus = gate;
    plus[i] += h;
    minus[i] -= h;
    double fd = (loss(plus) - loss(minus)) / (double(plus[i]) - minus[i]);
    maxError = std::max(maxError, std::abs(fd - r.dGate[i]));
    maxGrad = std::max(maxGrad, std::abs(r.dGate[i]));
  }
  EXPECT_GT(maxGrad, 1e-3);
  EXPECT_LT(maxError, 2e-5 * std::max(1.0, maxGrad));
}

INSTANTIATE_TEST_SUITE_P(
    Variants, ReferenceGradients,
    ::testing::Values(
        Variant{"softmax_aux_z", {}, {AuxLoss::MicroBatch, true}, 2},
        Variant{"softmax_global_aux",
                {ScoreFunction::Softmax, true},
                {AuxLoss::GlobalBatch, false},
                2},
        Variant{"sigmoid_scaled_aux",
                {ScoreFunction::Sigmoid, false, 2.5},
                {AuxLoss::MicroBatch, true},
                3},
        Variant{"deepseek_v2_groups",
                {ScoreFunction::Softmax, false, 16.0, 4, 2, GroupScore::Max},
                {AuxLoss::MicroBatch, false},
                2},
        Variant{"deepseek_v3_groups_bias",
                {ScoreFunction::Sigmoid, true, 2.5, 4, 2, GroupScore::TopTwoSum,
                 true},
                {AuxLoss::GlobalBatch, true},
                3}),
    [](const auto &info) { return std::string(info.param.name); });

// x = logits with gate = I: the selection on hand-made scores.
cpu::RouterOutput routeLogits(std::vector<float> logits, int E, int k,
                              const RoutingConfig &routing,
                              std::vector<float> bias = {}) {
  std::vector<float> identity(E * E, 0.0f);
  for (int e = 0; e < E; ++e)
    identity[e * E + e] = 1.0f;
  auto T = static_cast<std::int64_t>(logits.size()) / E;
  return cpu::routerForward(logits, identity, bias, T, E, E, k, routing);
}

TEST(RouterSelection, GroupsRankedByTheirBestOrTheirTwoBest) {
  // Groups {0,1} {2,3} {4,5}: best 2.0 / 1.5 / 1.9, two best 2.0 / 3.0 / 3.7.
  std::vector<float> logits = {2.0f, 0.0f, 1.5f, 1.5f, 1.9f, 1.8f};
  RoutingConfig max{ScoreFunction::Softmax, true, 1.0, 3, 1, GroupScore::Max};
  cpu::RouterOutput byMax = routeLogits(logits, 6, 2, max);
  EXPECT_EQ(byMax.indices, (std::vector<std::int32_t>{0, 1}));
  RoutingConfig sum = max;
  sum.groupScore = GroupScore::TopTwoSum;
  cpu::RouterOutput bySum = routeLogits(logits, 6, 2, sum);
  EXPECT_EQ(bySum.indices, (std::vector<std::int32_t>{4, 5}));
  // Plain top-2 would take experts 0 and 4.
  cpu::RouterOutput plain = routeLogits(logits, 6, 2, {});
  EXPECT_EQ(plain.indices, (std::vector<std::int32_t>{0, 4}));
}

TEST(RouterSelection, BiasChoosesButWeightsStayUnbiasedAndScaled) {
  std::vector<float> logits = {1.0f, 0.0f, -1.0f, 0.5f};
  RoutingConfig routing{ScoreFunction::Sigmoid, false, 2.0};
  routing.selectionBias = true;
  std::vector<float> bias = {0.0f, 0.0f, 1.0f, 0.0f};
  cpu::RouterOutput out = routeLogits(logits, 4, 2, routing, bias);
  EXPECT_EQ(out.indices, (std::vector<std::int32_t>{2, 0}));
  auto sigmoid = [](float v) { return 1.0f / (1.0f + std::exp(-v)); };
  EXPECT_FLOAT_EQ(out.weights[0], 2.0f * sigmoid(-1.0f));
  EXPECT_FLOAT_EQ(out.weights[1], 2.0f * sigmoid(1.0f));
  routing.renormalize = true;
  out = routeLogits(logits, 4, 2, routing, bias);
  EXPECT_FLOAT_EQ(out.weights[0] + out.weights[1], 2.0f);
}

TEST(RouterLosses, BalancedRoutingHasAuxLossOne) {
  // Equal logits (p_e = 1/E) and loads spread evenly over E = 4, k = 1.
  const int E = 4;
  std::vector<std::int64_t> loads = {1, 1, 1, 1};
  cpu::RouterOutput out =
      routeLogits(std::vector<float>(4 * E, 0.0f), E, 1, {});
  cpu::RouterLosses losses =
      cpu::routerLosses(out, loads, 4, 4, E, 1, ScoreFunction::Softmax);
  EXPECT_NEAR(losses.aux, 1.0, 1e-6);
  EXPECT_NEAR(losses.z, std::log(4.0) * std::log(4.0), 1e-5);
  // All tokens on expert 0: aux = E * f_0 * p_0 = 4 * 1 * 1/4 = 1 still
  // for uniform p; a router that also prefers expert 0 pays more.
  std::vector<float> skewed(4 * E, 0.0f);
  for (int t = 0; t < 4; ++t)
    skewed[t * E] = 3.0f;
  cpu::RouterOutput hot = routeLogits(skewed, E, 1, {});
  std::vector<std::int64_t> hotLoads = {4, 0, 0, 0};
  EXPECT_GT(
      cpu::routerLosses(hot, hotLoads, 4, 4, E, 1, ScoreFunction::Softmax).aux,
      3.0);
}

// DeepSeek's seq_aux: each sequence's loss from its own loads and mean
// probabilities, then their mean, against the batch loss on the same
// choices (E = 2, k = 1, two sequences of two tokens).
TEST(RouterLosses, SequenceWiseLossAveragesEachSequencesOwn) {
  const int E = 2;
  // Sequence A: both tokens prefer expert 0; sequence B: one each.
  std::vector<float> logits = {2, 0, 2, 0, 2, 0, 0, 2};
  cpu::RouterOutput out = routeLogits(logits, E, 1, {});
  double hot = std::exp(2.0) / (std::exp(2.0) + 1), cold = 1 - hot;
  double seqA = 2 * (1.0 * hot + 0.0 * cold);
  double seqB = 2 * (0.5 * 0.5 + 0.5 * 0.5);
  cpu::RouterLosses perSequence = cpu::routerLosses(
      out, {}, 0, 4, E, 1, ScoreFunction::Softmax, /*sequenceLength=*/2);
  EXPECT_NEAR(perSequence.aux, (seqA + seqB) / 2, 1e-6);
  std::vector<std::int64_t> loads = {3, 1};
  double meanHot = (3 * hot + cold) / 4;
  cpu::RouterLosses batch =
      cpu::routerLosses(out, loads, 4, 4, E, 1, ScoreFunction::Softmax);
  EXPECT_NEAR(batch.aux, 2 * (0.75 * meanHot + 0.25 * (1 - meanHot)), 1e-6);

  // Its gradient (x = logits with gate = I) by central differences, for
  // softmax and sigmoid scores.
  for (ScoreFunction score : {ScoreFunction::Softmax, ScoreFunction::Sigmoid}) {
    RoutingConfig routing;
    routing.score = score;
    std::vector<float> x = {2, 0.5f, 1.5f, 0, 2, -1, 0, 1};
    cpu::RouterOutput saved = routeLogits(x, E, 1, routing);
    std::vector<float> dx(x.size(), 0.0f), dGate(E * E, 0.0f);
    std::vector<float> identity = {1, 0, 0, 1};
    std::vector<float> dWeights(4, 0.0f);
    cpu::RouterLossGradients gradients{1.0f, 0.0f, {}, 0, 2};
    cpu::routerBackward(x, identity, saved, dWeights, 4, E, E, 1, routing,
                        gradients, dx, dGate);
    const float h = 1e-2f;
    for (std::size_t i = 0; i < x.size(); ++i) {
      std::vector<float> plus = x, minus = x;
      plus[i] += h;
      minus[i] -= h;
      auto aux = [&](const std::vector<float> &v) {
        return cpu::routerLosses(routeLogits(v, E, 1, routing), {}, 0, 4, E, 1,
                                 score, 2)
            .aux;
      };
      double fd = (aux(plus) - aux(minus)) / (2 * h);
      EXPECT_NEAR(dx[i], fd, 2e-3) << "logit " << i;
    }
  }
  // Tokens that are not whole sequences are refused.
  EXPECT_THROW(
      cpu::routerLosses(out, {}, 0, 4, E, 1, ScoreFunction::Softmax, 3),
      RuntimeError);
}

MoELayerConfig biasedLayer(double rate) {
  MoELayerConfig config;
  config.shape = {4, 3};
  config.numExperts = 4;
  config.topK = 1;
  config.slotsPerRank = 4;
  config.routing.selectionBias = true;
  config.biasUpdateRate = rate;
  return config;
}

TEST(SelectionBias, UpdateMovesTowardsTheMeanLoad) {
  InProcessGroup group(1);
  FsepMoELayer layer(group.communicator(0), biasedLayer(0.01), 0);
  // Every token prefers expert 0 (the gate reads feature 0).
  std::fill(layer.gate().begin(), layer.gate().end(), 0.0f);
  layer.gate()[0] = 1.0f;
  std::vector<float> x(8 * 4, 0.0f);
  for (int t = 0; t < 8; ++t)
    x[t * 4] = 1.0f;
  StaticRoundRobinHook hook;
  layer.forward(x, 0, hook);
  std::vector<float> dOut(x.size(), 0.0f);
  layer.backward(dOut);
  layer.applyAdamW({.learningRate = 0.0f, .weightDecay = 0.0f}, 1);
  std::span<float> bias = layer.selectionBias();
  EXPECT_FLOAT_EQ(bias[0], -0.01f);
  for (int e = 1; e < 4; ++e)
    EXPECT_FLOAT_EQ(bias[e], 0.01f);
}

TEST(SelectionBias, ConfigurationErrorsNameTheSetting) {
  InProcessGroup group(1);
  Communicator &comm = group.communicator(0);
  auto message = [&](MoELayerConfig config) {
    try {
      FsepMoELayer layer(comm, config, 3);
    } catch (const RuntimeError &e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  MoELayerConfig c = biasedLayer(0.0);
  c.routing.groups = 3;
  EXPECT_NE(message(c).find("layer 3: routing groups = 3 must be >= 1 and "
                            "divide E = 4"),
            std::string::npos)
      << message(c);
  c = biasedLayer(0.0);
  c.routing.groups = 2;
  c.routing.topGroups = 1;
  c.topK = 3;
  EXPECT_NE(message(c).find("top_k = 3 exceeds the 1 x 2 experts"),
            std::string::npos)
      << message(c);
  c = biasedLayer(-1.0);
  EXPECT_NE(message(c).find("update rate must be finite and >= 0"),
            std::string::npos)
      << message(c);
  c = biasedLayer(0.1);
  c.routing.selectionBias = false;
  EXPECT_NE(message(c).find("update rate without a selection bias"),
            std::string::npos)
      << message(c);
  c = biasedLayer(0.0);
  c.routing.scale = std::nan("");
  EXPECT_NE(message(c).find("scaling factor must be finite"), std::string::npos)
      << message(c);
}

TEST(RouterLosses, AskedOutOfOrderOrAbsentAreErrors) {
  InProcessGroup group(1);
  MoELayerConfig config = biasedLayer(0.0);
  config.losses.aux = AuxLoss::GlobalBatch;
  FsepMoELayer layer(group.communicator(0), config, 0);
  EXPECT_THROW(layer.routerLosses(), RuntimeError);
  std::vector<float> x(8 * 4, 0.5f);
  layer.route(x, 0);
  try {
    layer.routerLosses();
    ADD_FAILURE() << "the global-batch aux loss before the relayout";
  } catch (const RuntimeError &e) {
    EXPECT_NE(std::string(e.what()).find("after the relayout"),
              std::string::npos);
  }
  EXPECT_THROW(layer.setZLossGradient(1.0f), RuntimeError);
}

} // namespace

namespace {

/// Per-expert max/mean load (mean of the last 10 steps) of `steps` training
/// steps
/// of a router skewed towards experts 0 and 1, on 2 in-process ranks, with
/// the weights frozen (learning rate 0): only the selection bias (rate
/// `rate`, 0: no update) can move the load.
double skewedLoadAfter(int steps, double rate) {
  const int E = 8, k = 2, H = 8, perRank = 256;
  MoELayerConfig config;
  config.shape = {H, 4};
  config.numExperts = E;
  config.topK = k;
  config.slotsPerRank = E;
  config.routing = {ScoreFunction::Sigmoid, true};
  config.routing.selectionBias = true;
  config.biasUpdateRate = rate;
  std::vector<double> ratios(2);
  InProcessGroup::run(2, [&](Communicator &comm) {
    FsepMoELayer layer(comm, config, 0);
    std::vector<float> gate = randomValues(H * E, 0.3f, 11);
    // Feature 0 (1 in every token) pushes experts 0 and 1 up.
    gate[0] += 2.0f;
    gate[1] += 1.5f;
    std::copy(gate.begin(), gate.end(), layer.gate().begin());
    StaticRoundRobinHook hook;
    double ratio = 0;
    for (long step = 0; step < steps; ++step) {
      std::vector<float> x =
          randomValues(perRank * H, 1.0f, 100 + step * 2 + comm.rank());
      for (int t = 0; t < perRank; ++t)
        x[t * H] = 1.0f;
      layer.zeroGrads();
      layer.forward(x, step, hook);
      layer.backward(std::vector<float>(x.size(), 0.0f));
      layer.applyAdamW({.learningRate = 0.0f}, step + 1);
      std::vector<std::int64_t> load(E, 0);
      for (std::size_t i = 0; i < layer.lastCounts().size(); ++i)
        load[i % E] += layer.lastCounts()[i];
      // The mean over the last 10 steps (one step's counts are noisy).
      if (step >= steps - 10)
        ratio +=
            static_cast<double>(*std::max_element(load.begin(), load.end())) /
            (2.0 * perRank * k / E) / 10.0;
    }
    ratios[comm.rank()] = ratio;
  });
  EXPECT_EQ(ratios[0], ratios[1]) << "the ranks disagree on the loads";
  return ratios[0];
}

// DeepSeek-V3's aux-loss-free balancing: the bias update alone brings a
// router that sends most tokens to two experts to max/mean below 1.3
// within 100 steps; without it the load stays skewed.
TEST(SelectionBias, UpdateAloneBalancesASkewedRouter) {
  double without = skewedLoadAfter(100, 0.0);
  double with = skewedLoadAfter(100, 0.01);
  std::printf("max/mean load over steps 90-99: %.3f without the bias "
              "update, %.3f with it\n",
              without, with);
  EXPECT_GT(without, 2.0);
  EXPECT_LT(with, 1.3);
}

} // namespace
