//===- LanguageModelRuns.h - training the LM in tests ------------*- C++
//-*-===//
//
// One helper for the tests that train the runtime's language model: on N
// in-process ranks, on the tests' fixed text (TrainingText.h), with laer+
// re-planning every K steps, its MoE layers on a chosen backend, and
// optionally resuming from or writing a checkpoint.
//
//===----------------------------------------------------------------------===//

#ifndef LAER_TEST_LANGUAGEMODELRUNS_H
#define LAER_TEST_LANGUAGEMODELRUNS_H

#include "laer/runtime/model/MoELanguageModel.h"
#include "laer/runtime/model/TextData.h"

#include <string>
#include <vector>

namespace laer::test {

struct TrainingRun {
  rt::LanguageModelConfig config;
  rt::MoEBackendOptions backend;
  int ranks = 1;
  std::uint64_t seed = 5; // the model's
  std::uint64_t dataSeed = 11;
  int batch = 8;         // sequences per global batch
  long from = 0, to = 1; // steps [from, to)
  float learningRate = 1e-3f;
  long replanEvery = 1;
  /// A checkpoint to load first (written after step from - 1), and one to
  /// write after the last step; "" for none.
  std::string resumeFrom, saveTo;
};

struct TrainingResult {
  std::vector<double> losses; // per step, mean over all ranks
  std::vector<float> params;  // every parameter, full, after the last step
  long restoresAhead = 0;     // rank 0's MoE backend's
};

/// Runs `run` on trainingText() (collective over run.ranks threads).
TrainingResult trainLanguageModel(const TrainingRun &run);

} // namespace laer::test

#endif // LAER_TEST_LANGUAGEMODELRUNS_H
