//===- TrainingLoop.cpp - the loop every training binary runs -------------===//

#include "laer/runtime/train/TrainingLoop.h"
#include "laer/planner/Planner.h"
#include "laer/runtime/Error.h"
#include "laer/runtime/Limits.h"
#include "laer/runtime/fsep/FsepMoELayer.h"
#include "laer/runtime/fsep/RelayoutHook.h"
#include "laer/runtime/io/Trace.h"
#include "laer/runtime/model/NamedWeights.h"

#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <optional>

using namespace laer;
using namespace laer::rt;

namespace {

using Clock = std::chrono::steady_clock;

long number(const std::string &flag, const std::string &value) {
  try {
    std::size_t used = 0;
    long result = std::stol(value, &used);
    if (used == value.size())
      return result;
  } catch (const std::exception &) {
  }
  fail({}, "option ", flag, " needs a whole number, got '", value, "'");
}

/// A whole number in [lo, hi] that an int holds: checked before the
/// narrowing, so 4294967298 is refused rather than read as 2.
int count(const std::string &flag, const std::string &value, long lo, long hi) {
  long result = number(flag, value);
  if (result < lo || result > hi)
    fail({}, "option ", flag, " must be in [", lo, ", ", hi, "], got ", result);
  return static_cast<int>(result);
}

/// A real number; `laer: stof` is no message (issue 18).
double realNumber(const std::string &flag, const std::string &value) {
  try {
    std::size_t used = 0;
    double result = std::stod(value, &used);
    if (used == value.size())
      return result;
  } catch (const std::exception &) {
  }
  fail({}, "option ", flag, " needs a number, got '", value, "'");
}

/// The first parameter of this rank that is not finite (its name, and the
/// MoE layer for expert weights), or "".
std::string firstNonFinite(TrainingState &state) {
  for (const DenseTensor &tensor : state.denseTensors)
    for (std::size_t i = 0; i < tensor.size; ++i)
      if (!std::isfinite(state.dense[tensor.offset + i]))
        return "dense parameter '" +
               (tensor.name.name.empty() ? std::to_string(tensor.offset)
                                         : tensor.name.name) +
               "'";
  state.moeBackend().storeState();
  for (std::size_t l = 0; l < state.moe.size(); ++l) {
    FsepMoELayer &layer = *state.moe[l];
    auto finite = [](std::span<const float> values) {
      return std::all_of(values.begin(), values.end(),
                         [](float v) { return std::isfinite(v); });
    };
    if (!finite(layer.gate()))
      return "the gate of MoE layer " + std::to_string(l);
    if (!finite(layer.experts().allParams()))
      return "this rank's expert shards of MoE layer " + std::to_string(l);
  }
  return "";
}

/// Stops the run on every rank (a collective: every rank calls it) when
/// any rank has a `problem`, naming the step, the first such rank and its
/// problem where it is this rank; `latest` is left as it is.
void stopIfDiverged(Communicator &comm, const std::string &problem, long step,
                    const TrainOptions &options) {
  std::int64_t mine = problem.empty() ? 0 : 1;
  std::vector<std::int64_t> all =
      comm.allGather(std::span<const std::int64_t>(&mine, 1));
  auto first = std::find(all.begin(), all.end(), 1);
  if (first == all.end())
    return;
  int rank = static_cast<int>(first - all.begin());
  std::string where =
      options.checkpointDir.empty()
          ? std::string(" (no --checkpoint-dir)")
          : "; " + options.checkpointDir +
                "/latest still names the last checkpoint with finite "
                "weights, if any";
  fail({comm.rank(), -1, step}, "training diverged: ",
       rank == comm.rank() ? problem
                           : "rank " + std::to_string(rank) + " reports " +
                                 "a non-finite loss or parameter",
       "; stopped before writing anything", where);
}

/// The step of a checkpoint folder name `step-<n>` (with `suffix`), or -1.
long checkpointStep(const std::string &name, const std::string &suffix) {
  if (!name.starts_with("step-") || !name.ends_with(suffix))
    return -1;
  std::string digits = name.substr(5, name.size() - 5 - suffix.size());
  long step = -1;
  // A name of digits past a long is no checkpoint of ours either.
  auto [end, error] =
      std::from_chars(digits.data(), digits.data() + digits.size(), step);
  if (digits.empty() || error != std::errc() ||
      end != digits.data() + digits.size() || step < 0)
    return -1;
  return step;
}

/// Removes `step-<n>.tmp` folders a killed run left in `directory`.
void removeUnfinishedCheckpoints(const std::string &directory) {
  namespace fs = std::filesystem;
  std::error_code error;
  if (!fs::is_directory(directory, error))
    return;
  for (const fs::directory_entry &entry :
       fs::directory_iterator(directory, error))
    if (entry.is_directory() &&
        checkpointStep(entry.path().filename().string(), ".tmp") >= 0)
      fs::remove_all(entry.path(), error);
}

/// Keeps the `keep` newest `step-<n>` checkpoints of `directory` (never the
/// one `latest` names).
void pruneCheckpoints(const std::string &directory, long keep,
                      const std::string &latest) {
  namespace fs = std::filesystem;
  std::error_code error;
  std::vector<std::pair<long, fs::path>> found;
  for (const fs::directory_entry &entry :
       fs::directory_iterator(directory, error))
    if (long step = checkpointStep(entry.path().filename().string(), "");
        step >= 0 && entry.is_directory())
      found.push_back({step, entry.path()});
  std::sort(found.begin(), found.end(),
            [](const auto &a, const auto &b) { return a.first > b.first; });
  for (std::size_t i = static_cast<std::size_t>(keep); i < found.size(); ++i)
    if (found[i].second.filename() != latest)
      fs::remove_all(found[i].second, error);
}

/// Fails at start, not after the run, when `path` (a file to write, or with
/// `folder` a folder to fill) cannot be written.
void requireWritable(const std::string &path, bool folder, const char *option) {
  namespace fs = std::filesystem;
  std::error_code error;
  fs::path target(path);
  if (folder) {
    fs::create_directories(target, error);
    if (!fs::is_directory(target, error) || ::access(target.c_str(), W_OK) != 0)
      fail({}, option, " '", path, "': cannot create or write the folder");
    return;
  }
  fs::path parent = target.has_parent_path() ? target.parent_path() : ".";
  if (!fs::is_directory(parent, error) || ::access(parent.c_str(), W_OK) != 0)
    fail({}, option, " '", path, "': its folder '", parent.string(),
         "' is missing or not writable");
}

/// Clears the progress bar's line (when it is drawn) so that a log line
/// printed next starts at the margin.
void clearProgress(bool progress) {
  if (progress)
    std::fputs("\r\033[K", stderr);
}

/// A one-line progress bar, redrawn in place (only on a terminal).
void drawProgress(long step, long steps, double loss, double tokensPerSecond) {
  constexpr int kWidth = 30;
  int filled = static_cast<int>(kWidth * (step + 1) / steps);
  std::fprintf(stderr, "\r[%.*s%*s] %ld/%ld loss %.4f %.0f tok/s", filled,
               "##############################", kWidth - filled, "", step + 1,
               steps, loss, tokensPerSecond);
  std::fflush(stderr);
}

} // namespace

