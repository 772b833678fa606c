//===- Simulator.cpp - training iterations of MoE models on a cluster -----===//

#include "laer/sim/Simulator.h"
#include "laer/runtime/Limits.h"

#include "laer/planner/Bounds.h"
#include "laer/planner/Planner.h"
#include "laer/runtime/Error.h"
#include "laer/runtime/fsep/LayerPlanning.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

using namespace laer;
using namespace laer::sim;
using namespace laer::planner;

ModelShape ModelShape::fromJsonFile(const std::string &path) {
  std::ifstream in(path);
  if (!in)
    rt::fail({}, "cannot open model config '", path, "'");
  nlohmann::json config;
  try {
    config = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception &error) {
    rt::fail({}, "model config '", path, "' is not valid JSON: ", error.what());
  }
  ModelShape shape;
  shape.name = std::filesystem::path(path).stem().string();
  auto read = [&](const char *key, auto &field) {
    if (!config.contains(key))
      rt::fail({}, "model config '", path, "' lacks '", key, "'");
    field = config[key].get<std::decay_t<decltype(field)>>();
  };
  read("hidden_size", shape.hidden);
  read("intermediate_size", shape.ffn);
  read("num_local_experts", shape.numExperts);
  read("num_experts_per_tok", shape.topK);
  read("num_hidden_layers", shape.layers);
  read("num_attention_heads", shape.heads);
  read("num_key_value_heads", shape.kvHeads);
  read("vocab_size", shape.vocab);
  if (shape.topK < 1 || shape.topK > shape.numExperts || shape.hidden < 1 ||
      shape.ffn < 1 || shape.layers < 1 || shape.heads < 1 || shape.kvHeads < 1)
    rt::fail({}, "model config '", path, "' has inconsistent sizes");
  return shape;
}

namespace {

/// Forward FLOPs per token of a layer's dense part: attention projections
/// (grouped-query), causal attention itself, and the router.
double denseFlopsPerToken(const ModelShape &model, std::int64_t sequence) {
  double H = double(model.hidden);
  double kv = H * model.kvHeads / model.heads;
  double projections = 2.0 * H * (H + 2.0 * kv) + 2.0 * H * H;
  double attention = 2.0 * sequence * H; // QK^T and AV, half by causality
  double router = 2.0 * H * model.numExperts;
  return projections + attention + router;
}

double denseParameterBytes(const ModelShape &model, double bytesPerElement) {
  double H = double(model.hidden);
  double kv = H * model.kvHeads / model.heads;
  return (H * (H + 2.0 * kv) + H * H + H * model.numExperts + 2.0 * H) *
         bytesPerElement;
}

/// Time to move `bytes` from every rank to every other (all-gather or
/// reduce-scatter): the node-local part over NVLink, the rest over the
/// network, side by side.
double collectiveSeconds(double bytes, const ClusterSpec &cluster) {
  int N = cluster.numRanks;
  int inNode = std::min(cluster.gpusPerNode, N) - 1;
  double intra = bytes * inNode / N / cluster.intraNodeBandwidth;
  double inter = bytes * (N - 1 - inNode) / N / cluster.interNodeBandwidth;
  return std::max(intra, inter);
}

} // namespace

namespace {
constexpr const char *kMethods[] = {"megatron", "static", "greedy", "flexmoe",
                                    "laer",     "laer+",  "oracle"};
} // namespace

std::span<const char *const> sim::methodNames() { return kMethods; }

void sim::checkSimulation(const ModelShape &model, const SimOptions &options,
                          const std::vector<std::string> &methods) {
  if (model.topK < 1 || model.topK > model.numExperts || model.hidden < 1 ||
      model.ffn < 1 || model.layers < 1 || model.heads < 1 ||
      model.kvHeads < 1 || model.vocab < 1)
    rt::fail({}, "model '", model.name, "': sizes out of range (hidden ",
             model.hidden, ", ffn ", model.ffn, ", experts ", model.numExperts,
             ", top_k ", model.topK, ", layers ", model.layers, ", heads ",
             model.heads, "/", model.kvHeads, ", vocab ", model.vocab, ")");
  const ClusterSpec &c = options.cluster;
  if (c.numRanks < 1 || c.numRanks > rt::kMaxRanks || c.gpusPerNode < 1)
    rt::fail({}, "the cluster needs 1 to ", rt::kMaxRanks,
             " ranks in nodes of >= 1 GPU, got ", c.numRanks, " ranks, ",
             c.gpusPerNode, " per node");
  for (auto [name, value] :
       {std::pair{"NVLink bandwidth", c.intraNodeBandwidth},
        std::pair{"network bandwidth", c.interNodeBandwidth},
        std::pair{"peak FLOP/s", c.flopsPerSecond}})
    if (!(value > 0) || !std::isfinite(value))
      rt::fail({}, "the cluster's ", name, " must be finite and > 0, got ",
               value);
  if (!(c.computeEfficiency > 0) || c.computeEfficiency > 1)
    rt::fail({},
             "the compute efficiency is a fraction of peak in (0, 1], "
             "got ",
             c.computeEfficiency);
  if (options.slotsPerRank < 0 || options.slotsPerRank > rt::kMaxSlotsPerRank)
    rt::fail({}, "slots per rank must be in [0, ", rt::kMaxSlotsPerRank,
             "], got ", options.slotsPerRank);
  if (options.iterations < 1 || options.iterations > 100000 ||
      options.warmup < 0 || options.warmup > 100000 || options.layers < 0 ||
      options.layers > 10000 || options.history < 0 || options.history > 1000)
    rt::fail({}, "iterations (", options.iterations, ", 1 to 100000), warm-up ",
             "(", options.warmup, ", 0 to 100000), layers (", options.layers,
             ", 0 to 10000) or history (", options.history,
             ", 0 to 1000) out of range");
  if (options.sequenceLength < 1 || options.sequencesPerIteration < 1 ||
      options.microBatches < 1 || !(options.bytesPerElement > 0))
    rt::fail({}, "sequence length, sequences per iteration, micro-batches and "
                 "bytes per element must be > 0");
  for (const std::string &method : methods)
    if (std::find(std::begin(kMethods), std::end(kMethods), method) ==
        std::end(kMethods))
      rt::fail({}, "unknown method '", method, "'");
}

