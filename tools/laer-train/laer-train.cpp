//===- laer-train.cpp - train the MoE LM on CPU ranks ---------------------===//
//
//   mpirun -np N laer-train --data DIR_OR_FILE [options]
//
// Trains the runtime's MoE transformer LM (the model of
// examples/make_model_ir.py tiny) on byte-level text with FSEP experts and
// a planner re-laying experts every step; prints the loss, tokens/s and the
// per-layer max/mean expert load. A thin driver over laer::rt.
//
//===----------------------------------------------------------------------===//

#include "laer/planner/Planner.h"
#include "laer/runtime/MpiCommunicator.h"
#include "laer/runtime/Trace.h"
#include "laer/runtime/model/MoELanguageModel.h"
#include "laer/runtime/model/TextData.h"

#include <chrono>
#include <filesystem>
#include <fstream>
#include <cstdio>
#include <cstdlib>
#include <string>

using namespace laer;
using namespace laer::rt;

namespace {

const char *kUsage = R"(usage: mpirun -np N laer-train --data PATH [options]

  --data PATH        text file or directory (repeatable), byte-level
  --tokens FILE      pre-tokenized ids instead: little-endian uint16
                     (FILE ending in .u16) or uint32 (.u32)
  --vocab V          vocabulary of --tokens (default 256)
  --suffix S         file suffix to read in directories (default .py)
  --max-bytes B      corpus size cap (default 4000000)
  --steps S          training steps (default 200)
  --batch B          sequences per global batch (default 16)
  --sequence L       tokens per sequence (default 64)
  --lr X             AdamW learning rate (default 0.003)
  --planner P        static | flexmoe | laer | laer+ (default laer+)
  --history W        steps of load history for the layout (default 2)
  --slots C          experts each rank computes (default ceil(E/N) + 1,
                     so hot experts can have replicas)
  --seed S           initialisation and data seed (default 1)
  --checkpoint-dir D write sharded checkpoints (safetensors + index) to
                     D/step-<n>, and D/latest naming the newest
  --checkpoint-every K  steps between checkpoints (default 50)
  --resume           continue from D/latest
  --crash-at-step S  end every rank abruptly after step S (for tests)
  --trace FILE       write every rank's phases as Chrome trace / Perfetto
                     JSON (open in ui.perfetto.dev or chrome://tracing)
  --log-every K      print every K steps (default 10)
)";

struct Options {
  std::vector<std::string> data;
  std::string suffix = ".py", planner = "laer+";
  long maxBytes = 4000000, steps = 200, logEvery = 10;
  std::string checkpointDir, trace, tokens;
  long vocab = 256;
  long checkpointEvery = 50, crashAtStep = -1;
  bool resume = false;
  int batch = 16, sequence = 64, history = 2, slots = 0;
  float lr = 3e-3f;
  std::uint64_t seed = 1;
};

Options parse(int argc, char **argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i];
    if (flag == "--help" || flag == "-h") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    }
    if (flag == "--resume") {
      o.resume = true;
      continue;
    }
    if (i + 1 >= argc)
      fail({}, "option ", flag, " needs a value (see --help)");
    std::string value = argv[++i];
    if (flag == "--data")
      o.data.push_back(value);
    else if (flag == "--suffix")
      o.suffix = value;
    else if (flag == "--max-bytes")
      o.maxBytes = std::stol(value);
    else if (flag == "--steps")
      o.steps = std::stol(value);
    else if (flag == "--batch")
      o.batch = std::stoi(value);
    else if (flag == "--sequence")
      o.sequence = std::stoi(value);
    else if (flag == "--lr")
      o.lr = std::stof(value);
    else if (flag == "--planner")
      o.planner = value;
    else if (flag == "--history")
      o.history = std::stoi(value);
    else if (flag == "--slots")
      o.slots = std::stoi(value);
    else if (flag == "--seed")
      o.seed = std::stoull(value);
    else if (flag == "--checkpoint-dir")
      o.checkpointDir = value;
    else if (flag == "--checkpoint-every")
      o.checkpointEvery = std::stol(value);
    else if (flag == "--tokens")
      o.tokens = value;
    else if (flag == "--vocab")
      o.vocab = std::stol(value);
    else if (flag == "--trace")
      o.trace = value;
    else if (flag == "--crash-at-step")
      o.crashAtStep = std::stol(value);
    else if (flag == "--log-every")
      o.logEvery = std::stol(value);
    else
      fail({}, "unknown option ", flag, " (see --help)");
  }
  if (o.data.empty() == o.tokens.empty())
    fail({}, "give either --data or --tokens (see --help)");
  if (o.resume && o.checkpointDir.empty())
    fail({}, "--resume needs --checkpoint-dir");
  return o;
}

} // namespace

