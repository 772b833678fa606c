//===- laer-sim.cpp - simulate MoE training on a cluster, per method ------===//
//
// Thin driver over laer::sim: parses options, runs the simulator for each
// model config, prints the per-method iteration times next to the
// published ones. `laer-sim --help` lists the options.
//
//===----------------------------------------------------------------------===//

#include "laer/runtime/Error.h"
#include "laer/sim/Simulator.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

using namespace laer;
using namespace laer::sim;

namespace {

const char *kUsage = R"(usage: laer-sim --data-dir DIR [options]

Simulates training iterations of the MoE models in DIR (the LAER-MoE
artifact's *.json configs, e.g. ../shared/data/laer-ae) on a cluster and
prints the iteration time of each expert-placement method.

  --models a,b,...          model config names (default: every *-e*k*.json)
  --methods m,...           megatron,static,greedy,flexmoe,laer,laer+,
                            oracle (default all but greedy; greedy:
                            water-fill + longest-first; oracle: laer+ on
                            each step's counts with its restore ahead,
                            which no executor can do)
  --nodes N                 nodes (default 4)
  --gpus-per-node G         GPUs per node (default 8)
  --nvlink-gbps B           intra-node bandwidth per GPU, GB/s (default 300)
  --network-gbps B          inter-node bandwidth per GPU, GB/s (default 100)
  --network-config FILE     take both bandwidths from a JSON with
                            "intra_node" and "inter_node" (GB/s)
  --tflops T                peak bf16 TFLOP/s per GPU (default 312)
  --efficiency F            fraction of peak the GEMMs reach (default 0.6)
  --layers L                layers to simulate (default: the paper's runs)
  --iterations I            measured iterations (default 20)
  --warmup W                iterations before measuring (default 5)
  --history W               past steps each layer's planner sees, as the
                            runtime's --history (default 2; 0: none)
  --no-prefetch             the executor restores every layout after its
                            plan (the CPU runtime) instead of restoring
                            layouts known ahead before the router
  --workload NAME           routing of every layer: uniform, zipf,
                            dominant, drift, rotating, shift, bursts,
                            correlated (default drift)
  --workload-table          for each model, every workload x method:
                            max/mean rank rows, rows over the slot-counting
                            bound, critical path over its lower bound,
                            time vs static and vs the oracle
  --skew Z                  Zipf exponent of expert popularity (default 1.6)
  --drift D                 per-step drift of log-popularity (default 0.05)
  --topk-correlation R      correlation of a token's choices (default 0.3)
  --rank-jitter J           spread of the ranks' popularity (default 0.2)
  --dominant-share S        dominant: the hot expert's share (default 0.4;
                            the table caps it at 1/top-k)
  --period P                rotating: steps per move; bursts: steps between
                            bursts (default 4)
  --shift-step T            shift: the step the popularity changes (10)
  --burst-length B          bursts: steps a burst lasts (default 2)
  --burst-factor F          bursts: popularity multiplier (default 16)
  --seed S                  trace seed (default 1)
  --counts-csv FILE         replay counts (rows step,layer,rank,<E counts>,
                            as laer-train --counts-csv writes them)
  --published FILE          e2e_analysis_backup.csv (default DIR/...)
  --dataset NAME            dataset of the published figures (wikitext)
  --calibrate               sweep --skew and report the fit to the paper
  --fit-static-imbalance    per model, the --skew whose static (FSDP+EP)
                            max/mean rank rows is the paper's (1.66 for 8
                            experts, 1.73 for 16; --static-imbalance X
                            sets it), then every method's time and
                            speed-up there next to the paper's
  --node-network-gbps B     inter-node bandwidth per node, shared by its
                            GPUs (instead of --network-gbps per GPU)
)";

std::vector<std::string> split(const std::string &text) {
  std::vector<std::string> parts;
  std::stringstream in(text);
  std::string part;
  while (std::getline(in, part, ','))
    if (!part.empty())
      parts.push_back(part);
  return parts;
}

/// Layers the paper's end-to-end runs used (artifact README); Qwen shapes
/// follow the Mixtral-8x7B pair with the same expert configuration.
int paperLayers(const std::string &model) {
  if (model.find("8x22b") != std::string::npos)
    return model.find("e16k4") != std::string::npos ? 14 : 18;
  return model.find("e16k4") != std::string::npos ? 24 : 32;
}

struct Args {
  std::string dataDir, published, dataset = "wikitext", countsCsv;
  std::vector<std::string> models;
  std::vector<std::string> methods = {"megatron", "static", "flexmoe",
                                      "laer",     "laer+",  "oracle"};
  SimOptions options;
  int nodes = 4;
  bool calibrate = false, workloadTable = false, fitImbalance = false;
  double staticImbalance = 0; // 0: the paper's for the model's E
  double nodeNetworkGbps = 0; // 0: --network-gbps per GPU
};