std::chrono::milliseconds
laer::rt::collectiveTimeout(const TrainOptions &options) {
  return std::chrono::milliseconds(
      static_cast<long long>(options.collectiveTimeout * 1000));
}

bool laer::rt::stderrReachesTerminal() {
  if (isatty(2))
    return true;
  // Under mpirun stderr is a pipe to mpirun, which writes what it reads
  // to its own stderr: a terminal there shows the bar too. (Linux: the
  // parent's descriptor 2 through /proc.)
  std::error_code error;
  std::filesystem::path parent = std::filesystem::read_symlink(
      "/proc/" + std::to_string(getppid()) + "/fd/2", error);
  if (error)
    return false;
  std::string target = parent.string();
  return target.starts_with("/dev/pts/") || target.starts_with("/dev/tty");
}

double laer::rt::scheduledLearningRate(const TrainOptions &options, long step) {
  const double lr = options.lr, minLr = options.minLr;
  const long warmup = options.warmupSteps;
  if (step < warmup)
    return lr * static_cast<double>(step + 1) / static_cast<double>(warmup);
  long span = options.steps - warmup;
  if (options.lrDecay == "constant" || span <= 0)
    return lr;
  double progress = std::min(1.0, static_cast<double>(step - warmup) /
                                      static_cast<double>(span));
  if (options.lrDecay == "linear")
    return lr + (minLr - lr) * progress;
  return minLr + (lr - minLr) * 0.5 * (1.0 + std::cos(M_PI * progress));
}

