//===- CudaKernelsTest.cpp - GPU kernels against the CPU kernels ---------===//

#include "CudaTestSupport.h"

#include "laer/runtime/AdamW.h"
#include "laer/runtime/cpu/Kernels.h"

#include <algorithm>
#include <numeric>

using namespace laer::rt;
using namespace laer::rt::cuda;
using namespace laer::test;

namespace {

constexpr Precision kPrecisions[] = {Precision::Float32, Precision::BFloat16};

/// The gate [E, E] for which x * gate is x: the CPU router then works on
/// exactly the logits the GPU kernels get.
std::vector<float> identityGate(int experts) {
  std::vector<float> identity(experts * experts, 0.0f);
  for (int e = 0; e < experts; ++e)
    identity[e * experts + e] = 1.0f;
  return identity;
}

/// The routing variants of the HF families: Mixtral (softmax,
/// renormalised), Qwen (not renormalised), OLMoE-like sigmoid, DeepSeek-V2
/// (softmax, groups ranked by their best, scaled) and DeepSeek-V3
/// (sigmoid, a selection bias, groups ranked by their two best, scaled),
/// for E = 16.
std::vector<RoutingConfig> routingVariants() {
  RoutingConfig mixtral, qwen, sigmoid, deepseekV2, deepseekV3;
  qwen.renormalize = false;
  sigmoid.score = ScoreFunction::Sigmoid;
  deepseekV2.renormalize = false;
  deepseekV2.scale = 16.0;
  deepseekV2.groups = 4;
  deepseekV2.topGroups = 3;
  deepseekV3.score = ScoreFunction::Sigmoid;
  deepseekV3.scale = 2.5;
  deepseekV3.groups = 8;
  deepseekV3.topGroups = 2;
  deepseekV3.groupScore = GroupScore::TopTwoSum;
  deepseekV3.selectionBias = true;
  return {mixtral, qwen, sigmoid, deepseekV2, deepseekV3};
}

std::string describe(const RoutingConfig &r) {
  return "score " + std::to_string(static_cast<int>(r.score)) +
         " renormalize " + std::to_string(r.renormalize) + " scale " +
         std::to_string(r.scale) + " groups " + std::to_string(r.groups) + "/" +
         std::to_string(r.topGroups) + " bias " +
         std::to_string(r.selectionBias);
}

/// Random logits [T, E] (uniform in +-scale) and, where the routing has
/// one, a selection bias, routed on the CPU (the reference).
struct RoutedLogits {
  std::vector<float> logits, bias;
  cpu::RouterOutput saved;
};
RoutedLogits routeRandomLogits(FreshRandom &random,
                               const RoutingConfig &routing, std::int64_t T,
                               int E, int k, float scale) {
  RoutedLogits r;
  r.logits = random.uniform(T * E, scale);
  if (routing.selectionBias)
    r.bias = random.uniform(E, 0.3f);
  r.saved = cpu::routerForward(r.logits, identityGate(E), r.bias, T, E, E, k,
                               routing);
  return r;
}

TEST(CudaKernels, RouterTopKMatchesCpu) {
  LAER_REQUIRE_GPU();
  FreshRandom random;
  SCOPED_TRACE(random.seed);
  const std::int64_t T = 257;
  const int E = 16, k = 3;
  for (const RoutingConfig &routing : routingVariants()) {
    SCOPED_TRACE(describe(routing));
    auto [logits, bias, want] =
        routeRandomLogits(random, routing, T, E, k, 4.0f);
    DeviceBuffer<float> dLogits(T * E), scores(T * E), lse(T), weights(T * k),
        dBias(E);
    DeviceBuffer<std::int32_t> indices(T * k);
    dLogits.upload(logits);
    dBias.upload(bias);
    scores.poison();
    lse.poison();
    weights.poison();
    indices.poison();
    routerTopK(dLogits.data(), T, E, k, routing,
               routing.selectionBias ? dBias.data() : nullptr, scores.data(),
               lse.data(), indices.data(), weights.data(), nullptr);
    synchronize();
    EXPECT_EQ(indices.download(), want.indices);
    EXPECT_LT(relativeError(weights.download(), want.weights), 1e-5);
    EXPECT_LT(relativeError(scores.download(), want.scores), 1e-5);
    EXPECT_LT(relativeError(lse.download(), want.logSumExp), 1e-6);
  }
}

TEST(CudaKernels, RouterTopKRefusesGroupsItCannotChooseFrom) {
  LAER_REQUIRE_GPU();
  RoutingConfig routing;
  routing.groups = 4;
  routing.topGroups = 1;
  // 16 experts in 4 groups of 4: one group cannot give top-5.
  EXPECT_THROW(routerTopK(nullptr, 1, 16, 5, routing, nullptr, nullptr, nullptr,
                          nullptr, nullptr, nullptr),
               RuntimeError);
  routing.groups = 128;
  EXPECT_THROW(routerTopK(nullptr, 1, 256, 2, routing, nullptr, nullptr,
                          nullptr, nullptr, nullptr, nullptr),
               RuntimeError);
}

TEST(CudaKernels, RouterBackwardMatchesCpu) {
  LAER_REQUIRE_GPU();
  FreshRandom random;
  SCOPED_TRACE(random.seed);
  const std::int64_t T = 128, sequence = 32;
  const int E = 16, k = 2;
  std::vector<float> identity = identityGate(E);
  for (const RoutingConfig &routing : routingVariants())
    for (std::int64_t span : {std::int64_t{0}, sequence})
      for (bool withLosses : {false, true}) {
        SCOPED_TRACE(describe(routing) + " span " + std::to_string(span) +
                     " losses " + std::to_string(withLosses));
        auto [logits, bias, saved] =
            routeRandomLogits(random, routing, T, E, k, 3.0f);
        std::vector<float> dWeights = random.uniform(T * k);
        // Loads of another batch for the batch-wide aux loss.
        std::vector<std::int64_t> loads(E);
        for (std::int64_t &load : loads)
          load = 1 + static_cast<std::int64_t>(random.integers(1, 40)[0]);
        std::int64_t loadTokens =
            std::accumulate(loads.begin(), loads.end(), std::int64_t{0}) / k;
        cpu::RouterLossGradients losses;
        if (withLosses)
          losses = {0.7f, 0.3f, loads, loadTokens, span};
        // With x = logits and gate = I, dx is dLogits.
        std::vector<float> want(T * E, 0.0f), dGate(E * E, 0.0f);
        cpu::routerBackward(logits, identity, saved, dWeights, T, E, E, k,
                            routing, losses, want, dGate);

        // The aux gradient per group, as the GPU layer computes it.
        std::int64_t groupSpan = span > 0 ? span : T;
        std::vector<float> dP((T / groupSpan) * E);
        for (std::int64_t g = 0; g < T / groupSpan; ++g) {
          std::vector<std::int64_t> own =
              cpu::choiceCounts(saved.indices, g * groupSpan, groupSpan, E, k);
          bool perSequence = span > 0;
          cpu::auxProbabilityGradient(losses.dAux, perSequence ? own : loads,
                                      perSequence ? groupSpan : loadTokens, T,
                                      E, k,
                                      std::span<float>(dP).subspan(g * E, E));
        }
        DeviceBuffer<float> scores(T * E), weights(T * k), dw(T * k),
            dLogits(T * E), dLogitsIn(T * E), lse(T), auxGradient(dP.size());
        DeviceBuffer<std::int32_t> indices(T * k);
        scores.upload(saved.scores);
        weights.upload(saved.weights);
        indices.upload(saved.indices);
        dw.upload(dWeights);
        dLogitsIn.upload(saved.logits);
        lse.upload(saved.logSumExp);
        auxGradient.upload(dP);
        dLogits.poison();
        RouterLossGradientsOnDevice onDevice;
        if (withLosses)
          onDevice = {auxGradient.data(), groupSpan,
                      2.0f * losses.dZ / static_cast<float>(T),
                      dLogitsIn.data(), lse.data()};
        routerBackwardLogits(scores.data(), indices.data(), weights.data(),
                             dw.data(), T, E, k, routing, onDevice,
                             dLogits.data(), nullptr);
        synchronize();
        EXPECT_LT(relativeError(dLogits.download(), want), 1e-5);
      }
}

TEST(CudaKernels, RouterLossesMatchCpu) {
  LAER_REQUIRE_GPU();
  FreshRandom random;
  SCOPED_TRACE(random.seed);
  const std::int64_t T = 192, sequence = 48;
  const int E = 16, k = 2;
  for (const RoutingConfig &routing : routingVariants())
    for (std::int64_t span : {std::int64_t{0}, sequence}) {
      SCOPED_TRACE(describe(routing) + " span " + std::to_string(span));
      cpu::RouterOutput saved =
          routeRandomLogits(random, routing, T, E, k, 3.0f).saved;
      std::vector<std::int64_t> loads =
          cpu::choiceCounts(saved.indices, 0, T, E, k);
      cpu::RouterLosses want =
          cpu::routerLosses(saved, loads, T, T, E, k, routing.score, span);

      std::int64_t groupSpan = span > 0 ? span : T;
      DeviceBuffer<float> scores(T * E), divisors(T);
      DeviceBuffer<double> sums((T / groupSpan) * E);
      scores.upload(saved.scores);
      routerProbabilitySums(scores.data(), T, E, routing.score, groupSpan,
                            divisors.data(), sums.data(), nullptr);
      synchronize();
      double squares = 0;
      for (float lse : saved.logSumExp)
        squares += static_cast<double>(lse) * lse;
      cpu::RouterLosses got = cpu::routerLossesFrom(
          sums.download(), squares, saved.indices, loads, T, T, E, k, span);
      EXPECT_NEAR(got.aux, want.aux, 1e-12 * want.aux);
      EXPECT_DOUBLE_EQ(got.z, want.z);
    }
}

TEST(CudaKernels, SumOfSquaresIsDeterministicAndExact) {
  LAER_REQUIRE_GPU();
  FreshRandom random;
  SCOPED_TRACE(random.seed);
  for (std::int64_t n : {std::int64_t{0}, std::int64_t{1}, std::int64_t{999},
                         std::int64_t{3} << 20}) {
    std::vector<float> x = random.uniform(static_cast<std::size_t>(n));
    double want = 0;
    for (float v : x)
      want += static_cast<double>(v) * v;
    DeviceBuffer<float> dX(std::max<std::int64_t>(n, 1));
    DeviceBuffer<double> partials(kSumOfSquaresBlocks), result(1);
    dX.upload(x);
    std::vector<double> runs;
    for (int run = 0; run < 2; ++run) {
      sumOfSquares(dX.data(), n, partials.data(), result.data(), nullptr);
      synchronize();
      runs.push_back(result.download()[0]);
    }
    EXPECT_EQ(runs[0], runs[1]) << n << " elements";
    EXPECT_NEAR(runs[0], want, 1e-12 * std::max(want, 1.0)) << n;
  }
}

TEST(CudaKernels, PermutationIsAStableSortByDestination) {
  LAER_REQUIRE_GPU();
  FreshRandom random;
  SCOPED_TRACE(random.seed);
  const std::int64_t rows = 5000;
  const int buckets = 37;
  RowPermutation permutation(rows + 100, 64);
  std::vector<std::int32_t> keys = random.integers(rows, buckets);
  DeviceBuffer<std::int32_t> dKeys(rows);
  dKeys.upload(keys);
  permutation.compute(dKeys.data(), rows, buckets, nullptr);
  synchronize();

  std::vector<std::int32_t> order(rows);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int a, int b) { return keys[a] < keys[b]; });
  auto download = [](const auto *device, std::size_t n) {
    using T = std::remove_cv_t<std::remove_pointer_t<decltype(device)>>;
    std::vector<T> host(n);
    check(
        cudaMemcpy(host.data(), device, n * sizeof(T), cudaMemcpyDeviceToHost),
        "download");
    return host;
  };
  EXPECT_EQ(download(permutation.order(), rows), order);
  std::vector<std::int32_t> position = download(permutation.position(), rows);
  for (std::int64_t i = 0; i < rows; ++i)
    ASSERT_EQ(position[order[i]], i);
  std::vector<std::int64_t> counts(buckets, 0), offsets(buckets, 0);
  for (std::int32_t key : keys)
    ++counts[key];
  std::exclusive_scan(counts.begin(), counts.end(), offsets.begin(),
                      std::int64_t{0});
  EXPECT_EQ(download(permutation.counts(), buckets), counts);
  EXPECT_EQ(download(permutation.offsets(), buckets), offsets);
  EXPECT_EQ(permutation.invalidRows(buckets, nullptr), 0);

  // A key outside the buckets is reported, not written out of bounds.
  keys[17] = buckets + 3;
  dKeys.upload(keys);
  permutation.compute(dKeys.data(), rows, buckets, nullptr);
  EXPECT_EQ(permutation.invalidRows(buckets, nullptr), 1);
  EXPECT_THROW(permutation.compute(dKeys.data(), rows + 101, buckets, nullptr),
               RuntimeError);
}