Args parse(int argc, char **argv) {
  Args args;
  // Calibrated against the paper's speed-ups (laer-sim --calibrate, see
  // bench/RESULTS.md).
  args.options.trace.skew = 1.6;
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i];
    if (flag == "--help" || flag == "-h") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    }
    if (flag == "--calibrate") {
      args.calibrate = true;
      continue;
    }
    if (flag == "--workload-table") {
      args.workloadTable = true;
      continue;
    }
    if (flag == "--fit-static-imbalance") {
      args.fitImbalance = true;
      continue;
    }
    if (flag == "--no-prefetch") {
      args.options.prefetch = false;
      continue;
    }
    if (i + 1 >= argc)
      rt::fail({}, "option ", flag, " needs a value (see --help)");
    std::string value = argv[++i];
    auto number = [&] {
      double parsed = 0;
      std::size_t used = 0;
      try {
        parsed = std::stod(value, &used);
      } catch (...) {
      }
      if (used == 0 || used != value.size() || !std::isfinite(parsed))
        rt::fail({}, "option ", flag, " expects a finite number, got '", value,
                 "'");
      return parsed;
    };
    // Whole numbers in [lo, hi]: sizes and counts the simulation loops
    // over.
    auto whole = [&](double lo, double hi) {
      double parsed = number();
      if (parsed != std::floor(parsed) || parsed < lo || parsed > hi)
        rt::fail({}, "option ", flag, " expects a whole number in [", lo, ", ",
                 hi, "], got '", value, "'");
      return static_cast<long long>(parsed);
    };
    auto positive = [&] {
      double parsed = number();
      if (parsed <= 0)
        rt::fail({}, "option ", flag, " must be > 0, got '", value, "'");
      return parsed;
    };
    planner::ClusterSpec &cluster = args.options.cluster;
    if (flag == "--data-dir")
      args.dataDir = value;
    else if (flag == "--models")
      args.models = split(value);
    else if (flag == "--methods")
      args.methods = split(value);
    else if (flag == "--nodes")
      args.nodes = static_cast<int>(whole(1, 4096));
    else if (flag == "--gpus-per-node")
      cluster.gpusPerNode = static_cast<int>(whole(1, 1024));
    else if (flag == "--nvlink-gbps")
      cluster.intraNodeBandwidth = positive() * 1e9;
    else if (flag == "--network-gbps")
      cluster.interNodeBandwidth = positive() * 1e9;
    else if (flag == "--network-config") {
      std::ifstream in(value);
      if (!in)
        rt::fail({}, "cannot open network config '", value, "'");
      nlohmann::json config = nlohmann::json::parse(in);
      cluster.intraNodeBandwidth = config.at("intra_node").get<double>() * 1e9;
      cluster.interNodeBandwidth = config.at("inter_node").get<double>() * 1e9;
    } else if (flag == "--tflops")
      cluster.flopsPerSecond = positive() * 1e12;
    else if (flag == "--efficiency")
      cluster.computeEfficiency = positive();
    else if (flag == "--layers")
      args.options.layers = static_cast<int>(whole(1, 10000));
    else if (flag == "--iterations")
      args.options.iterations = static_cast<int>(whole(1, 100000));
    else if (flag == "--warmup")
      args.options.warmup = static_cast<int>(whole(0, 100000));
    else if (flag == "--skew")
      args.options.trace.skew = number();
    else if (flag == "--drift")
      args.options.trace.drift = number();
    else if (flag == "--topk-correlation")
      args.options.trace.topKCorrelation = number();
    else if (flag == "--rank-jitter")
      args.options.trace.rankJitter = number();
    else if (flag == "--static-imbalance")
      args.staticImbalance = positive();
    else if (flag == "--node-network-gbps")
      args.nodeNetworkGbps = positive();
    else if (flag == "--history")
      args.options.history = static_cast<int>(whole(0, 1000));
    else if (flag == "--workload")
      args.options.workload = planner::parseWorkload(value);
    else if (flag == "--dominant-share")
      args.options.trace.dominantShare = number();
    else if (flag == "--period")
      args.options.trace.period = static_cast<int>(whole(1, 1e6));
    else if (flag == "--shift-step")
      args.options.trace.shiftStep = static_cast<int>(whole(0, 1e9));
    else if (flag == "--burst-length")
      args.options.trace.burstLength = static_cast<int>(whole(1, 1e6));
    else if (flag == "--burst-factor")
      args.options.trace.burstFactor = number();
    else if (flag == "--seed")
      args.options.trace.seed =
          static_cast<std::uint64_t>(whole(0, 9007199254740992.0));
    else if (flag == "--counts-csv")
      args.countsCsv = value;
    else if (flag == "--published")
      args.published = value;
    else if (flag == "--dataset")
      args.dataset = value;
    else
      rt::fail({}, "unknown option ", flag, " (see --help)");
  }
  if (args.dataDir.empty())
    rt::fail({}, "--data-dir is required (see --help)");
  if (args.options.cluster.computeEfficiency > 1)
    rt::fail({}, "--efficiency is a fraction of peak in (0, 1], got ",
             args.options.cluster.computeEfficiency);
  for (const std::string &method : args.methods)
    if (std::ranges::find(sim::methodNames(), method) ==
        sim::methodNames().end())
      rt::fail({}, "unknown method '", method, "' in --methods (see --help)");
  if (static_cast<long long>(args.nodes) * args.options.cluster.gpusPerNode >
      65536)
    rt::fail({}, "--nodes x --gpus-per-node = ",
             static_cast<long long>(args.nodes) *
                 args.options.cluster.gpusPerNode,
             " ranks; at most 65536");
  args.options.cluster.numRanks = args.nodes * args.options.cluster.gpusPerNode;
  if (args.nodeNetworkGbps > 0)
    args.options.cluster.interNodeBandwidth =
        args.nodeNetworkGbps * 1e9 / args.options.cluster.gpusPerNode;
  planner::checkWorkloadOptions(args.options.workload, args.options.trace);
  if (args.models.empty()) {
    for (const auto &entry :
         std::filesystem::directory_iterator(args.dataDir)) {
      std::string name = entry.path().stem().string();
      if (entry.path().extension() == ".json" &&
          (name.ends_with("-e8k2") || name.ends_with("-e16k4")))
        args.models.push_back(name);
    }
    std::sort(args.models.begin(), args.models.end());
  }
  if (args.published.empty() &&
      std::filesystem::exists(args.dataDir + "/e2e_analysis_backup.csv"))
    args.published = args.dataDir + "/e2e_analysis_backup.csv";
  return args;
}