std::string laer::rt::trainUsage(const std::string &program) {
  return "usage: mpirun -np N " + program + R"( --data PATH [options]

  --data PATH        text file or directory (repeatable), byte-level
  --tokens FILE      pre-tokenized ids instead: little-endian uint16
                     (FILE ending in .u16) or uint32 (.u32)
  --vocab V          vocabulary of --tokens (default 256)
  --suffix S         file suffix to read in directories (default .py)
  --max-bytes B      corpus size cap (default 4000000)
  --steps S          training steps (default 200)
  --batch B          sequences per global batch (default 16)
  --sequence L       tokens per sequence (default: the model's; 64 for
                     laer-train, the IR's sequence_length when compiled)
  --lr X             AdamW learning rate (default 0.003)
  --warmup W         linear warm-up over the first W steps (default 0)
  --lr-decay D       constant | linear | cosine after the warm-up, to
                     --min-lr at the last step (default constant)
  --min-lr X         the decay's end (default 0)
  --clip-grad-norm X clip the gradients' global L2 norm (every rank's
                     expert shards and the dense parameters) to X, as
                     torch.nn.utils.clip_grad_norm_ (default 0: off)
  --grad-accumulation K  cut each batch into K micro-batches and update
                     once with their mean gradient (default 1)
  --skip-nonfinite   skip a step whose loss or gradient norm is not
                     finite (no update) instead of stopping the run
  --collective-timeout S  seconds a collective waits for a peer before
                     every live rank stops, naming the silent one
                     (default 300)
  --eval-every K     hold out the corpus' last --eval-fraction (default
                     0.05) and report its loss before every K-th step and
                     after the last (default 0: off)
  --eval-batches B   held-out batches per evaluation, in order (default 4)
  --planner P        static | greedy | flexmoe | laer | laer+ (default
                     laer+)
  --replan-every K   re-plan the expert layout every K steps (default 1)
  --history W        steps of load history for the layout (default 2)
  --slots C          experts each rank computes (default ceil(E/N) + 1,
                     so hot experts can have replicas)
  --seed S           initialisation and data seed (default 1)
  --shared-ffn S     laer-train only: a shared expert of width S in every
                     layer (default 0: none; compiled models take theirs
                     from the IR)
  --token-chunks K   laer-train only: split each MoE layer's token
                     exchange into K chunks pipelined with the experts
                     (default 1; compiled models take theirs from the
                     pipeline)
  --device D         laer-train only: where the MoE layers compute, cpu
                     (default) or cuda (one GPU per rank: NCCL all-to-alls,
                     cuBLASLt expert GEMMs; the dense part stays on the
                     host)
  --precision P      the MoE layers' precision on cuda: bf16 (default) or
                     fp32 (fp32 master weights and moments either way)
  --checkpoint-dir D write sharded checkpoints (safetensors + index) to
                     D/step-<n>, and D/latest naming the newest
  --checkpoint-every K  steps between checkpoints (default 50)
  --allow-changed-run  resume although --batch, --sequence, --data-order or
                     --seed differ from the checkpoint's run (refused
                     otherwise)
  --keep N           keep only the N newest checkpoints (default: all);
                     unfinished step-*.tmp folders of a killed run are
                     removed at start
  --resume           continue from D/latest
  --crash-at-step S  end every rank abruptly after step S (for tests)
  --trace FILE       write every rank's phases as Chrome trace / Perfetto
                     JSON (open in ui.perfetto.dev or chrome://tracing)
  --data-order O     random (default) or sequential: the batches' windows
                     one after the other, every run of L + 1 tokens once
                     per epoch
  --load-weights P   start from the weights of the model's own checkpoint
                     (HF safetensors: a .safetensors file, or a folder
                     with model.safetensors or model.safetensors.index.json;
                     tensors by the names the model IR gives them); each
                     rank reads only its shards of the experts
  --export-weights D after the last step, write the weights in that layout
                     to D (model.safetensors, or shards and an index over
                     5 GB; each rank writes its own expert shards); with
                     --steps 0, convert --load-weights or --resume's
                     checkpoint without training (--steps 0 with only
                     --load-weights: load, report and stop)
  --export-gradients D  the last step's gradients, likewise (to compare
                     with another implementation)
  --export-dtype T   F32 (default), BF16 or F16
  --export-shard-size B  bytes per exported file at most (default 5e9, as
                     HF's max_shard_size; a tensor is never split)
  --metrics FILE     one JSON line per step: loss (full precision), lr,
                     tokens/s, step and plan ms, per-layer max/mean load,
                     and every K steps each layer's tokens per expert
                     (laer-plot draws them)
  --metrics-loads-every K  tokens per expert every K steps (default 10;
                     0: never)
  --counts-csv FILE  every step's tokens per (layer, source rank, expert),
                     rows step,layer,rank,<E counts>: a recorded workload
                     laer-sim --counts-csv replays
  --log-every K      print every K steps (default 10)
  --progress P       auto | always | never: the progress bar on rank 0
                     (auto: when rank 0's stderr or mpirun's is a
                     terminal); --no-progress is --progress never
)";
}

