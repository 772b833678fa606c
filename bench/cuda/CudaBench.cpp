//===- CudaBench.cpp - the GPU backend's three figures of merit -----------===//
//
//   laer-cuda-bench [--repeats N]
//
// Measured in one run, each against a ceiling measured in the same run:
//  1. expert GEMMs (GroupedGemm, bf16, Mixtral-8x7B: H 4096, F 14336, 8
//     experts) for 512..16384 tokens per expert, as a fraction of one dense
//     cuBLASLt bf16 GEMM with the same FLOPs;
//  2. token permute (gatherRows) and combine (combineRows) as a fraction of
//     the device-to-device copy bandwidth (bytes read + written);
//  3. a layer's restore (NCCL all-to-all of expert weights on the parameter
//     communicator's stream) beside its expert GEMMs on a compute stream:
//     the share of the restore time hidden behind compute;
//  4. the same with whole GPU FSEP layers (GpuFsepMoELayer, bf16): two
//     layers' forward, the second layer's restore either after its own
//     router (serial) or prefetched beside the first layer's compute; the
//     share of the second layer's restore cost that the prefetch hides.
// Events around each region, warm-up first, median of `repeats` runs,
// inputs random (never zeros). Prints a markdown table; bench/RESULTS.md
// keeps the figures with the device name.
//
//===----------------------------------------------------------------------===//

#include "laer/runtime/DeviceInfo.h"
#include "laer/runtime/comm/InProcessCommunicator.h"
#include "laer/runtime/cuda/GpuFsepMoELayer.h"
#include "laer/runtime/cuda/GroupedGemm.h"
#include "laer/runtime/cuda/Kernels.h"
#include "laer/runtime/cuda/NcclCommunicator.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

using laer::rt::cuda::check;
using laer::rt::cuda::DeviceBuffer;
using laer::rt::cuda::Event;
using laer::rt::cuda::GemmProblem;
using laer::rt::cuda::GroupedGemm;
using laer::rt::cuda::Precision;
using laer::rt::cuda::Stream;