TEST(CudaKernels, DispatchGatherCombineAndBackwardMatchCpu) {
  LAER_REQUIRE_GPU();
  for (Precision precision : kPrecisions) {
    FreshRandom random;
    SCOPED_TRACE(std::string(name(precision)) + " seed " +
                 std::to_string(random.seed));
    const std::int64_t T = 300, H = 72; // 72 x 2 bytes: not 16-byte rows
    const int k = 2, E = 8;
    std::vector<std::int32_t> experts = random.integers(T * k, E);
    RowPermutation permutation(T * k, E);
    DeviceBuffer<std::int32_t> keys(T * k);
    keys.upload(experts);
    permutation.compute(keys.data(), T * k, E, nullptr);
    synchronize();
    std::vector<std::int32_t> order(T * k), position(T * k);
    check(cudaMemcpy(order.data(), permutation.order(), order.size() * 4,
                     cudaMemcpyDeviceToHost),
          "order");
    check(cudaMemcpy(position.data(), permutation.position(),
                     position.size() * 4, cudaMemcpyDeviceToHost),
          "position");

    DeviceTensor x(T * H, precision), rows(T * k * H, precision),
        out(T * H, precision), dOut(T * H, precision),
        dRows(T * k * H, precision);
    std::vector<float> hx = x.rounded(random.uniform(T * H));
    rows.poison();
    gatherRows(x.data(), rows.data(), precision, H, permutation.order(), T * k,
               k, nullptr);
    synchronize();
    std::vector<float> wantRows(T * k * H);
    for (std::int64_t i = 0; i < T * k; ++i)
      std::copy_n(hx.begin() + (order[i] / k) * H, H, wantRows.begin() + i * H);
    EXPECT_EQ(rows.download(), wantRows); // a copy: exact

    // Expert outputs (any rows), combined with the router weights.
    std::vector<float> y = rows.rounded(random.uniform(T * k * H));
    std::vector<float> w = random.uniform(T * k);
    DeviceBuffer<float> dw(T * k), dWeights(T * k);
    dw.upload(w);
    out.poison();
    combineRows(rows.data(), out.data(), precision, H, permutation.position(),
                dw.data(), T, k, /*accumulate=*/false, nullptr);
    synchronize();
    std::vector<float> want(T * H, 0.0f);
    for (std::int64_t t = 0; t < T; ++t)
      for (int j = 0; j < k; ++j)
        for (std::int64_t c = 0; c < H; ++c)
          want[t * H + c] += w[t * k + j] * y[position[t * k + j] * H + c];
    EXPECT_LT(relativeError(out.download(), want), tolerance(precision));

    std::vector<float> g = dOut.rounded(random.uniform(T * H));
    dRows.poison();
    dWeights.poison();
    combineRowsBackward(rows.data(), dOut.data(), dRows.data(), dWeights.data(),
                        precision, H, permutation.position(), dw.data(), T, k,
                        nullptr);
    synchronize();
    std::vector<float> wantDRows(T * k * H), wantDWeights(T * k, 0.0f);
    for (std::int64_t t = 0; t < T; ++t)
      for (int j = 0; j < k; ++j) {
        std::int64_t r = position[t * k + j];
        for (std::int64_t c = 0; c < H; ++c) {
          wantDRows[r * H + c] = w[t * k + j] * g[t * H + c];
          wantDWeights[t * k + j] += g[t * H + c] * y[r * H + c];
        }
      }
    EXPECT_LT(relativeError(dRows.download(), wantDRows), tolerance(precision));
    EXPECT_LT(relativeError(dWeights.download(), wantDWeights), 1e-5);
  }
}