TrainOptions laer::rt::parseTrainOptions(int argc, char **argv,
                                         const std::string &program) {
  TrainOptions o;
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i];
    // --flag=value is --flag value.
    std::optional<std::string> attached;
    if (std::size_t equals = flag.find('=');
        flag.starts_with("--") && equals != std::string::npos) {
      attached = flag.substr(equals + 1);
      flag.resize(equals);
    }
    bool isSwitch = flag == "--help" || flag == "-h" || flag == "--resume" ||
                    flag == "--no-progress" || flag == "--allow-changed-run" ||
                    flag == "--skip-nonfinite";
    if (isSwitch && attached)
      fail({}, "option ", flag, " takes no value, got '", *attached, "'");
    if (flag == "--help" || flag == "-h") {
      std::fputs(trainUsage(program).c_str(), stdout);
      std::exit(0);
    }
    if (flag == "--resume") {
      o.resume = true;
      continue;
    }
    if (flag == "--no-progress") {
      o.progress = TrainOptions::Progress::Never;
      continue;
    }
    if (flag == "--allow-changed-run") {
      o.allowChangedRun = true;
      continue;
    }
    if (flag == "--skip-nonfinite") {
      o.skipNonFinite = true;
      continue;
    }
    if (!attached && i + 1 >= argc)
      fail({}, "option ", flag, " needs a value (see --help)");
    std::string value = attached ? *attached : std::string(argv[++i]);
    if (flag == "--data")
      o.data.push_back(value);
    else if (flag == "--suffix")
      o.suffix = value;
    else if (flag == "--max-bytes")
      o.maxBytes = number(flag, value);
    else if (flag == "--steps")
      o.steps = number(flag, value);
    else if (flag == "--batch")
      o.batch = count(flag, value, 1, 1 << 24);
    else if (flag == "--sequence")
      o.sequence = count(flag, value, 0, kMaxSequence);
    else if (flag == "--lr")
      o.lr = static_cast<float>(realNumber(flag, value));
    else if (flag == "--planner")
      o.planner = value;
    else if (flag == "--replan-every")
      o.replanEvery = number(flag, value);
    else if (flag == "--history")
      o.history = count(flag, value, 0, 1000);
    else if (flag == "--slots")
      o.slots = count(flag, value, 0, kMaxSlotsPerRank);
    else if (flag == "--shared-ffn")
      o.sharedFfn = count(flag, value, 0, 1 << 20);
    else if (flag == "--seed")
      o.seed = static_cast<std::uint64_t>(number(flag, value));
    else if (flag == "--token-chunks")
      o.tokenChunks = count(flag, value, 1, kMaxTokenChunks);
    else if (flag == "--device")
      o.device = value;
    else if (flag == "--precision")
      o.precision = value;
    else if (flag == "--checkpoint-dir")
      o.checkpointDir = value;
    else if (flag == "--checkpoint-every")
      o.checkpointEvery = number(flag, value);
    else if (flag == "--warmup")
      o.warmupSteps = number(flag, value);
    else if (flag == "--lr-decay")
      o.lrDecay = value;
    else if (flag == "--min-lr")
      o.minLr = static_cast<float>(realNumber(flag, value));
    else if (flag == "--collective-timeout")
      o.collectiveTimeout = realNumber(flag, value);
    else if (flag == "--eval-every")
      o.evalEvery = number(flag, value);
    else if (flag == "--eval-batches")
      o.evalBatches = number(flag, value);
    else if (flag == "--eval-fraction")
      o.evalFraction = realNumber(flag, value);
    else if (flag == "--clip-grad-norm")
      o.clipGradNorm = realNumber(flag, value);
    else if (flag == "--grad-accumulation") {
      long micro = number(flag, value);
      if (micro < 1 || micro > 65536)
        fail({},
             "--grad-accumulation must be in [1, 65536] micro-batches, "
             "got ",
             micro);
      o.gradAccumulation = static_cast<int>(micro);
    } else if (flag == "--metrics-loads-every")
      o.metricsLoadsEvery = number(flag, value);
    else if (flag == "--keep")
      o.keepCheckpoints = number(flag, value);
    else if (flag == "--tokens")
      o.tokens = value;
    else if (flag == "--vocab")
      o.vocab = number(flag, value);
    else if (flag == "--trace")
      o.trace = value;
    else if (flag == "--crash-at-step")
      o.crashAtStep = number(flag, value);
    else if (flag == "--log-every")
      o.logEvery = number(flag, value);
    else if (flag == "--load-weights")
      o.loadWeights = value;
    else if (flag == "--export-weights")
      o.exportWeights = value;
    else if (flag == "--export-gradients")
      o.exportGradients = value;
    else if (flag == "--export-dtype")
      o.exportDType = parseFileDType(value, "--export-dtype");
    else if (flag == "--export-shard-size")
      o.exportShardBytes = number(flag, value);
    else if (flag == "--metrics")
      o.metrics = value;
    else if (flag == "--counts-csv")
      o.countsCsv = value;
    else if (flag == "--progress") {
      if (value != "auto" && value != "always" && value != "never")
        fail({}, "--progress is auto, always or never, got '", value, "'");
      o.progress = value == "auto"     ? TrainOptions::Progress::Auto
                   : value == "always" ? TrainOptions::Progress::Always
                                       : TrainOptions::Progress::Never;
    } else if (flag == "--data-order") {
      if (value != "random" && value != "sequential")
        fail({}, "--data-order is random or sequential, got '", value, "'");
      o.dataOrder =
          value == "random" ? DataOrder::Random : DataOrder::Sequential;
    } else
      fail({}, "unknown option ", flag, " (see --help)");
  }
  if (o.data.empty() == o.tokens.empty())
    fail({}, "give either --data or --tokens (see --help)");
  if (o.resume && o.checkpointDir.empty())
    fail({}, "--resume needs --checkpoint-dir");
  if (o.resume && !o.loadWeights.empty())
    fail({}, "--load-weights starts a run and --resume continues one; give "
             "one of them");
  if (o.steps < 0 ||
      (o.steps == 0 && o.exportWeights.empty() && o.loadWeights.empty()))
    fail({},
         "--steps must be at least 1 (0 only with --load-weights, to check "
         "that weights load, or --export-weights, to convert them), got ",
         o.steps);
  if (o.warmupSteps < 0)
    fail({}, "--warmup must be >= 0, got ", o.warmupSteps);
  if (o.lrDecay != "constant" && o.lrDecay != "linear" && o.lrDecay != "cosine")
    fail({}, "--lr-decay is constant, linear or cosine, got '", o.lrDecay, "'");
  if (!(o.minLr >= 0) || !std::isfinite(o.minLr) || o.minLr > o.lr)
    fail({}, "--min-lr must be finite, >= 0 and at most --lr ", o.lr, ", got ",
         o.minLr);
  if (!(o.collectiveTimeout >= 1 && o.collectiveTimeout <= 86400))
    fail({}, "--collective-timeout must be in [1, 86400] seconds, got ",
         o.collectiveTimeout);
  if (o.evalEvery < 0 || o.evalBatches < 1 || o.evalBatches > 1000000)
    fail({},
         "--eval-every must be >= 0 (0: no evaluation) and "
         "--eval-batches in [1, 1000000], got ",
         o.evalEvery, " and ", o.evalBatches);
  if (!(o.evalFraction > 0 && o.evalFraction < 1))
    fail({}, "--eval-fraction must be in (0, 1), got ", o.evalFraction);
  if (!(o.clipGradNorm >= 0) || !std::isfinite(o.clipGradNorm))
    fail({}, "--clip-grad-norm must be a finite number >= 0 (0: off), got ",
         o.clipGradNorm);
  if (o.metricsLoadsEvery < 0)
    fail({}, "--metrics-loads-every must be >= 0 (0: never), got ",
         o.metricsLoadsEvery);
  if (o.keepCheckpoints < 0)
    fail({}, "--keep must be >= 0 (0: keep every checkpoint), got ",
         o.keepCheckpoints);
  if (!(o.lr >= 0) || !std::isfinite(o.lr))
    fail({}, "--lr must be a finite number >= 0, got ", o.lr);
  if (o.exportShardBytes < 1)
    fail({}, "--export-shard-size must be at least 1 byte, got ",
         o.exportShardBytes);
  if (o.steps == 0 && !o.exportGradients.empty())
    fail({}, "--export-gradients needs a step (--steps 1 or more)");
  if (o.replanEvery < 1 || o.logEvery < 1 || o.checkpointEvery < 1 ||
      o.batch < 1 || o.tokenChunks < 1 || o.sequence < 0 || o.sharedFfn < 0)
    fail({}, "--replan-every, --log-every, --checkpoint-every, --batch and "
             "--token-chunks must be at least 1, --sequence and --shared-ffn "
             "at least 0");
  return o;
}