SimOptions optionsFor(const Args &args, const ModelShape &model) {
  SimOptions options = args.options;
  if (options.layers == 0)
    options.layers = paperLayers(model.name);
  return options;
}

int report(const Args &args) {
  std::map<std::string, double> published;
  if (!args.published.empty())
    published = readPublishedTimes(args.published, args.dataset);
  const planner::ClusterSpec &cluster = args.options.cluster;
  std::printf("cluster: %d nodes x %d GPUs, NVLink %.0f GB/s, network %.0f "
              "GB/s, %.0f TFLOP/s x %.2f; trace: Zipf %.2f, drift %.2f, "
              "top-k correlation %.2f, seed %llu\n",
              args.nodes, cluster.gpusPerNode, cluster.intraNodeBandwidth / 1e9,
              cluster.interNodeBandwidth / 1e9, cluster.flopsPerSecond / 1e12,
              cluster.computeEfficiency, args.options.trace.skew,
              args.options.trace.drift, args.options.trace.topKCorrelation,
              static_cast<unsigned long long>(args.options.trace.seed));
  for (const std::string &name : args.models) {
    ModelShape model =
        ModelShape::fromJsonFile(args.dataDir + "/" + name + ".json");
    SimOptions options = optionsFor(args, model);
    std::unique_ptr<planner::CountsTrace> trace;
    if (!args.countsCsv.empty())
      trace =
          std::make_unique<planner::CountsTrace>(planner::CountsTrace::fromCsv(
              args.countsCsv, cluster.numRanks, model.numExperts));
    std::vector<MethodResult> results =
        simulate(model, options, args.methods, trace.get());
    double staticTime = 0, megatronTime = 0;
    for (const MethodResult &r : results) {
      if (r.method == "static")
        staticTime = r.iterationSeconds;
      if (r.method == "megatron")
        megatronTime = r.iterationSeconds;
    }
    double publishedStatic = published.count("static/" + name)
                                 ? published["static/" + name] / 1e3
                                 : 0;
    std::printf("\n%s: %d layers, E = %d, top-%d, H = %lld, F = %lld\n",
                name.c_str(), options.layers, model.numExperts, model.topK,
                static_cast<long long>(model.hidden),
                static_cast<long long>(model.ffn));
    std::printf("  %-9s %9s %8s %8s %8s %9s %10s %10s | %10s %10s\n", "method",
                "iter (s)", "moe (s)", "max/mean", "/bound", "plan (ms)",
                "vs static", "vs megatr.", "paper (s)", "paper vs st");
    for (const MethodResult &r : results) {
      auto paper = published.find(r.method + "/" + name);
      std::printf("  %-9s %9.2f %8.2f %8.2f %8.3f %9.3f %9.2fx %9.2fx |",
                  r.method.c_str(), r.iterationSeconds, r.moeSeconds,
                  r.maxOverMeanTokens, r.rowsOverBound, 1e3 * r.plannerSeconds,
                  staticTime > 0 ? staticTime / r.iterationSeconds : 0.0,
                  megatronTime > 0 ? megatronTime / r.iterationSeconds : 0.0);
      if (paper != published.end())
        std::printf(" %10.2f %9.2fx\n", paper->second / 1e3,
                    publishedStatic > 0 ? publishedStatic * 1e3 / paper->second
                                        : 0.0);
      else
        std::printf(" %10s %10s\n", "-", "-");
    }
  }
  return 0;
}

