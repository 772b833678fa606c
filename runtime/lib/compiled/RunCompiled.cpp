//===- RunCompiled.cpp - main of a binary laer-compile links --------------===//

#include "laer/runtime/compiled/RunCompiled.h"
#include "laer/runtime/comm/MpiCommunicator.h"
#include "laer/runtime/train/TrainingLoop.h"

#include <cstdio>
#include <filesystem>

using namespace laer::rt;

int laer::rt::runCompiledMain(int argc, char **argv, CompiledProgram program,
                              int abiVersion) {
  if (abiVersion != kCompiledAbiVersion) {
    std::fprintf(stderr,
                 "%s: built for laer runtime ABI version %d, but "
                 "liblaer_train.so is version %d: compile the model again "
                 "with this laer's laer-compile\n",
                 argc > 0 ? argv[0] : "laer", abiVersion, kCompiledAbiVersion);
    return 1;
  }
  MpiRuntime mpi(&argc, &argv);
  std::string name = std::filesystem::path(argv[0]).filename().string();
  try {
    TrainOptions options = parseTrainOptions(argc, argv, name);
    MpiCommunicator comm(MPI_COMM_WORLD, collectiveTimeout(options));
    if (options.sharedFfn != 0)
      fail({comm.rank(), -1, -1}, "--shared-ffn is laer-train's: a compiled "
                                  "model's shared experts come from its IR");
    if (options.tokenChunks != 1)
      fail({comm.rank(), -1, -1},
           "--token-chunks is laer-train's: a "
           "compiled model's MoE layers run in the chunks its pipeline "
           "chose (laer-compile --chunks)");
    TextData data = loadTrainingData(options);
    CompiledModelOptions modelOptions;
    modelOptions.seed = options.seed;
    modelOptions.slotsPerRank = options.slots;
    modelOptions.historyWindow = options.history;
    modelOptions.backend = moeBackendOptions(options, comm);
    CompiledModel model(comm, program, modelOptions);
    if (options.sequence != 0 && options.sequence != model.sequence())
      fail({comm.rank(), -1, -1}, "--sequence ", options.sequence,
           " differs from the compiled model's sequence length ",
           model.sequence());
    options.sequence = static_cast<int>(model.sequence());
    if (data.vocab() > model.vocab())
      fail({comm.rank(), -1, -1}, "the data's vocabulary of ", data.vocab(),
           " does not fit the compiled model's ", model.vocab());
    std::vector<MoELayerConfig> layers;
    for (const auto &layer : model.state().moe)
      layers.push_back(layer->config());
    char banner[1024];
    std::snprintf(
        banner, sizeof banner,
        "%s (compiled): %d ranks, %lld tokens, planner %s, %s, %d "
        "slots per rank, batch %d x %d tokens, MoE layers on %s",
        name.c_str(), comm.size(), static_cast<long long>(data.size()),
        options.planner.c_str(), describeMoELayers(layers).c_str(),
        layers.empty() ? 0 : layers.front().slotsPerRank, options.batch,
        options.sequence, model.moeBackend().describe().c_str());
    runTraining(comm, options, data, model, banner);
  } catch (const std::exception &error) {
    MpiRuntime::abortJob(error.what());
  }
  return 0;
}