TextData laer::rt::loadTrainingData(const TrainOptions &options) {
  if (options.tokens.empty())
    return TextData::fromPaths(options.data, options.suffix, options.maxBytes);
  int bits = options.tokens.ends_with(".u16")   ? 16
             : options.tokens.ends_with(".u32") ? 32
                                                : 0;
  if (bits == 0)
    fail({}, "--tokens file must end in .u16 or .u32: '", options.tokens, "'");
  return TextData::fromTokenFile(options.tokens, bits, options.vocab,
                                 options.maxBytes);
}

int laer::rt::slotsPerRank(const TrainOptions &options, int experts,
                           int ranks) {
  return options.slots > 0 ? options.slots : (experts + ranks - 1) / ranks + 1;
}

MoEBackendOptions laer::rt::moeBackendOptions(const TrainOptions &options,
                                              const MpiCommunicator &comm) {
  MpiCommunicator::MachineRanks machine = comm.machineRanks();
  MoEBackendOptions backend;
  backend.device = options.device;
  backend.precision = options.precision;
  backend.localRank = machine.index;
  backend.localRanks = machine.count;
  return backend;
}

void laer::rt::runTraining(Communicator &comm, const TrainOptions &options,
                           const TextData &corpus, Trainable &model,
                           const std::string &banner) {
  TrainingState &state = model.state();
  if (state.moe.empty())
    fail({comm.rank(), -1, -1}, "the model has no MoE layer to train");
  // With evaluation, the corpus' tail is held out: training never sees it.
  TextData trainPart, heldOut;
  if (options.evalEvery > 0) {
    auto held = static_cast<std::int64_t>(static_cast<double>(corpus.size()) *
                                          options.evalFraction);
    trainPart = corpus.slice(0, corpus.size() - held);
    heldOut = corpus.slice(corpus.size() - held, corpus.size());
    if (heldOut.size() < options.sequence + 1)
      fail({comm.rank(), -1, -1}, "the held-out split (--eval-fraction ",
           options.evalFraction, " of ", corpus.size(), " tokens) has ",
           heldOut.size(), " tokens, fewer than a sequence of ",
           options.sequence, " plus 1");
  }
  const TextData &data = options.evalEvery > 0 ? trainPart : corpus;
  // The planner's defaults; each layer's plan request carries its own
  // expert shape and top-k (PlanRequest), which the cost model uses.
  const MoELayerConfig &moe = state.moe.front()->config();
  planner::LayerSpec layer;
  layer.hidden = moe.shape.hidden;
  layer.ffn = moe.shape.ffn;
  layer.recompute = false;
  // The planner's cost model: CPU ranks, or GPUs (NVLink within a node of
  // up to 8) with the MoE layers' element size.
  planner::ClusterSpec cluster = planner::ClusterSpec::cpuNode(comm.size());
  layer.bytesPerElement = 4;
  if (options.device == "cuda") {
    cluster = planner::ClusterSpec{};
    cluster.numRanks = comm.size();
    cluster.gpusPerNode = std::min(comm.size(), 8);
    layer.bytesPerElement = options.precision == "fp32" ? 4 : 2;
  }
  ReplanningHook hook(
      std::make_unique<planner::PlannerHook>(
          planner::makePlanner(options.planner), cluster, layer),
      options.replanEvery);
  AdamWConfig adamw;
  adamw.learningRate = options.lr;
  adamw.weightDecay = 0.01f;
  bool progress =
      comm.rank() == 0 && (options.progress == TrainOptions::Progress::Always ||
                           (options.progress == TrainOptions::Progress::Auto &&
                            stderrReachesTerminal()));
  if (comm.rank() == 0)
    std::printf("%s\n", banner.c_str());

  Tracer tracer(comm.rank());
  // One time origin for every rank's track (collective).
  if (!options.trace.empty())
    tracer.alignOrigin(comm);
  if (!options.trace.empty())
    for (std::size_t l = 0; l < state.moe.size(); ++l)
      state.moe[l]->times().attach(&tracer, static_cast<int>(l));
  // The run's settings travel with its checkpoints: a resume with another
  // batch or data order would silently train another run.
  state.identity["run.batch"] = std::to_string(options.batch);
  state.identity["run.sequence"] = std::to_string(options.sequence);
  state.identity["run.data_order"] =
      options.dataOrder == DataOrder::Random ? "random" : "sequential";
  state.identity["run.seed"] = std::to_string(options.seed);
  state.allowChangedRun = options.allowChangedRun;
  long first = 0;
  if (options.resume) {
    std::ifstream latest(options.checkpointDir + "/latest");
    std::string name;
    if (!(latest >> name))
      fail({comm.rank(), -1, -1}, "--resume: no checkpoint recorded in '",
           options.checkpointDir, "/latest'");
    first = state.load(options.checkpointDir + "/" + name) + 1;
    // The layouts kept until the next re-plan, as the run that wrote the
    // checkpoint had them.
    for (const auto &[l, slots] : state.keptLayouts) {
      if (l < 0 || l >= static_cast<int>(state.moe.size()))
        fail({comm.rank(), l, first},
             "the checkpoint keeps a layout for "
             "MoE layer ",
             l, "; the model has ", state.moe.size());
      const MoELayerConfig &config = state.moe[l]->config();
      hook.keep(l, Layout(comm.size(), config.slotsPerRank, config.numExperts,
                          slots, {comm.rank(), l, first}));
    }
    if (comm.rank() == 0)
      std::printf("resumed from %s/%s at step %ld\n",
                  options.checkpointDir.c_str(), name.c_str(), first);
  }
  if (!options.loadWeights.empty()) {
    LoadStats stats = loadNamedWeights(state, options.loadWeights);
    // Each rank reads its own byte ranges: the total and the slowest rank.
    std::int64_t mine[2] = {static_cast<std::int64_t>(stats.bytes),
                            static_cast<std::int64_t>(stats.seconds * 1e9)};
    std::vector<std::int64_t> all =
        comm.allGather(std::span<const std::int64_t>(mine, 2));
    if (comm.rank() == 0) {
      double total = 0, slowest = 0;
      for (int r = 0; r < comm.size(); ++r) {
        total += static_cast<double>(all[2 * r]);
        slowest = std::max(slowest, static_cast<double>(all[2 * r + 1]) / 1e9);
      }
      std::printf("loaded weights from %s: %.1f MB over %d ranks in %.2f s "
                  "(rank 0: %.1f MB at %.0f MB/s)\n",
                  options.loadWeights.c_str(), total / 1e6, comm.size(),
                  slowest, static_cast<double>(stats.bytes) / 1e6,
                  stats.seconds > 0
                      ? static_cast<double>(stats.bytes) / 1e6 / stats.seconds
                      : 0.0);
    }
  }
  if (comm.rank() == 0) {
    if (!options.trace.empty())
      requireWritable(options.trace, false, "--trace");
    if (!options.metrics.empty())
      requireWritable(options.metrics, false, "--metrics");
    if (!options.countsCsv.empty())
      requireWritable(options.countsCsv, false, "--counts-csv");
    if (!options.exportWeights.empty())
      requireWritable(options.exportWeights, true, "--export-weights");
    if (!options.exportGradients.empty())
      requireWritable(options.exportGradients, true, "--export-gradients");
    if (!options.checkpointDir.empty()) {
      requireWritable(options.checkpointDir, true, "--checkpoint-dir");
      removeUnfinishedCheckpoints(options.checkpointDir);
    }
  }
  comm.barrier();
  std::ofstream metrics;
  if (comm.rank() == 0 && !options.metrics.empty()) {
    metrics.open(options.metrics,
                 options.resume ? std::ios::app : std::ios::trunc);
    if (!metrics)
      fail({0, -1, -1}, "cannot write the metrics file '", options.metrics,
           "'");
  }
  std::ofstream countsCsv;
  if (comm.rank() == 0 && !options.countsCsv.empty()) {
    countsCsv.open(options.countsCsv,
                   options.resume ? std::ios::app : std::ios::trunc);
    if (!countsCsv)
      fail({0, -1, -1}, "cannot write the counts CSV '", options.countsCsv,
           "'");
    if (!options.resume && !state.moe.empty()) {
      countsCsv << "step,layer,rank";
      for (int e = 0; e < state.moe.front()->config().numExperts; ++e)
        countsCsv << ",e" << e;
      countsCsv << "\n";
    }
  }
  std::vector<std::int32_t> ids, targets;
  auto start = Clock::now();
  long tokens = 0;
  // The gradient norm: what clipping needs, and the metrics report where
  // the MoE layers can give it (the CPU ones).
  // The same on every rank: the norm is collective.
  bool wantNorm = options.clipGradNorm > 0 ||
                  (!options.metrics.empty() && options.device == "cpu");
  long skipped = 0;
  // The held-out loss of the current weights: the batches in order, each
  // layout-independent (a static plan), the gradients dropped and the
  // planner's load history as it was, so training goes on unchanged.
  StaticRoundRobinHook evalHook;
  auto heldOutLoss = [&](long step) {
    std::vector<std::deque<std::vector<std::int64_t>>> histories;
    for (const auto &layer : state.moe)
      histories.push_back(layer->loadHistory());
    double loss = 0;
    for (long b = 0; b < options.evalBatches; ++b) {
      heldOut.batch(b, options.seed, options.batch, options.sequence,
                    comm.rank(), comm.size(), ids, targets,
                    DataOrder::Sequential);
      loss += model.accumulateGradients(ids, targets, step, evalHook).loss /
              static_cast<double>(options.evalBatches);
    }
    state.zeroGrads();
    for (std::size_t l = 0; l < state.moe.size(); ++l)
      state.moe[l]->setLoadHistory(std::move(histories[l]));
    if (comm.rank() == 0) {
      clearProgress(progress);
      std::printf("step %4ld  eval loss %.4f  (%ld held-out batches%s)\n", step,
                  loss, options.evalBatches,
                  step == options.steps ? ", after the last step" : "");
      std::fflush(stdout);
    }
    return loss;
  };
  for (long step = first; step < options.steps; ++step) {
    bool evaluated = options.evalEvery > 0 && step % options.evalEvery == 0;
    double evalLoss = evaluated ? heldOutLoss(step) : 0.0;
    auto stepStart = Clock::now();
    adamw.learningRate =
        static_cast<float>(scheduledLearningRate(options, step));
    // Micro-batches add their gradients; the update takes their mean.
    int micro = options.gradAccumulation;
    state.zeroGrads();
    StepResult result;
    for (int m = 0; m < micro; ++m) {
      data.batch(step, options.seed, options.batch, options.sequence,
                 comm.rank(), comm.size(), ids, targets, options.dataOrder, m,
                 micro);
      StepResult part = model.accumulateGradients(ids, targets, step, hook);
      result.loss += part.loss / micro;
      result.maxOverMean = std::move(part.maxOverMean);
    }
    float scale = 1.0f / static_cast<float>(micro);
    double gradNorm = wantNorm ? state.gradientNorm(scale)
                               : std::numeric_limits<double>::quiet_NaN();
    // Divergence guard: a non-finite loss or gradient norm (the same on
    // every rank: both are reduced over all) stops every rank, or skips
    // the update, before the step touches the weights.
    std::string problem =
        !std::isfinite(result.loss)
            ? "the loss is " + std::to_string(result.loss)
        : wantNorm && !std::isfinite(gradNorm)
            ? "the gradient norm is " + std::to_string(gradNorm)
            : std::string();
    bool skip = !problem.empty() && options.skipNonFinite;
    if (skip) {
      ++skipped;
      if (comm.rank() == 0) {
        clearProgress(progress);
        std::printf("step %4ld  skipped: %s (%ld skipped so far)\n", step,
                    problem.c_str(), skipped);
      }
      state.zeroGrads();
    } else {
      stopIfDiverged(comm,
                     problem.empty()
                         ? problem
                         : problem + " on rank " + std::to_string(comm.rank()),
                     step, options);
      // torch.nn.utils.clip_grad_norm_: scale by max / (norm + 1e-6) when
      // that is below 1.
      if (options.clipGradNorm > 0) {
        double clip = options.clipGradNorm / (gradNorm + 1e-6);
        if (clip < 1.0)
          scale *= static_cast<float>(clip);
      }
      state.optimizerStep(adamw, step + 1, scale);
    }
    double stepSeconds =
        std::chrono::duration<double>(Clock::now() - stepStart).count();
    double planSeconds = hook.takeSeconds();
    if (!options.trace.empty())
      tracer.record("step " + std::to_string(step), "train", stepStart, step);
    tokens += static_cast<long>(options.batch) * options.sequence;
    double tokensPerSecond =
        tokens / std::chrono::duration<double>(Clock::now() - start).count();
    if (comm.rank() == 0 &&
        (step % options.logEvery == 0 || step + 1 == options.steps)) {
      clearProgress(progress);
      std::printf("step %4ld  loss %.4f  %7.0f tokens/s  plan %.2f ms  ", step,
                  result.loss, tokensPerSecond, planSeconds * 1e3);
      if (options.clipGradNorm > 0)
        std::printf("grad norm %.3f  ", gradNorm);
      std::printf("max/mean load");
      for (double balance : result.maxOverMean)
        std::printf(" %.2f", balance);
      std::printf("\n");
      std::fflush(stdout);
    }
    if (metrics.is_open()) {
      char line[256];
      // JSON has no NaN: a skipped step's non-finite loss is null.
      char loss[32] = "null";
      if (std::isfinite(result.loss))
        std::snprintf(loss, sizeof loss, "%.9g", result.loss);
      std::snprintf(
          line, sizeof line,
          "{\"step\": %ld, \"loss\": %s, \"lr\": %.9g, \"tokens_per_s\": "
          "%.1f, \"step_ms\": %.3f, \"plan_ms\": %.4f, ",
          step, loss, static_cast<double>(adamw.learningRate), tokensPerSecond,
          stepSeconds * 1e3, planSeconds * 1e3);
      metrics << line;
      // The norm before clipping, as clip_grad_norm_ returns it.
      if (wantNorm) {
        std::snprintf(line, sizeof line, "\"grad_norm\": %.9g, ", gradNorm);
        metrics << (std::isfinite(gradNorm) ? line : "\"grad_norm\": null, ");
      }
      if (skip)
        metrics << "\"skipped\": true, ";
      // The held-out loss of the weights this step started from.
      if (evaluated) {
        std::snprintf(line, sizeof line, "\"eval_loss\": %.9g, ", evalLoss);
        metrics << (std::isfinite(evalLoss) ? line : "\"eval_loss\": null, ");
      }
      metrics << "\"max_over_mean\": [";
      for (std::size_t l = 0; l < result.maxOverMean.size(); ++l)
        metrics << (l ? ", " : "") << result.maxOverMean[l];
      metrics << "]";
      // Tokens per expert of each layer (this step's, over every rank): the
      // counts a workload replay or laer-plot's heat map reads.
      if (options.metricsLoadsEvery > 0 &&
          step % options.metricsLoadsEvery == 0) {
        metrics << ", \"expert_loads\": [";
        for (std::size_t l = 0; l < state.moe.size(); ++l) {
          metrics << (l ? ", " : "") << "[";
          std::vector<std::int64_t> loads = state.moe[l]->globalLoads();
          for (std::size_t e = 0; e < loads.size(); ++e)
            metrics << (e ? ", " : "") << loads[e];
          metrics << "]";
        }
        metrics << "]";
      }
      metrics << "}\n" << std::flush;
      if (!metrics)
        fail({0, -1, step}, "cannot write the metrics file '", options.metrics,
             "'");
    }
    if (countsCsv.is_open()) {
      for (std::size_t l = 0; l < state.moe.size(); ++l) {
        const std::vector<std::int64_t> &counts = state.moe[l]->lastCounts();
        auto E = static_cast<std::size_t>(state.moe[l]->config().numExperts);
        for (std::size_t i = 0; i < counts.size(); ++i) {
          if (i % E == 0)
            countsCsv << step << ',' << l << ',' << i / E;
          countsCsv << ',' << counts[i] << (i % E + 1 == E ? "\n" : "");
        }
      }
      countsCsv << std::flush;
      if (!countsCsv)
        fail({0, -1, step}, "cannot write the counts CSV '", options.countsCsv,
             "'");
    }
    if (progress)
      drawProgress(step, options.steps, result.loss, tokensPerSecond);
    if (!options.checkpointDir.empty() &&
        ((step + 1) % options.checkpointEvery == 0 ||
         step + 1 == options.steps)) {
      // The update after a finite loss can still leave non-finite weights
      // (a huge learning rate): never checkpoint them.
      stopIfDiverged(comm, firstNonFinite(state), step, options);
      std::string name = "step-" + std::to_string(step);
      state.keptLayouts.clear();
      for (const auto &[l, layout] : hook.keptLayouts())
        state.keptLayouts[l] = layout.slots();
      state.save(options.checkpointDir + "/" + name, step);
      if (comm.rank() == 0) {
        // Point `latest` at it atomically.
        std::string staging = options.checkpointDir + "/latest.tmp";
        std::ofstream(staging) << name << "\n";
        std::filesystem::rename(staging, options.checkpointDir + "/latest");
        if (options.keepCheckpoints > 0)
          pruneCheckpoints(options.checkpointDir, options.keepCheckpoints,
                           name);
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
  if (progress)
    std::fputs("\n", stderr);
  NamedExportOptions exportOptions;
  exportOptions.dtype = options.exportDType;
  exportOptions.maxFileBytes = options.exportShardBytes;
  if (!options.exportWeights.empty()) {
    stopIfDiverged(comm, firstNonFinite(state), options.steps - 1, options);
    exportNamedWeights(state, options.exportWeights, exportOptions);
    // The model's config travels with its weights when they came with one.
    namespace fs = std::filesystem;
    std::error_code error;
    fs::path config = fs::path(options.loadWeights) / "config.json";
    if (comm.rank() == 0 && !options.loadWeights.empty() &&
        fs::is_regular_file(config, error))
      fs::copy_file(config, fs::path(options.exportWeights) / "config.json",
                    fs::copy_options::overwrite_existing, error);
    if (comm.rank() == 0)
      std::printf("weights written to %s\n", options.exportWeights.c_str());
  }
  if (!options.exportGradients.empty()) {
    exportOptions.gradients = true;
    exportNamedWeights(state, options.exportGradients, exportOptions);
    if (comm.rank() == 0)
      std::printf("gradients of step %ld written to %s\n", options.steps - 1,
                  options.exportGradients.c_str());
  }
  // The held-out loss of the final weights (after the exports: it drops
  // the last step's gradients).
  if (options.evalEvery > 0 && options.steps > first)
    heldOutLoss(options.steps);
  if (!options.trace.empty()) {
    tracer.write(options.trace, comm);
    if (comm.rank() == 0)
      std::printf("trace written to %s\n", options.trace.c_str());
  }
}