/// Every workload x method for each model: how far each method's plans
/// are from the bounds and from the oracle, through the runtime's path.
int workloadTable(Args args) {
  const planner::ClusterSpec &cluster = args.options.cluster;
  std::printf("cluster: %d nodes x %d GPUs; history %d, restores %s; "
              "MoE time per iteration; /bound: busiest rank's rows over the "
              "slot-counting bound; path/LB: critical path over its compute "
              "lower bound\n",
              args.nodes, cluster.gpusPerNode, args.options.history,
              args.options.prefetch ? "ahead when the layout is known ahead"
                                    : "after the plan");
  std::vector<std::string> kinds;
  for (const char *kind : planner::workloadNames())
    if (std::string(kind) != "replay" || !args.countsCsv.empty())
      kinds.push_back(kind);
  for (const std::string &name : args.models) {
    ModelShape model =
        ModelShape::fromJsonFile(args.dataDir + "/" + name + ".json");
    std::unique_ptr<planner::CountsTrace> trace;
    if (!args.countsCsv.empty())
      trace =
          std::make_unique<planner::CountsTrace>(planner::CountsTrace::fromCsv(
              args.countsCsv, cluster.numRanks, model.numExperts));
    std::printf("\n%s: E = %d, top-%d\n", name.c_str(), model.numExperts,
                model.topK);
    std::printf("  %-10s %-8s %8s %8s %7s %8s %9s %9s %6s %9s\n", "workload",
                "method", "moe (s)", "max/mean", "/bound", "path/LB",
                "vs static", "vs oracle", "ahead", "plan (ms)");
    for (const std::string &kind : kinds) {
      SimOptions options = optionsFor(args, model);
      options.workload = planner::parseWorkload(kind);
      // A token picks an expert once: no expert takes more than 1/k.
      options.trace.dominantShare =
          std::min(options.trace.dominantShare, 1.0 / model.topK);
      std::vector<std::string> methods = args.methods;
      for (const char *needed : {"static", "oracle"})
        if (std::find(methods.begin(), methods.end(), needed) == methods.end())
          methods.push_back(needed);
      std::erase(methods, "megatron");
      std::vector<MethodResult> results = simulate(
          model, options, methods, kind == "replay" ? trace.get() : nullptr);
      double staticMoe = 0, oracleMoe = 0;
      for (const MethodResult &r : results) {
        if (r.method == "static")
          staticMoe = r.moeSeconds;
        if (r.method == "oracle")
          oracleMoe = r.moeSeconds;
      }
      for (const MethodResult &r : results)
        std::printf("  %-10s %-8s %8.3f %8.3f %7.3f %8.3f %8.2fx %8.3fx "
                    "%5.0f%% %9.3f\n",
                    kind.c_str(), r.method.c_str(), r.moeSeconds,
                    r.maxOverMeanTokens, r.rowsOverBound, r.pathOverBound,
                    staticMoe / r.moeSeconds, r.moeSeconds / oracleMoe,
                    100 * r.layoutsAhead, 1e3 * r.plannerSeconds);
    }
  }
  return 0;
}