std::vector<MethodResult> sim::simulate(const ModelShape &model,
                                        const SimOptions &options,
                                        const std::vector<std::string> &methods,
                                        const CountsTrace *replay) {
  checkSimulation(model, options, methods);
  const ClusterSpec &cluster = options.cluster;
  int N = cluster.numRanks;
  int layers = options.layers > 0 ? options.layers : model.layers;
  LayerSpec layer;
  layer.hidden = model.hidden;
  layer.ffn = model.ffn;
  layer.numExperts = model.numExperts;
  layer.topK = model.topK;
  layer.slotsPerRank = options.slotsPerRank > 0
                           ? options.slotsPerRank
                           : std::max(model.numExperts / 4, 1);
  layer.bytesPerElement = options.bytesPerElement;
  layer.recompute = options.recompute;
  std::int64_t tokensPerRank =
      options.sequencesPerIteration * options.sequenceLength /
      (static_cast<std::int64_t>(N) * options.microBatches);
  if (tokensPerRank < 1)
    rt::fail({}, "fewer than one token per rank and micro-batch");

  double flops = cluster.flopsPerSecond * cluster.computeEfficiency;
  double passes = layer.computePasses();
  double dense = passes * tokensPerRank *
                 denseFlopsPerToken(model, options.sequenceLength) / flops;
  // FSDP for the dense weights: gather before forward and backward, reduce
  // the gradient after, hidden behind the dense compute when it can be.
  double denseParams =
      3.0 * collectiveSeconds(denseParameterBytes(model, layer.bytesPerElement),
                              cluster);
  double denseLayer = dense + std::max(0.0, denseParams - dense);
  double head = 3.0 * 2.0 * model.hidden * model.vocab * tokensPerRank / flops;

  planner::WorkloadKind workload =
      replay ? planner::WorkloadKind::Replay : options.workload;
  WorkloadOptions workloadOptions = options.trace;
  workloadOptions.numRanks = N;
  workloadOptions.numExperts = model.numExperts;
  workloadOptions.topK = model.topK;
  workloadOptions.tokensPerRank = tokensPerRank;
  if (options.history < 0)
    rt::fail({}, "the history window must be >= 0 steps, got ",
             options.history);

  std::vector<MethodResult> results;
  for (const std::string &method : methods) {
    bool megatron = method == "megatron", oracle = method == "oracle";
    std::string plannerName = megatron ? "static" : oracle ? "laer+" : method;
    // The runtime's relayout: its hook, its per-layer config and history.
    PlannerHook hook(makePlanner(plannerName), cluster, layer);
    rt::MoELayerConfig config;
    config.shape = {model.hidden, model.ffn};
    config.numExperts = model.numExperts;
    config.topK = model.topK;
    config.slotsPerRank = layer.slotsPerRank;
    config.historyWindow = oracle ? 0 : options.history;
    config.prefetchesRestore = options.prefetch;
    std::vector<std::deque<std::vector<std::int64_t>>> history(layers);
    // Every method sees the same loads: same seed, fresh generators.
    std::vector<Workload> generators;
    for (int l = 0; l < layers; ++l)
      generators.emplace_back(workload, workloadOptions, l, replay);

    MethodResult result;
    result.method = method;
    long plans = 0;
    int measured = 0;
    for (int iteration = 0; iteration < options.warmup + options.iterations;
         ++iteration) {
      double moe = 0;
      MethodResult sums;
      for (int micro = 0; micro < options.microBatches; ++micro) {
        long step = static_cast<long>(iteration) * options.microBatches + micro;
        for (int l = 0; l < layers; ++l) {
          std::vector<std::int64_t> counts = generators[l].next();
          auto start = std::chrono::steady_clock::now();
          rt::Plan plan =
              rt::relayoutForCounts(hook, config, N, l, step, counts,
                                    history[l], rt::ErrorContext{-1, l, step});
          sums.plannerSeconds += std::chrono::duration<double>(
                                     std::chrono::steady_clock::now() - start)
                                     .count();
          if (options.onPlan)
            options.onPlan(method, l, step, plan);
          bool ahead = oracle || (plan.layoutAhead && options.prefetch);
          StepCost cost = evaluate(plan, cluster, layer,
                                   ahead ? RestoreStart::BeforeRouter
                                         : RestoreStart::AfterPlan);
          // Megatron keeps whole experts: no restore, no gradient
          // all-to-all; its replicas all-reduce gradients once per
          // iteration instead (below).
          moe += megatron ? LayerSpec::kTokenExchanges * cost.maxTokenComm +
                                passes * cost.maxCompute
                          : cost.criticalPath;
          std::int64_t busiestBound = maxRankRowsLowerBound(
              expertLoads(counts, N, model.numExperts), N, layer.slotsPerRank);
          auto boundRows = static_cast<double>(busiestBound);
          double maxRows = static_cast<double>(*std::max_element(
              cost.rankTokens.begin(), cost.rankTokens.end()));
          sums.maxOverMeanTokens += cost.maxOverMeanTokens;
          sums.rowsOverBound += boundRows > 0 ? maxRows / boundRows : 1.0;
          double boundPath =
              criticalPathLowerBound(busiestBound, cluster, layer);
          sums.pathOverBound +=
              boundPath > 0 ? cost.criticalPath / boundPath : 1.0;
          sums.layoutsAhead += ahead ? 1.0 : 0.0;
        }
      }
      if (megatron) {
        // Data-parallel all-reduce of the expert gradients among each
        // expert's replicas, overlapped with backward except for the last
        // layer's share.
        double replicas = double(N) * layer.slotsPerRank / model.numExperts;
        double bytes = 2.0 * (replicas - 1.0) / replicas * layer.slotsPerRank *
                       layer.parameterBytesPerExpert();
        moe += bytes / cluster.interNodeBandwidth;
      }
      if (iteration < options.warmup)
        continue;
      double denseTotal = options.microBatches * (layers * denseLayer + head);
      result.iterationSeconds += moe + denseTotal;
      result.moeSeconds += moe;
      result.denseSeconds += denseTotal;
      result.maxOverMeanTokens += sums.maxOverMeanTokens;
      result.rowsOverBound += sums.rowsOverBound;
      result.pathOverBound += sums.pathOverBound;
      result.layoutsAhead += sums.layoutsAhead;
      result.plannerSeconds += sums.plannerSeconds;
      plans += static_cast<long>(options.microBatches) * layers;
      ++measured;
    }
    if (measured > 0) {
      result.iterationSeconds /= measured;
      result.moeSeconds /= measured;
      result.denseSeconds /= measured;
    }
    if (plans > 0) {
      result.maxOverMeanTokens /= plans;
      result.rowsOverBound /= plans;
      result.pathOverBound /= plans;
      result.layoutsAhead /= plans;
      result.plannerSeconds /= plans;
    }
    results.push_back(result);
  }
  return results;
}