int main(int argc, char **argv) {
  MpiRuntime mpi(&argc, &argv);
  try {
    Options options = parse(argc, argv);
    MpiCommunicator comm;
    int bits = options.tokens.ends_with(".u16")   ? 16
               : options.tokens.ends_with(".u32") ? 32
                                                  : 0;
    if (!options.tokens.empty() && bits == 0)
      fail({}, "--tokens file must end in .u16 or .u32: '", options.tokens,
           "'");
    TextData data =
        options.tokens.empty()
            ? TextData::fromPaths(options.data, options.suffix,
                                  options.maxBytes)
            : TextData::fromTokenFile(options.tokens, bits, options.vocab,
                                      options.maxBytes);
    LanguageModelConfig config;
    config.vocab = data.vocab();
    config.sequence = options.sequence;
    config.historyWindow = options.history;
    config.slotsPerRank =
        options.slots > 0
            ? options.slots
            : (config.experts + comm.size() - 1) / comm.size() + 1;
    MoELanguageModel model(comm, config, options.seed);
    auto cluster = planner::ClusterSpec::cpuNode(comm.size());
    planner::LayerSpec layer;
    layer.hidden = config.hidden;
    layer.ffn = config.ffn;
    layer.bytesPerElement = 4;
    layer.recompute = false;
    planner::PlannerHook hook(planner::makePlanner(options.planner), cluster,
                              layer);
    AdamWConfig adamw;
    adamw.learningRate = options.lr;
    adamw.weightDecay = 0.01f;
    if (comm.rank() == 0)
      std::printf("laer-train: %d ranks, %lld tokens, planner %s, "
                  "%d layers x %d experts (top-%d), %d slots per rank, "
                  "batch %d x %d tokens\n",
                  comm.size(), static_cast<long long>(data.size()),
                  options.planner.c_str(), config.layers, config.experts,
                  config.topK, config.slotsPerRank, options.batch,
                  options.sequence);
    Tracer tracer(comm.rank());
    if (!options.trace.empty())
      for (std::size_t layer = 0; layer < model.moeLayers().size(); ++layer)
        model.moeLayers()[layer]->times().attach(&tracer,
                                                 static_cast<int>(layer));
    long first = 0;
    if (options.resume) {
      std::ifstream latest(options.checkpointDir + "/latest");
      std::string name;
      if (!(latest >> name))
        fail({comm.rank(), -1, -1}, "--resume: no checkpoint recorded in '",
             options.checkpointDir, "/latest'");
      first = model.loadCheckpoint(options.checkpointDir + "/" + name) + 1;
      if (comm.rank() == 0)
        std::printf("resumed from %s/%s at step %ld\n",
                    options.checkpointDir.c_str(), name.c_str(), first);
    }
    std::vector<std::int32_t> ids, targets;
    auto start = std::chrono::steady_clock::now();
    long tokens = 0;
    for (long step = first; step < options.steps; ++step) {
      data.batch(step, options.seed, options.batch, options.sequence,
                 comm.rank(), comm.size(), ids, targets);
      auto stepStart = std::chrono::steady_clock::now();
      StepResult result = model.trainStep(ids, targets, step, hook, adamw);
      if (!options.trace.empty())
        tracer.record("step " + std::to_string(step), "train", stepStart,
                      step);
      tokens += static_cast<long>(options.batch) * options.sequence;
      if (comm.rank() == 0 &&
          (step % options.logEvery == 0 || step + 1 == options.steps)) {
        double seconds = std::chrono::duration<double>(
                             std::chrono::steady_clock::now() - start)
                             .count();
        std::printf("step %4ld  loss %.4f  %7.0f tokens/s  max/mean load",
                    step, result.loss, tokens / seconds);
        for (double balance : result.maxOverMean)
          std::printf(" %.2f", balance);
        std::printf("\n");
        std::fflush(stdout);
      }
      if (!options.checkpointDir.empty() &&
          ((step + 1) % options.checkpointEvery == 0 ||
           step + 1 == options.steps)) {
        std::string name = "step-" + std::to_string(step);
        model.saveCheckpoint(options.checkpointDir + "/" + name, step);
        if (comm.rank() == 0) {
          // Point `latest` at it atomically.
          std::string staging = options.checkpointDir + "/latest.tmp";
          std::ofstream(staging) << name << "\n";
          std::filesystem::rename(staging, options.checkpointDir + "/latest");
        }
        comm.barrier();
      }
      if (step == options.crashAtStep) {
        std::fprintf(stderr, "rank %d: crashing after step %ld as asked\n",
                     comm.rank(), step);
        std::fflush(nullptr);
        std::_Exit(9);
      }
    }
    if (!options.trace.empty()) {
      tracer.write(options.trace, comm);
      if (comm.rank() == 0)
        std::printf("trace written to %s\n", options.trace.c_str());
    }
  } catch (const std::exception &error) {
    MpiRuntime::abortJob(error.what());
  }
  return 0;
}
