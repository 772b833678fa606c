//===- laer-train.cpp - train the hand-wired MoE LM -----------------------===//
//
//   mpirun -np N laer-train --data DIR_OR_FILE [options]
//
// Trains the runtime's MoE transformer LM (the model of
// examples/tiny_moe_lm.mlir, wired by hand on the runtime's kernels)
// with FSEP experts and a planner re-laying experts every step; the MoE
// layers compute on CPU ranks or, with --device cuda, on a GPU per rank. The
// reference the binaries laer-compile builds are checked against; the loop
// itself is laer::rt::runTraining.
//
//===----------------------------------------------------------------------===//

#include "laer/runtime/comm/MpiCommunicator.h"
#include "laer/runtime/model/MoELanguageModel.h"
#include "laer/runtime/train/TrainingLoop.h"

#include <cstdio>
#include <string>

using namespace laer::rt;

int main(int argc, char **argv) {
  MpiRuntime mpi(&argc, &argv);
  try {
    TrainOptions options = parseTrainOptions(argc, argv, "laer-train");
    MpiCommunicator comm(MPI_COMM_WORLD, collectiveTimeout(options));
    TextData data = loadTrainingData(options);
    if (options.sequence == 0)
      options.sequence = 64;
    LanguageModelConfig config;
    config.vocab = data.vocab();
    config.sequence = options.sequence;
    config.historyWindow = options.history;
    config.sharedFfn = options.sharedFfn;
    config.tokenChunks = options.tokenChunks;
    config.slotsPerRank = slotsPerRank(options, config.experts, comm.size());
    MoELanguageModel model(comm, config, options.seed,
                           moeBackendOptions(options, comm));
    char banner[384];
    std::snprintf(banner, sizeof banner,
                  "laer-train: %d ranks, %lld tokens, planner %s, %d layers "
                  "x %d experts (top-%d)%s, %d slots per rank, batch %d x "
                  "%d tokens, MoE layers on %s",
                  comm.size(), static_cast<long long>(data.size()),
                  options.planner.c_str(), config.layers, config.experts,
                  config.topK, config.sharedFfn ? " + shared" : "",
                  config.slotsPerRank, options.batch, options.sequence,
                  model.moeBackend().describe().c_str());
    runTraining(comm, options, data, model, banner);
  } catch (const std::exception &error) {
    MpiRuntime::abortJob(error.what());
  }
  return 0;
}