double sim::fitSkewToStaticImbalance(const ModelShape &model,
                                     const SimOptions &options,
                                     double targetImbalance) {
  if (!(targetImbalance >= 1))
    rt::fail({}, "a static max/mean imbalance is at least 1, got ",
             targetImbalance);
  auto imbalance = [&](double skew) {
    SimOptions probe = options;
    probe.trace.skew = skew;
    probe.iterations = std::min(probe.iterations, 4);
    probe.warmup = std::min(probe.warmup, 1);
    return simulate(model, probe, {"static"})[0].maxOverMeanTokens;
  };
  double best = 0.2, bestError = INFINITY;
  auto consider = [&](double skew) {
    if (double error = std::abs(imbalance(skew) - targetImbalance);
        error < bestError) {
      bestError = error;
      best = skew;
    }
  };
  for (int i = 1; i <= 15; ++i)
    consider(0.2 * i);
  double coarse = best;
  for (int i = -4; i <= 4; ++i)
    if (i != 0 && coarse + 0.04 * i >= 0)
      consider(coarse + 0.04 * i);
  return best;
}

std::map<std::string, double>
sim::readPublishedTimes(const std::string &csvPath,
                        const std::string &dataset) {
  std::ifstream in(csvPath);
  if (!in)
    rt::fail({}, "cannot open published results '", csvPath, "'");
  std::map<std::string, double> times;
  std::string line;
  std::getline(in, line); // header
  while (std::getline(in, line)) {
    std::vector<std::string> fields;
    std::stringstream row(line);
    std::string field;
    while (std::getline(row, field, ','))
      fields.push_back(field);
    if (fields.size() < 5 || fields[0] != dataset || std::stod(fields[3]) != 0)
      continue;
    std::string method = fields[1] == "FSDP"   ? "static"
                         : fields[1] == "FLEX" ? "flexmoe"
                         : fields[1] == "LAER" ? "laer"
                                               : fields[1];
    times[method + "/" + fields[2]] = std::stod(fields[4]);
  }
  return times;
}
