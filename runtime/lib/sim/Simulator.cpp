//===- Simulator.cpp - training iterations of MoE models on a cluster -----===//

#include "laer/sim/Simulator.h"

#include "laer/planner/Planner.h"
#include "laer/runtime/Error.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
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
    rt::fail({}, "model config '", path, "' is not valid JSON: ",
             error.what());
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
      shape.ffn < 1 || shape.layers < 1 || shape.heads < 1 ||
      shape.kvHeads < 1)
    rt::fail({}, "model config '", path, "' has inconsistent sizes");
  return shape;
}

CountsTrace CountsTrace::fromCsv(const std::string &path, int numRanks,
                                 int numExperts) {
  std::ifstream in(path);
  if (!in)
    rt::fail({}, "cannot open counts CSV '", path, "'");
  CountsTrace trace;
  std::string line;
  long lineNumber = 0;
  while (std::getline(in, line)) {
    ++lineNumber;
    if (line.empty() || line[0] == '#' || line.rfind("step", 0) == 0)
      continue;
    std::stringstream fields(line);
    std::string field;
    std::vector<long long> values;
    while (std::getline(fields, field, ','))
      values.push_back(std::stoll(field));
    if (values.size() != static_cast<std::size_t>(3 + numExperts))
      rt::fail({}, path, ":", lineNumber, ": expected step,layer,rank and ",
               numExperts, " counts, got ", values.size(), " fields");
    long long step = values[0], layer = values[1], rank = values[2];
    if (step < 0 || layer < 0 || rank < 0 || rank >= numRanks)
      rt::fail({}, path, ":", lineNumber, ": step ", step, ", layer ", layer,
               ", rank ", rank, " out of range (", numRanks, " ranks)");
    if (trace.steps_.size() <= static_cast<std::size_t>(step))
      trace.steps_.resize(step + 1);
    auto &layers = trace.steps_[step];
    if (layers.size() <= static_cast<std::size_t>(layer))
      layers.resize(layer + 1);
    auto &counts = layers[layer];
    counts.resize(static_cast<std::size_t>(numRanks) * numExperts, 0);
    for (int e = 0; e < numExperts; ++e)
      counts[rank * numExperts + e] = values[3 + e];
  }
  if (trace.steps_.empty())
    rt::fail({}, "counts CSV '", path, "' has no rows");
  return trace;
}

const std::vector<std::int64_t> &CountsTrace::at(long step, int layer) const {
  const auto &layers = steps_[step % steps_.size()];
  if (layers.empty())
    rt::fail({}, "counts trace has no layers at step ", step % steps_.size());
  return layers[layer % layers.size()];
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

std::vector<MethodResult> sim::simulate(const ModelShape &model,
                                        const SimOptions &options,
                                        const std::vector<std::string> &methods,
                                        const CountsTrace *trace) {
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
  double dense =
      passes * tokensPerRank * denseFlopsPerToken(model, options.sequenceLength) /
      flops;
  // FSDP for the dense weights: gather before forward and backward, reduce
  // the gradient after, hidden behind the dense compute when it can be.
  double denseParams =
      3.0 * collectiveSeconds(denseParameterBytes(model, layer.bytesPerElement),
                              cluster);
  double denseLayer = dense + std::max(0.0, denseParams - dense);
  double head = 3.0 * 2.0 * model.hidden * model.vocab * tokensPerRank / flops;

  std::vector<MethodResult> results;
  for (const std::string &method : methods) {
    bool megatron = method == "megatron";
    std::unique_ptr<Planner> planner = makePlanner(megatron ? "static" : method);
    TraceOptions traceOptions = options.trace;
    traceOptions.numRanks = N;
    traceOptions.numExperts = model.numExperts;
    traceOptions.topK = model.topK;
    traceOptions.tokensPerRank = tokensPerRank;
    // Every method sees the same traces: same seed, fresh generators.
    std::vector<TraceGenerator> generators;
    for (int l = 0; l < layers; ++l)
      generators.emplace_back(traceOptions, l);

    MethodResult result;
    result.method = method;
    long plans = 0, balanceSamples = 0;
    int measured = 0;
    for (int iteration = 0; iteration < options.warmup + options.iterations;
         ++iteration) {
      double moe = 0;
      double balance = 0, plannerSeconds = 0;
      for (int micro = 0; micro < options.microBatches; ++micro) {
        long step = static_cast<long>(iteration) * options.microBatches + micro;
        for (int l = 0; l < layers; ++l) {
          std::vector<std::int64_t> counts =
              trace ? trace->at(step, l) : generators[l].next();
          PlannerInput input{cluster, layer, counts, {}};
          auto start = std::chrono::steady_clock::now();
          rt::Plan plan = planner->plan(input);
          plannerSeconds += std::chrono::duration<double>(
                                std::chrono::steady_clock::now() - start)
                                .count();
          StepCost cost = evaluate(plan, cluster, layer);
          // Megatron keeps whole experts: no restore, no gradient
          // all-to-all; its replicas all-reduce gradients once per
          // iteration instead (below).
          moe += megatron ? LayerSpec::kTokenExchanges * cost.maxTokenComm +
                                passes * cost.maxCompute
                          : cost.criticalPath;
          balance += cost.maxOverMeanTokens;
        }
      }
      if (megatron) {
        // Data-parallel all-reduce of the expert gradients among each
        // expert's replicas, overlapped with backward except for the last
        // layer's share.
        double replicas =
            double(N) * layer.slotsPerRank / model.numExperts;
        double bytes = 2.0 * (replicas - 1.0) / replicas *
                       layer.slotsPerRank * layer.parameterBytesPerExpert();
        moe += bytes / cluster.interNodeBandwidth;
      }
      if (iteration < options.warmup)
        continue;
      double denseTotal = options.microBatches * (layers * denseLayer + head);
      result.iterationSeconds += moe + denseTotal;
      result.moeSeconds += moe;
      result.denseSeconds += denseTotal;
      result.maxOverMeanTokens += balance;
      result.plannerSeconds += plannerSeconds;
      balanceSamples += static_cast<long>(options.microBatches) * layers;
      plans += static_cast<long>(options.microBatches) * layers;
      ++measured;
    }
    if (measured > 0) {
      result.iterationSeconds /= measured;
      result.moeSeconds /= measured;
      result.denseSeconds /= measured;
    }
    if (balanceSamples > 0)
      result.maxOverMeanTokens /= balanceSamples;
    if (plans > 0)
      result.plannerSeconds /= plans;
    results.push_back(result);
  }
  return results;
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