/// Per model: the skew at which the static layout's max/mean rank rows
/// is the paper's, and every method's simulated time there against the
/// published one: how much of the paper's speed-ups the cluster model
/// explains once the skew is pinned by the measured imbalance.
int fitStaticImbalance(Args args) {
  std::map<std::string, double> published;
  if (!args.published.empty())
    published = readPublishedTimes(args.published, args.dataset);
  const planner::ClusterSpec &cluster = args.options.cluster;
  std::printf("cluster: %d nodes x %d GPUs, NVLink %.0f GB/s per GPU, "
              "network %.1f GB/s per GPU\n",
              args.nodes, cluster.gpusPerNode, cluster.intraNodeBandwidth / 1e9,
              cluster.interNodeBandwidth / 1e9);
  double sumSquares = 0;
  int terms = 0;
  for (const std::string &name : args.models) {
    ModelShape model =
        ModelShape::fromJsonFile(args.dataDir + "/" + name + ".json");
    double target = args.staticImbalance > 0 ? args.staticImbalance
                    : model.numExperts >= 16 ? 1.73
                                             : 1.66;
    SimOptions options = optionsFor(args, model);
    double best = fitSkewToStaticImbalance(model, options, target);
    options.trace.skew = best;
    std::vector<MethodResult> results = simulate(model, options, args.methods);
    double staticTime = 0;
    for (const MethodResult &r : results)
      if (r.method == "static")
        staticTime = r.iterationSeconds;
    std::printf("\n%s: skew %.2f gives static max/mean %.3f (target %.2f)\n",
                name.c_str(), best, results[0].maxOverMeanTokens, target);
    std::printf("  %-9s %9s %10s %11s %11s %9s\n", "method", "iter (s)",
                "paper (s)", "vs static", "paper vs st", "log err");
    auto paperStatic = published.find("static/" + name);
    for (const MethodResult &r : results) {
      auto paper = published.find(r.method + "/" + name);
      double speedup = staticTime / r.iterationSeconds;
      std::printf("  %-9s %9.2f", r.method.c_str(), r.iterationSeconds);
      if (paper == published.end() || paperStatic == published.end()) {
        std::printf(" %10s %10.2fx %11s %9s\n", "-", speedup, "-", "-");
        continue;
      }
      double paperSpeedup = paperStatic->second / paper->second;
      double error = std::log(speedup / paperSpeedup);
      if (r.method != "static") {
        sumSquares += error * error;
        ++terms;
      }
      std::printf(" %10.2f %10.2fx %10.2fx %+9.3f\n", paper->second / 1e3,
                  speedup, paperSpeedup,
                  r.method == "static"
                      ? std::log(r.iterationSeconds * 1e3 / paper->second)
                      : error);
    }
  }
  if (terms > 0)
    std::printf("\nrms log-error of the speed-ups: %.3f (within about %.0f%% "
                "of the paper's); static rows: log error of the time\n",
                std::sqrt(sumSquares / terms),
                100 * (std::exp(std::sqrt(sumSquares / terms)) - 1));
  return 0;
}

/// Sweeps the Zipf exponent and reports how well the simulated speed-ups
/// of laer and flexmoe over static match the published ones.
int calibrate(Args args) {
  std::map<std::string, double> published =
      readPublishedTimes(args.published, args.dataset);
  std::printf("skew  rms log-error of (static / method) vs paper, methods "
              "laer and flexmoe, %zu models\n",
              args.models.size());
  double bestSkew = 0, bestError = INFINITY;
  for (double skew = 0.2; skew <= 2.01; skew += 0.2) {
    args.options.trace.skew = skew;
    double sum = 0;
    int terms = 0;
    for (const std::string &name : args.models) {
      ModelShape model =
          ModelShape::fromJsonFile(args.dataDir + "/" + name + ".json");
      auto results = simulate(model, optionsFor(args, model),
                              {"static", "flexmoe", "laer"});
      for (std::size_t m = 1; m < results.size(); ++m) {
        std::string key = results[m].method + "/" + name;
        if (!published.count(key) || !published.count("static/" + name))
          continue;
        double simulated =
            results[0].iterationSeconds / results[m].iterationSeconds;
        double paper = published["static/" + name] / published[key];
        sum += std::pow(std::log(simulated / paper), 2);
        ++terms;
      }
    }
    double error = terms ? std::sqrt(sum / terms) : INFINITY;
    std::printf("%4.1f  %.3f\n", skew, error);
    if (error < bestError) {
      bestError = error;
      bestSkew = skew;
    }
  }
  std::printf("best skew %.1f (rms log-error %.3f, i.e. speed-ups within "
              "about %.0f%% of the paper's)\n",
              bestSkew, bestError, 100 * (std::exp(bestError) - 1));
  return 0;
}

} // namespace

int main(int argc, char **argv) {
  try {
    Args args = parse(argc, argv);
    if (args.workloadTable)
      return workloadTable(args);
    if (args.fitImbalance)
      return fitStaticImbalance(args);
    return args.calibrate ? calibrate(args) : report(args);
  } catch (const std::exception &error) {
    std::fprintf(stderr, "laer-sim: %s\n", error.what());
    return 1;
  }
}