TEST(CudaKernels, GatedActivationMatchesCpu) {
  LAER_REQUIRE_GPU();
  for (Precision precision : kPrecisions)
    for (Activation activation :
         {Activation::Silu, Activation::Gelu, Activation::Relu}) {
      FreshRandom random;
      SCOPED_TRACE(std::string(name(precision)) + " seed " +
                   std::to_string(random.seed));
      const std::int64_t n = 10007;
      DeviceTensor gate(n, precision), up(n, precision), hidden(n, precision),
          dHidden(n, precision), dGate(n, precision), dUp(n, precision);
      std::vector<float> g = gate.rounded(random.uniform(n, 4.0f));
      std::vector<float> u = up.rounded(random.uniform(n));
      std::vector<float> d = dHidden.rounded(random.uniform(n));
      hidden.poison();
      dGate.poison();
      dUp.poison();
      gatedActivation(gate.data(), up.data(), hidden.data(), precision, n,
                      activation, nullptr);
      gatedActivationBackward(gate.data(), up.data(), dHidden.data(),
                              dGate.data(), dUp.data(), precision, n,
                              activation, nullptr);
      synchronize();
      std::vector<float> wantH(n), wantDG(n), wantDU(n);
      for (std::int64_t i = 0; i < n; ++i) {
        wantH[i] = cpu::activate(activation, g[i]) * u[i];
        wantDU[i] = d[i] * cpu::activate(activation, g[i]);
        wantDG[i] = d[i] * u[i] * cpu::activateDerivative(activation, g[i]);
      }
      EXPECT_LT(relativeError(hidden.download(), wantH), tolerance(precision));
      EXPECT_LT(relativeError(dGate.download(), wantDG), tolerance(precision));
      EXPECT_LT(relativeError(dUp.download(), wantDU), tolerance(precision));
    }
}

