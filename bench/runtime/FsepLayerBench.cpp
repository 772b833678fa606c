//===- FsepLayerBench.cpp - time per phase of one FSEP MoE layer step -----===//
//
//   mpirun -np N laer-fsep-layer-bench [--tokens T] [--hidden H] [--ffn F]
//       [--experts E] [--topk k] [--slots C] [--steps S] [--warmup W]
//       [--skew z] [--planner static|greedy|flexmoe|laer|laer+]
//       [--workload NAME [--workload-skew z] [--history W]]
//
// Runs S timed steps (forward + backward + AdamW) of one layer after W
// warm-up steps, on fresh random tokens each step. Per phase it reports the
// mean seconds per step of the slowest rank (the critical path), and the
// step time measured around the whole step. With --workload the router's
// choices follow that workload of laer/planner/Workloads.h step by step
// (each token's features select its experts through an identity gate),
// and plans go through the runtime's relayout path with a W-step history
// (default 2, laer-train's).
//
//===----------------------------------------------------------------------===//

#include "laer/planner/Planner.h"
#include "laer/planner/Workloads.h"
#include "laer/runtime/comm/MpiCommunicator.h"
#include "laer/runtime/cpu/DenseKernels.h"
#include "laer/runtime/fsep/FsepMoELayer.h"

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

using namespace laer::rt;

namespace {

/// Seconds of the expert GEMMs of one step as plain sgemm calls on the
/// same shapes (per slot with `rows` rows: forward x w1, x w3, h w2;
/// backward dw2, dh, dw1, dw3 and the two dx): median of 5 repetitions.
double plainGemmSeconds(std::span<const std::int64_t> slotRows,
                        std::int64_t hidden, std::int64_t ffn) {
  std::int64_t most = 1;
  for (std::int64_t rows : slotRows)
    most = std::max(most, rows);
  std::vector<float> x(static_cast<std::size_t>(most * hidden), 0.5f),
      h(static_cast<std::size_t>(most * ffn), 0.25f),
      w(static_cast<std::size_t>(hidden * ffn), 0.125f),
      out(static_cast<std::size_t>(most * std::max(hidden, ffn) + hidden * ffn),
          0.0f);
  std::vector<double> runs;
  for (int repeat = 0; repeat < 5; ++repeat) {
    auto start = std::chrono::steady_clock::now();
    for (std::int64_t m : slotRows) {
      if (m == 0)
        continue;
      const std::int64_t H = hidden, F = ffn;
      cpu::gemmT<float>(false, false, m, F, H, 1, x.data(), w.data(), 0,
                        out.data());
      cpu::gemmT<float>(false, false, m, F, H, 1, x.data(), w.data(), 0,
                        out.data());
      cpu::gemmT<float>(false, false, m, H, F, 1, h.data(), w.data(), 0,
                        out.data());
      cpu::gemmT<float>(true, false, F, H, m, 1, h.data(), x.data(), 1,
                        out.data());
      cpu::gemmT<float>(false, true, m, F, H, 1, x.data(), w.data(), 0,
                        out.data());
      cpu::gemmT<float>(true, false, H, F, m, 1, x.data(), h.data(), 1,
                        out.data());
      cpu::gemmT<float>(true, false, H, F, m, 1, x.data(), h.data(), 1,
                        out.data());
      cpu::gemmT<float>(false, true, m, H, F, 1, h.data(), w.data(), 0,
                        out.data());
      cpu::gemmT<float>(false, true, m, H, F, 1, h.data(), w.data(), 1,
                        out.data());
    }
    runs.push_back(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
            .count());
  }
  std::sort(runs.begin(), runs.end());
  return runs[runs.size() / 2];
}

struct Options {
  std::int64_t tokens = 512; // per rank
  std::int64_t hidden = 256;
  std::int64_t ffn = 896;
  int experts = 8;
  int topK = 2;
  int slots = 0; // 0: ceil(E / N)
  int steps = 10;
  int warmup = 2;
  float skew = 0.0f; // gate bias towards low-numbered experts
  std::string planner = "static";
  std::string workload; // empty: random tokens, --skew
  double workloadSkew = 1.2;
  int history = 2;
};

Options parse(int argc, char **argv) {
  Options options;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    double value = std::atof(argv[i + 1]);
    if (flag == "--planner")
      options.planner = argv[i + 1];
    else if (flag == "--workload")
      options.workload = argv[i + 1];
    else if (flag == "--workload-skew")
      options.workloadSkew = value;
    else if (flag == "--history")
      options.history = static_cast<int>(value);
    else if (flag == "--tokens")
      options.tokens = static_cast<std::int64_t>(value);
    else if (flag == "--hidden")
      options.hidden = static_cast<std::int64_t>(value);
    else if (flag == "--ffn")
      options.ffn = static_cast<std::int64_t>(value);
    else if (flag == "--experts")
      options.experts = static_cast<int>(value);
    else if (flag == "--topk")
      options.topK = static_cast<int>(value);
    else if (flag == "--slots")
      options.slots = static_cast<int>(value);
    else if (flag == "--steps")
      options.steps = static_cast<int>(value);
    else if (flag == "--warmup")
      options.warmup = static_cast<int>(value);
    else if (flag == "--skew")
      options.skew = static_cast<float>(value);
    else
      fail({}, "unknown option ", flag);
  }
  return options;
}

} // namespace

