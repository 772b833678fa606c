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
  --methods m,...           megatron,static,flexmoe,laer,laer+ (default all)
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
  --skew Z                  Zipf exponent of expert popularity (default 1.6)
  --drift D                 per-step drift of log-popularity (default 0.05)
  --topk-correlation R      correlation of a token's choices (default 0.3)
  --rank-jitter J           spread of the ranks' popularity (default 0.2)
  --seed S                  trace seed (default 1)
  --counts-csv FILE         replay counts (rows step,layer,rank,<E counts>)
  --published FILE          e2e_analysis_backup.csv (default DIR/...)
  --dataset NAME            dataset of the published figures (wikitext)
  --calibrate               sweep --skew and report the fit to the paper
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
                                      "laer", "laer+"};
  SimOptions options;
  int nodes = 4;
  bool calibrate = false;
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
    if (i + 1 >= argc)
      rt::fail({}, "option ", flag, " needs a value (see --help)");
    std::string value = argv[++i];
    auto number = [&] {
      try {
        return std::stod(value);
      } catch (...) {
        rt::fail({}, "option ", flag, " expects a number, got '", value,
                 "'");
      }
    };
    planner::ClusterSpec &cluster = args.options.cluster;
    if (flag == "--data-dir")
      args.dataDir = value;
    else if (flag == "--models")
      args.models = split(value);
    else if (flag == "--methods")
      args.methods = split(value);
    else if (flag == "--nodes")
      args.nodes = static_cast<int>(number());
    else if (flag == "--gpus-per-node")
      cluster.gpusPerNode = static_cast<int>(number());
    else if (flag == "--nvlink-gbps")
      cluster.intraNodeBandwidth = number() * 1e9;
    else if (flag == "--network-gbps")
      cluster.interNodeBandwidth = number() * 1e9;
    else if (flag == "--network-config") {
      std::ifstream in(value);
      if (!in)
        rt::fail({}, "cannot open network config '", value, "'");
      nlohmann::json config = nlohmann::json::parse(in);
      cluster.intraNodeBandwidth = config.at("intra_node").get<double>() * 1e9;
      cluster.interNodeBandwidth = config.at("inter_node").get<double>() * 1e9;
    } else if (flag == "--tflops")
      cluster.flopsPerSecond = number() * 1e12;
    else if (flag == "--efficiency")
      cluster.computeEfficiency = number();
    else if (flag == "--layers")
      args.options.layers = static_cast<int>(number());
    else if (flag == "--iterations")
      args.options.iterations = static_cast<int>(number());
    else if (flag == "--warmup")
      args.options.warmup = static_cast<int>(number());
    else if (flag == "--skew")
      args.options.trace.skew = number();
    else if (flag == "--drift")
      args.options.trace.drift = number();
    else if (flag == "--topk-correlation")
      args.options.trace.topKCorrelation = number();
    else if (flag == "--rank-jitter")
      args.options.trace.rankJitter = number();
    else if (flag == "--seed")
      args.options.trace.seed = static_cast<std::uint64_t>(number());
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
  args.options.cluster.numRanks = args.nodes * args.options.cluster.gpusPerNode;
  if (args.models.empty()) {
    for (const auto &entry : std::filesystem::directory_iterator(args.dataDir)) {
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
    std::unique_ptr<CountsTrace> trace;
    if (!args.countsCsv.empty())
      trace = std::make_unique<CountsTrace>(CountsTrace::fromCsv(
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
    std::printf("  %-9s %9s %8s %8s %9s %10s %10s | %10s %10s\n", "method",
                "iter (s)", "moe (s)", "max/mean", "plan (ms)", "vs static",
                "vs megatr.", "paper (s)", "paper vs st");
    for (const MethodResult &r : results) {
      auto paper = published.find(r.method + "/" + name);
      std::printf("  %-9s %9.2f %8.2f %8.2f %9.3f %9.2fx %9.2fx |", r.method.c_str(),
                  r.iterationSeconds, r.moeSeconds, r.maxOverMeanTokens,
                  1e3 * r.plannerSeconds,
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
    return args.calibrate ? calibrate(args) : report(args);
  } catch (const std::exception &error) {
    std::fprintf(stderr, "laer-sim: %s\n", error.what());
    return 1;
  }
}