namespace {

/// Random bf16 data on the device (never zeros: see METHOD.md).
struct Bf16 {
  DeviceBuffer<std::uint8_t> bytes;
  explicit Bf16(std::int64_t n, std::uint64_t seed, float scale = 1.0f)
      : bytes(n * 2) {
    laer::rt::cuda::fillUniform(bytes.data(), Precision::BFloat16, n, seed,
                                scale, nullptr);
  }
  void *data() { return bytes.data(); }
};

/// Median milliseconds of `body` queued on `stream`, after two warm-ups.
double medianMs(cudaStream_t stream, int repeats,
                const std::function<void()> &body) {
  Event start(true), stop(true);
  for (int i = 0; i < 2; ++i)
    body();
  std::vector<double> times;
  for (int i = 0; i < repeats; ++i) {
    start.record(stream);
    body();
    stop.record(stream);
    stop.synchronize();
    times.push_back(stop.millisecondsSince(start));
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

constexpr std::int64_t H = 4096, F = 14336;
constexpr int kExperts = 8;

/// The up-projection weights [H, F] of every expert, random.
std::vector<Bf16> expertWeights(std::uint64_t seed) {
  std::vector<Bf16> weights;
  for (int e = 0; e < kExperts; ++e)
    weights.emplace_back(H * F, seed + e, 0.02f);
  return weights;
}

/// One GEMM per expert: its m rows of `x` [E m, H] times its weights into
/// its rows of `y` [E m, F].
std::vector<GemmProblem> upProjections(std::int64_t m, Bf16 &x,
                                       std::vector<Bf16> &weights,
                                       DeviceBuffer<std::uint8_t> &y) {
  std::vector<GemmProblem> problems;
  for (int e = 0; e < kExperts; ++e)
    problems.push_back({static_cast<char *>(x.data()) + e * m * H * 2,
                        weights[e].data(), y.data() + e * m * F * 2, m, F, H});
  return problems;
}

void expertGemms(int repeats, cudaStream_t stream) {
  std::printf("\n| tokens per expert | grouped (8 experts) TFLOP/s | dense "
              "same-FLOP GEMM TFLOP/s | fraction |\n|---:|---:|---:|---:|\n");
  GroupedGemm grouped(Precision::BFloat16, Precision::BFloat16);
  GroupedGemm dense(Precision::BFloat16, Precision::BFloat16);
  std::vector<Bf16> weights = expertWeights(100);
  for (std::int64_t m : {512, 1024, 2048, 4096, 8192, 16384}) {
    Bf16 x(kExperts * m * H, 7 + m);
    DeviceBuffer<std::uint8_t> y(kExperts * m * F * 2);
    std::vector<GemmProblem> problems = upProjections(m, x, weights, y);
    GemmProblem whole{x.data(), weights[0].data(), y.data(), kExperts * m, F,
                      H};
    double flops = 2.0 * kExperts * m * H * F;
    double groupedMs = medianMs(
        stream, repeats, [&] { grouped.run(problems, 1.0f, 0.0f, stream); });
    double denseMs = medianMs(stream, repeats, [&] {
      dense.run({&whole, 1}, 1.0f, 0.0f, stream);
    });
    std::printf("| %lld | %.0f | %.0f | %.2f |\n", static_cast<long long>(m),
                flops / groupedMs * 1e-9, flops / denseMs * 1e-9,
                denseMs / groupedMs);
  }
}

void permuteAndCombine(int repeats, cudaStream_t stream) {
  const std::int64_t tokens = 16384, k = 2, rows = tokens * k;
  Bf16 x(tokens * H, 3), expertRows(rows * H, 4);
  DeviceBuffer<std::uint8_t> permuted(rows * H * 2), out(tokens * H * 2),
      copy(rows * H * 2);
  // A random routing: destination = one of 8 experts x 2 replicas.
  std::vector<std::int32_t> keys(rows);
  std::uint64_t state = 12345;
  for (auto &key : keys) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    key = static_cast<std::int32_t>((state >> 33) % 16);
  }
  std::vector<float> weights(rows, 0.5f);
  DeviceBuffer<std::int32_t> dKeys(rows);
  DeviceBuffer<float> dWeights(rows);
  dKeys.upload(keys);
  dWeights.upload(weights);
  laer::rt::cuda::RowPermutation permutation(rows, 16);
  permutation.compute(dKeys.data(), rows, 16, stream);

  double copyMs = medianMs(stream, repeats, [&] {
    check(cudaMemcpyAsync(copy.data(), permuted.data(), rows * H * 2,
                          cudaMemcpyDeviceToDevice, stream),
          "copy");
  });
  double copyGBs = 2.0 * rows * H * 2 / copyMs * 1e-6;
  double gatherMs = medianMs(stream, repeats, [&] {
    laer::rt::cuda::gatherRows(x.data(), permuted.data(), Precision::BFloat16,
                               H, permutation.order(), rows, k, stream);
  });
  double gatherGBs = 2.0 * rows * H * 2 / gatherMs * 1e-6;
  double combineMs = medianMs(stream, repeats, [&] {
    laer::rt::cuda::combineRows(expertRows.data(), out.data(),
                                Precision::BFloat16, H, permutation.position(),
                                dWeights.data(), tokens, k, false, stream);
  });
  double combineGBs = (rows + tokens) * H * 2.0 / combineMs * 1e-6;
  double permuteMs = medianMs(stream, repeats, [&] {
    permutation.compute(dKeys.data(), rows, 16, stream);
  });
  std::printf("\n| kernel (%lld tokens, top-%lld, H %lld, bf16) | ms | GB/s "
              "| fraction of copy |\n|---|---:|---:|---:|\n",
              static_cast<long long>(tokens), static_cast<long long>(k),
              static_cast<long long>(H));
  std::printf("| device-to-device copy | %.3f | %.0f | 1.00 |\n", copyMs,
              copyGBs);
  std::printf("| permute (gatherRows) | %.3f | %.0f | %.2f |\n", gatherMs,
              gatherGBs, gatherGBs / copyGBs);
  std::printf("| combine (combineRows) | %.3f | %.0f | %.2f |\n", combineMs,
              combineGBs, combineGBs / copyGBs);
  std::printf("| destination sort (RowPermutation) | %.3f | | |\n", permuteMs);
}

void restoreOverlap(int repeats) {
  laer::rt::InProcessGroup::run(1, [&](laer::rt::Communicator &bootstrap) {
    laer::rt::cuda::NcclCommunicator parameters(bootstrap, 0);
    Stream compute;
    // Restore: two experts' full weights (w1, w3, w2) arrive as one
    // all-to-all of shards (with one rank, from itself through NCCL).
    const std::int64_t elements = 2 * 3 * H * F;
    Bf16 shards(elements, 11);
    DeviceBuffer<std::uint8_t> restored(elements * 2);
    // bf16 travels as bytes (the Communicator has no bf16 type).
    auto sizes =
        laer::rt::AllToAllSizes::packed({elements * 2}, {elements * 2});
    auto restore = [&] {
      return parameters.startAllToAllV(shards.data(), restored.data(), sizes,
                                       laer::rt::DataType::Byte);
    };
    // Compute: the up-projections of 8 experts x 4096 tokens.
    const std::int64_t m = 4096;
    GroupedGemm gemm(Precision::BFloat16, Precision::BFloat16);
    std::vector<Bf16> weights = expertWeights(200);
    Bf16 x(kExperts * m * H, 21);
    DeviceBuffer<std::uint8_t> y(kExperts * m * F * 2);
    std::vector<GemmProblem> problems = upProjections(m, x, weights, y);
    auto computeAll = [&] { gemm.run(problems, 1.0f, 0.0f, compute); };
    check(cudaDeviceSynchronize(), "setup");

    double restoreMs =
        medianMs(parameters.stream(), repeats, [&] { restore()->wait(); });
    double computeMs = medianMs(compute, repeats, computeAll);
    // Both: the parameter stream starts with compute and compute's end
    // waits for it.
    Event forked, joined;
    double bothMs = medianMs(compute, repeats, [&] {
      forked.record(compute);
      forked.waitOn(parameters.stream());
      auto inFlight = restore();
      computeAll();
      joined.record(parameters.stream());
      joined.waitOn(compute);
      // (the host waits for the restore only after queueing everything)
    });
    double hidden = (restoreMs + computeMs - bothMs) / restoreMs;
    std::printf("\n| restore alone ms | expert GEMMs alone ms | both ms | "
                "restore hidden |\n|---:|---:|---:|---:|\n| %.3f | %.3f | "
                "%.3f | %.0f%% |\n",
                restoreMs, computeMs, bothMs, 100.0 * hidden);
  });
}

/// Wall milliseconds of `body` (which blocks until its work is done: the
/// layer phases block the host at the relayout, so host time is the
/// step's time).
double wallMs(const std::function<void()> &body) {
  auto start = std::chrono::steady_clock::now();
  body();
  return std::chrono::duration<double, std::milli>(
             std::chrono::steady_clock::now() - start)
      .count();
}

/// Median of `repeats` results of `timed` (milliseconds) after two
/// warm-ups.
double medianOf(int repeats, const std::function<double()> &timed) {
  for (int i = 0; i < 2; ++i)
    timed();
  std::vector<double> times;
  for (int i = 0; i < repeats; ++i)
    times.push_back(timed());
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

void layerPrefetch(int repeats) {
  using namespace laer::rt;
  InProcessGroup::run(1, [&](Communicator &host) {
    cuda::NcclCommunicator tokens(host, 0), params(host, 0);
    cuda::GpuContext context(host, tokens, params, Precision::BFloat16);
    // Mixtral-sized experts, 4 per layer (two layers' fp32 master state,
    // gradients and moments fit one 80 GB GPU), 4096 tokens, top-2.
    MoELayerConfig config;
    config.shape = {H, F};
    config.numExperts = 4;
    config.topK = 2;
    config.slotsPerRank = 4;
    config.tokenChunks = 2;
    const std::int64_t tokenCount = 4096;
    cuda::GpuFsepMoELayer first(context, config, 0), second(context, config, 1);
    std::vector<float> shards(static_cast<std::size_t>(4 * first.shardSize()));
    std::vector<float> gate(static_cast<std::size_t>(H * 4));
    for (std::size_t i = 0; i < shards.size(); ++i)
      shards[i] = 0.02f * (2.0f * uniformAt(1, 0, i) - 1.0f);
    for (std::size_t i = 0; i < gate.size(); ++i)
      gate[i] = 2.0f * uniformAt(2, 0, i) - 1.0f;
    first.load(shards, gate);
    second.load(shards, gate);
    Bf16 x(tokenCount * H, 31);
    Bf16 middle(tokenCount * H, 32), out(tokenCount * H, 33);
    StaticRoundRobinHook hook;
    Layout layout = Layout::roundRobin(1, 4, 4);
    long step = 1;
    auto finish = [&] {
      check(cudaDeviceSynchronize(), "layer step");
      ++step;
    };
    double secondFull = medianOf(repeats, [&] {
      return wallMs([&] {
        second.forward(x.data(), out.data(), tokenCount, step, hook);
        finish();
      });
    });
    // The restore done before the clock starts: what the layer costs
    // without it.
    double secondWarm = medianOf(repeats, [&] {
      second.prefetchRestore(layout);
      check(cudaDeviceSynchronize(), "restore");
      return wallMs([&] {
        second.forward(x.data(), out.data(), tokenCount, step, hook);
        finish();
      });
    });
    double serial = medianOf(repeats, [&] {
      return wallMs([&] {
        first.forward(x.data(), middle.data(), tokenCount, step, hook);
        second.forward(middle.data(), out.data(), tokenCount, step, hook);
        finish();
      });
    });
    double prefetched = medianOf(repeats, [&] {
      return wallMs([&] {
        second.prefetchRestore(layout);
        first.forward(x.data(), middle.data(), tokenCount, step, hook);
        second.forward(middle.data(), out.data(), tokenCount, step, hook);
        finish();
      });
    });
    double restoreCost = secondFull - secondWarm;
    std::printf("\n| layer forward, restore in place ms | restored ahead ms | "
                "two layers serial ms | second prefetched ms | restore "
                "hidden |\n|---:|---:|---:|---:|---:|\n| %.3f | %.3f | %.3f "
                "| %.3f | %.0f%% |\n",
                secondFull, secondWarm, serial, prefetched,
                100.0 * (serial - prefetched) / restoreCost);
  });
}

} // namespace

int main(int argc, char **argv) {
  int repeats = 20;
  for (int i = 1; i < argc; ++i)
    if (std::strcmp(argv[i], "--repeats") == 0 && i + 1 < argc)
      repeats = std::max(3, std::atoi(argv[++i]));
  std::string devices = laer::rt::describeDevices();
  while (!devices.empty() && devices.back() == '\n')
    devices.pop_back();
  if (!laer::rt::cuda::deviceAvailable()) {
    std::printf("laer-cuda-bench: %s; nothing to measure\n", devices.c_str());
    return 2;
  }
  try {
    std::printf("laer-cuda-bench on %s, median of %d runs\n", devices.c_str(),
                repeats);
    Stream stream;
    expertGemms(repeats, stream);
    permuteAndCombine(repeats, stream);
    restoreOverlap(repeats);
    layerPrefetch(repeats);
  } catch (const std::exception &error) {
    std::fprintf(stderr, "laer-cuda-bench: %s\n", error.what());
    return 1;
  }
  return 0;
}
