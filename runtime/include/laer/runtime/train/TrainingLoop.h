//===- TrainingLoop.h - the loop every training binary runs -----*- C++ -*-===//
//
// Command-line options, data, planner, logging (loss, tokens/s, per-layer
// max/mean rank load, planner time, a progress bar on a terminal),
// sharded checkpoints with resume, and traces: shared by laer-train (the
// hand-wired model) and the binaries laer-compile links (compiled models).
//
//===----------------------------------------------------------------------===//

#ifndef LAER_RUNTIME_TRAIN_TRAININGLOOP_H
#define LAER_RUNTIME_TRAIN_TRAININGLOOP_H

#include "laer/runtime/comm/Communicator.h"
#include "laer/runtime/comm/MpiCommunicator.h"
#include "laer/runtime/io/SafetensorsFiles.h"
#include "laer/runtime/model/MoEBackend.h"
#include "laer/runtime/model/TextData.h"
#include "laer/runtime/model/TrainingState.h"

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace laer::rt {

struct TrainOptions {
  std::vector<std::string> data;
  std::string suffix = ".py", planner = "laer+";
  long maxBytes = 4000000, steps = 200, logEvery = 10;
  std::string checkpointDir, trace, tokens;
  long vocab = 256;
  long checkpointEvery = 50, crashAtStep = -1;
  /// With a metrics file: every this many steps, each MoE layer's tokens
  /// per expert (0: never).
  long metricsLoadsEvery = 10;
  /// Learning-rate schedule: linear warm-up over `warmupSteps` steps (from
  /// lr / warmupSteps to lr), then constant, linear or cosine decay to
  /// `minLr` at the last step.
  long warmupSteps = 0;
  std::string lrDecay = "constant";
  float minLr = 0.0f;
  /// Gradient clipping: the global L2 norm over every parameter scaled to
  /// at most this (torch.nn.utils.clip_grad_norm_; 0: off).
  double clipGradNorm = 0;
  /// Micro-batches per optimizer step: the batch is cut into this many,
  /// their gradients summed (as the mean) before one update.
  int gradAccumulation = 1;
  /// A step whose loss or gradient norm is not finite is skipped (no
  /// update) instead of stopping the run.
  bool skipNonFinite = false;
  /// Seconds any collective may wait for a peer before every live rank
  /// stops, naming the silent one.
  double collectiveTimeout = 300;
  /// Held-out evaluation: with evalEvery > 0 the last evalFraction of the
  /// corpus is not trained on; before every evalEvery-th step (and after
  /// the last) the loss of evalBatches of its batches, in order.
  long evalEvery = 0, evalBatches = 4;
  double evalFraction = 0.05;
  /// Resume although the checkpoint's run settings differ.
  bool allowChangedRun = false;
  /// Checkpoints kept in checkpointDir (the newest; 0: all).
  long keepCheckpoints = 0;
  /// Re-plan every K steps; in between the last plan is kept.
  long replanEvery = 1;
  bool resume = false;
  /// The progress bar on rank 0: Auto draws it when rank 0's stderr is a
  /// terminal, or mpirun's is (mpirun forwards rank 0's stderr to it).
  enum class Progress { Auto, Always, Never } progress = Progress::Auto;
  int batch = 16, history = 2, slots = 0;
  /// laer-train only: width of a shared expert in every layer (0: none);
  /// a compiled model's shared experts come from its IR.
  int sharedFfn = 0;
  /// laer-train only: chunks of each layer's token exchange (a compiled
  /// model's come from its pipeline's fsep-token-chunks).
  int tokenChunks = 1;
  /// Tokens per sequence; 0: the model's (64 for laer-train).
  int sequence = 0;
  /// Where the MoE layers compute: cpu | cuda, and their
  /// precision on the device: fp32 | bf16 ("" picks the device's: fp32 on
  /// cpu, bf16 on cuda).
  std::string device = "cpu", precision;
  /// Weights in the model's own files (its parameters' names): loaded
  /// before the first step; exported after the last (parameters, and the
  /// last step's gradients), in `exportDType` (F32 | BF16 | F16).
  std::string loadWeights, exportWeights, exportGradients;
  FileDType exportDType = FileDType::F32;
  /// The largest export file (HF's max_shard_size); a tensor is never split.
  std::int64_t exportShardBytes = 5'000'000'000;
  DataOrder dataOrder = DataOrder::Random;
  /// One JSON object per step (loss at full precision, tokens/s, plan
  /// time, per-layer max/mean load), written by rank 0.
  std::string metrics;
  /// Every step's routing counts, rows `step,layer,rank,<E counts>` (a
  /// workload that laer-sim --counts-csv replays), written by rank 0.
  std::string countsCsv;
  float lr = 3e-3f;
  std::uint64_t seed = 1;
};

/// Whether `--progress auto` draws the bar in this process: its stderr is
/// a terminal, or its parent's (mpirun, which forwards it) is.
bool stderrReachesTerminal();

/// The collective deadline `options` ask for (--collective-timeout).
std::chrono::milliseconds collectiveTimeout(const TrainOptions &options);

/// The option text of `--help`.
std::string trainUsage(const std::string &program);
/// Parses the options; exits on --help, fails on a bad option.
/// The learning rate of `step` under `options`' schedule.
double scheduledLearningRate(const TrainOptions &options, long step);

TrainOptions parseTrainOptions(int argc, char **argv,
                               const std::string &program);
/// Reads --data or --tokens.
TextData loadTrainingData(const TrainOptions &options);
/// Experts each rank computes: --slots, or ceil(E / N) + 1 so hot experts
/// can have replicas.
int slotsPerRank(const TrainOptions &options, int experts, int ranks);

/// Where the options put the MoE layers of this rank, from its place
/// among the ranks of its machine (collective).
MoEBackendOptions moeBackendOptions(const TrainOptions &options,
                                    const MpiCommunicator &comm);

/// Trains `model` for the options' steps (collective); `banner` is printed
/// by rank 0 first.
void runTraining(Communicator &comm, const TrainOptions &options,
                 const TextData &data, Trainable &model,
                 const std::string &banner);

} // namespace laer::rt

#endif // LAER_RUNTIME_TRAIN_TRAININGLOOP_H