int main(int argc, char **argv) {
  MpiRuntime mpi(&argc, &argv);
  try {
    Options options = parse(argc, argv);
    MpiCommunicator comm;
    int ranks = comm.size();
    MoELayerConfig config;
    config.shape = {options.hidden, options.ffn};
    config.numExperts = options.experts;
    config.topK = options.topK;
    config.slotsPerRank = options.slots > 0
                              ? options.slots
                              : (options.experts + ranks - 1) / ranks;
    bool forced = !options.workload.empty();
    if (forced) {
      config.historyWindow = options.history;
      if (options.hidden < options.experts)
        fail({}, "--workload needs --hidden >= --experts (one feature per "
                 "expert selects it)");
    }
    FsepMoELayer layer(comm, config, 0);
    layer.initialize(42, 1.0f / std::sqrt(float(options.hidden)), 0.1f);
    std::unique_ptr<laer::planner::Workload> workload;
    if (forced) {
      // An identity gate: feature e is expert e's logit.
      std::fill(layer.gate().begin(), layer.gate().end(), 0.0f);
      for (int e = 0; e < options.experts; ++e)
        layer.gate()[e * options.experts + e] = 1.0f;
      laer::planner::WorkloadOptions load;
      load.numRanks = ranks;
      load.numExperts = options.experts;
      load.topK = options.topK;
      load.tokensPerRank = options.tokens;
      load.skew = options.workloadSkew;
      load.dominantShare = std::min(0.4, 1.0 / options.topK);
      workload = std::make_unique<laer::planner::Workload>(
          laer::planner::parseWorkload(options.workload), load, 0);
    }
    // Skew: a constant input feature times a graded gate row favours the
    // first experts, as skewed real routing does.
    for (int e = 0; e < options.experts; ++e)
      layer.gate()[e] += options.skew * (1.0f - 2.0f * e / options.experts);
    // The planner sees this machine: one node of CPU ranks, fp32, no
    // activation checkpointing.
    auto cluster = laer::planner::ClusterSpec::cpuNode(ranks);
    laer::planner::LayerSpec layerSpec;
    layerSpec.hidden = options.hidden;
    layerSpec.ffn = options.ffn;
    layerSpec.topK = options.topK;
    layerSpec.bytesPerElement = 4;
    layerSpec.recompute = false;
    laer::planner::PlannerHook hook(laer::planner::makePlanner(options.planner),
                                    cluster, layerSpec);
    AdamWConfig adamw;

    std::size_t size =
        static_cast<std::size_t>(options.tokens * options.hidden);
    std::vector<float> x(size), dOut(size);
    std::vector<double> stepSeconds;
    double balanceSum = 0;
    for (int step = 0; step < options.warmup + options.steps; ++step) {
      for (std::size_t i = 0; i < size; ++i) {
        x[i] = 2.0f * uniformAt(step, comm.rank(), i) - 1.0f;
        dOut[i] =
            1e-3f * (2.0f * uniformAt(step, 1000 + comm.rank(), i) - 1.0f);
      }
      if (workload) {
        // This rank's counts of the step: its (token, choice) pairs laid
        // out expert by expert, token t taking pairs t, t + T, ...: no
        // expert twice per token as no count exceeds T. Its features of
        // the chosen experts outweigh every other logit, in choice order.
        std::vector<std::int64_t> counts = workload->next();
        std::vector<int> pairs;
        for (int e = 0; e < options.experts; ++e)
          pairs.insert(
              pairs.end(),
              counts[static_cast<std::size_t>(comm.rank()) * options.experts +
                     e],
              e);
        for (std::int64_t t = 0; t < options.tokens; ++t) {
          for (int e = 0; e < options.experts; ++e)
            x[t * options.hidden + e] = 0.0f;
          for (int c = 0; c < options.topK; ++c)
            x[t * options.hidden + pairs[c * options.tokens + t]] = 20.0f - c;
        }
      } else {
        for (std::int64_t t = 0; t < options.tokens; ++t)
          x[t * options.hidden] = 1.0f;
      }
      if (step == options.warmup)
        layer.times().reset();
      comm.barrier();
      auto start = std::chrono::steady_clock::now();
      layer.zeroGrads();
      layer.forward(x, step, hook);
      layer.backward(dOut);
      layer.applyAdamW(adamw, step + 1);
      comm.barrier();
      if (step >= options.warmup)
        balanceSum += maxOverMeanRows(rowsPerRank(layer.lastPlan()));
      if (step >= options.warmup)
        stepSeconds.push_back(std::chrono::duration<double>(
                                  std::chrono::steady_clock::now() - start)
                                  .count());
    }

    // Critical path per phase: the slowest rank's time.
    constexpr int phases = static_cast<int>(Phase::Count);
    std::vector<double> mine(phases);
    for (int p = 0; p < phases; ++p)
      mine[p] = layer.times()[static_cast<Phase>(p)] / options.steps;
    std::vector<double> all = comm.allGather(std::span<const double>(mine));
    // Load balance over the timed steps (every rank holds the plans).
    double balance = balanceSum / options.steps;

    // The expert GEMMs against plain sgemm on the same shapes (this rank's
    // slots in the last step), and the step's useful FLOP rate; peak
    // memory.
    const Plan &plan = layer.lastPlan();
    std::vector<std::int64_t> slotRows;
    double usefulFlops = 0;
    for (int slot = 0; slot < config.slotsPerRank; ++slot) {
      int replica = plan.layout.replicaAt(comm.rank(), slot);
      std::int64_t rows = 0;
      for (int source = 0; replica >= 0 && source < ranks; ++source)
        rows += plan.routing.at(source, replica);
      slotRows.push_back(rows);
      usefulFlops += 9.0 * 2.0 * double(rows) * double(options.hidden) *
                     double(options.ffn);
    }
    double sgemm = plainGemmSeconds(slotRows, options.hidden, options.ffn);
    double compute = layer.times()[Phase::Compute] / options.steps;
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    std::vector<double> rates = {usefulFlops / std::max(sgemm, 1e-12),
                                 usefulFlops / std::max(compute, 1e-12),
                                 static_cast<double>(usage.ru_maxrss) / 1024.0};
    std::vector<double> allRates =
        comm.allGather(std::span<const double>(rates));

    if (comm.rank() == 0) {
      std::sort(stepSeconds.begin(), stepSeconds.end());
      double median = stepSeconds[stepSeconds.size() / 2];
      std::printf("ranks=%d tokens/rank=%lld H=%lld F=%lld E=%d k=%d C=%d "
                  "skew=%.2f planner=%s steps=%d workload=%s\n",
                  ranks, (long long)options.tokens, (long long)options.hidden,
                  (long long)options.ffn, options.experts, options.topK,
                  config.slotsPerRank, options.skew, options.planner.c_str(),
                  options.steps, forced ? options.workload.c_str() : "none");
      std::printf("%-10s %10s\n", "phase", "ms/step");
      for (int p = 0; p < phases; ++p) {
        double worst = 0;
        for (int r = 0; r < ranks; ++r)
          worst = std::max(worst, all[r * phases + p]);
        std::printf("%-10s %10.2f\n", nameOf(static_cast<Phase>(p)),
                    1e3 * worst);
      }
      std::printf("%-10s %10.2f  (median wall time of a whole step)\n", "step",
                  1e3 * median);
      std::printf("expert rows per rank: max/mean = %.3f (mean over the "
                  "timed steps)\n",
                  balance);
      std::printf("expert bytes held per rank: %.1f MiB sharded + %.1f MiB "
                  "restored\n",
                  layer.experts().bytesHeld() / 1048576.0,
                  layer.restoredBytes() / 1048576.0);
      // Rank 0's figures; the ratio's worst rank; the largest peak.
      double worstRatio = 1e300, peak = 0;
      for (int r = 0; r < ranks; ++r) {
        worstRatio =
            std::min(worstRatio, allRates[r * 3 + 1] / allRates[r * 3]);
        peak = std::max(peak, allRates[r * 3 + 2]);
      }
      double stepRate = usefulFlops / median;
      std::printf("expert GEMMs: %.1f GFLOP/s in the layer, %.1f GFLOP/s "
                  "plain sgemm on the same shapes (%.2f; worst rank %.2f)\n",
                  allRates[1] / 1e9, allRates[0] / 1e9,
                  allRates[1] / allRates[0], worstRatio);
      std::printf("whole step: %.1f GFLOP/s useful (%.2f of plain sgemm)\n",
                  stepRate / 1e9, stepRate / allRates[0]);
      std::printf("peak memory per rank: %.1f MiB (largest rank's RSS)\n",
                  peak);
    }
  } catch (const std::exception &error) {
    MpiRuntime::abortJob(error.what());
  }
  return 0;
}
