//===- LanguageModelRuns.cpp - training the LM in tests -------------------===//

#include "LanguageModelRuns.h"
#include "LaerPlusHook.h"
#include "TrainingText.h"

#include "laer/runtime/comm/InProcessCommunicator.h"

#include <gtest/gtest.h>

using namespace laer;
using namespace laer::rt;

laer::test::TrainingResult
laer::test::trainLanguageModel(const TrainingRun &run) {
  TextData data = trainingText();
  TrainingResult result;
  InProcessGroup::run(run.ranks, [&](Communicator &comm) {
    MoELanguageModel model(comm, run.config, run.seed, run.backend);
    if (!run.resumeFrom.empty()) {
      EXPECT_EQ(model.loadCheckpoint(run.resumeFrom), run.from - 1);
    }
    ReplanningHook hook =
        laerPlusHook(run.config.hidden, run.config.ffn, run.replanEvery);
    AdamWConfig adamw;
    adamw.learningRate = run.learningRate;
    std::vector<double> losses;
    std::vector<std::int32_t> ids, targets;
    for (long step = run.from; step < run.to; ++step) {
      data.batch(step, run.dataSeed, run.batch, run.config.sequence,
                 comm.rank(), comm.size(), ids, targets);
      losses.push_back(model.trainStep(ids, targets, step, hook, adamw).loss);
    }
    if (!run.saveTo.empty())
      model.saveCheckpoint(run.saveTo, run.to - 1);
    std::vector<float> params = model.gatherParameters();
    if (comm.rank() == 0) {
      result.losses = std::move(losses);
      result.params = std::move(params);
      result.restoresAhead = model.moeBackend().restoresAhead();
    }
  });
  return result;
}