TEST(CudaKernels, ReplicaSumScaleAndAdamWMatchCpu) {
  LAER_REQUIRE_GPU();
  FreshRandom random;
  SCOPED_TRACE(random.seed);
  const std::int64_t n = 4099;
  const int replicas = 3;
  std::vector<float> shards = random.uniform(replicas * n);
  std::vector<float> base = random.uniform(n);
  DeviceBuffer<float> dShards(replicas * n), sum(n);
  dShards.upload(shards);
  sum.upload(base);
  sumReplicas(dShards.data(), replicas, n, sum.data(), /*accumulate=*/true,
              nullptr);
  synchronize();
  std::vector<float> want = base;
  for (int r = 0; r < replicas; ++r)
    for (std::int64_t i = 0; i < n; ++i)
      want[i] += shards[r * n + i];
  EXPECT_LT(relativeError(sum.download(), want), 1e-6);

  // The mean over ranks of a gradient: scaled in place.
  scale(sum.data(), n, 0.25f, nullptr);
  synchronize();
  for (float &value : want)
    value *= 0.25f;
  EXPECT_LT(relativeError(sum.download(), want), 1e-6);

  AdamWConfig config;
  config.learningRate = 0.01f;
  config.weightDecay = 0.1f;
  std::vector<float> params = random.uniform(n), m(n, 0.0f), v(n, 0.0f);
  DeviceBuffer<float> dParams(n), dGrads(n), dM(n), dV(n);
  DeviceTensor bf16(n, Precision::BFloat16);
  dParams.upload(params);
  dM.upload(m);
  dV.upload(v);
  for (long step = 1; step <= 3; ++step) {
    std::vector<float> grads = random.uniform(n);
    dGrads.upload(grads);
    bf16.poison();
    adamw(dParams.data(), dGrads.data(), dM.data(), dV.data(), n, config, step,
          bf16.data(), nullptr);
    adamwStep(params, grads, m, v, config, step);
  }
  synchronize();
  EXPECT_LT(relativeError(dParams.download(), params), 1e-5);
  EXPECT_LT(relativeError(dM.download(), m), 1e-5);
  EXPECT_LT(relativeError(dV.download(), v), 1e-5);
  EXPECT_LT(relativeError(bf16.download(), params), 1e-2);
  EXPECT_THROW(adamw(dParams.data(), dGrads.data(), dM.data(), dV.data(), n,
                     config, 0, nullptr, nullptr),
               RuntimeError);
}

} // namespace
