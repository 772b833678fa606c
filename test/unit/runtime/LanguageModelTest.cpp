//===- LanguageModelTest.cpp - training the MoE LM on N ranks -------------===//

#include "ErrorOf.h"
#include "LanguageModelRuns.h"
#include "RelativeError.h"
#include "TrainingText.h"

#include "laer/planner/Planner.h"
#include "laer/runtime/comm/InProcessCommunicator.h"
#include "laer/runtime/io/Safetensors.h"
#include "laer/runtime/model/MoELanguageModel.h"
#include "laer/runtime/model/TextData.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>

using namespace laer;
using namespace laer::rt;

namespace {

LanguageModelConfig tinyConfig() {
  LanguageModelConfig config;
  config.hidden = 32;
  config.ffn = 64;
  config.experts = 8;
  config.topK = 2;
  config.layers = 2;
  config.heads = 4;
  config.kvHeads = 2;
  config.sequence = 16;
  config.historyWindow = 2;
  return config;
}

/// Trains `steps` steps on `ranks` threads with laer+ re-planning every
/// step; returns the losses and the final parameters.
test::TrainingResult train(int ranks, int steps, float learningRate) {
  test::TrainingRun run;
  run.config = tinyConfig();
  run.ranks = ranks;
  run.to = steps;
  run.learningRate = learningRate;
  return test::trainLanguageModel(run);
}

TEST(LanguageModel, FourRanksTrainLikeOneRank) {
  test::TrainingResult one = train(1, 6, 1e-3f);
  test::TrainingResult four = train(4, 6, 1e-3f);
  for (std::size_t step = 0; step < one.losses.size(); ++step)
    EXPECT_NEAR(four.losses[step], one.losses[step],
                1e-4 * std::abs(one.losses[step]))
        << "step " << step;
  ASSERT_EQ(one.params.size(), four.params.size());
  EXPECT_LT(test::relativeError(four.params, one.params), 1e-4);
}

TEST(LanguageModel, LossFallsOnRealText) {
  std::vector<double> losses = train(2, 60, 3e-3f).losses;
  double first = 0, last = 0;
  for (int i = 0; i < 10; ++i) {
    first += losses[i] / 10;
    last += losses[losses.size() - 10 + i] / 10;
  }
  // A byte-level model starts near log(256) = 5.5.
  EXPECT_NEAR(losses[0], std::log(256.0), 0.5);
  EXPECT_LT(last, first * 0.8)
      << "first 10 steps " << first << ", last 10 " << last;
}

TEST(LanguageModel, ResumingFromACheckpointLosesNothing) {
  // 8 steps straight, against 5 steps, a checkpoint, a fresh model loading
  // it, and the last 3 steps: the same losses and parameters, bit for bit.
  TextData data = test::trainingText();
  std::string directory = ::testing::TempDir() + "/laer-checkpoint";
  auto run = [&](Communicator &comm, long from, long to,
                 MoELanguageModel &model, std::vector<double> &losses) {
    planner::LayerSpec layer;
    layer.hidden = model.config().hidden;
    layer.ffn = model.config().ffn;
    planner::PlannerHook hook(planner::makePlanner("laer+"),
                              planner::ClusterSpec{}, layer);
    std::vector<std::int32_t> ids, targets;
    for (long step = from; step < to; ++step) {
      data.batch(step, 11, 8, model.config().sequence, comm.rank(), comm.size(),
                 ids, targets);
      losses[step] =
          model.trainStep(ids, targets, step, hook, AdamWConfig{}).loss;
    }
  };
  std::vector<double> straight(8), resumed(8);
  std::vector<float> straightParams, resumedParams;
  InProcessGroup::run(2, [&](Communicator &comm) {
    MoELanguageModel model(comm, tinyConfig(), 5);
    std::vector<double> losses(8);
    run(comm, 0, 8, model, losses);
    auto params = model.gatherParameters();
    if (comm.rank() == 0) {
      straight = losses;
      straightParams = params;
    }
  });
  InProcessGroup::run(2, [&](Communicator &comm) {
    std::vector<double> losses(8);
    {
      MoELanguageModel model(comm, tinyConfig(), 5);
      run(comm, 0, 5, model, losses);
      model.saveCheckpoint(directory, 4);
    } // the first process "dies" here
    MoELanguageModel model(comm, tinyConfig(), /*seed=*/99);
    long step = model.loadCheckpoint(directory);
    EXPECT_EQ(step, 4);
    run(comm, step + 1, 8, model, losses);
    auto params = model.gatherParameters();
    if (comm.rank() == 0) {
      resumed = losses;
      resumedParams = params;
    }
  });
  for (int step = 0; step < 8; ++step)
    EXPECT_EQ(resumed[step], straight[step]) << "step " << step;
  EXPECT_EQ(resumedParams, straightParams);

  // The 2-rank checkpoint re-shards onto 1 and onto 4 ranks: every
  // parameter (gathered full) is what the 2 ranks saved.
  std::vector<float> saved;
  InProcessGroup::run(2, [&](Communicator &comm) {
    MoELanguageModel model(comm, tinyConfig(), 77);
    model.loadCheckpoint(directory);
    auto params = model.gatherParameters();
    if (comm.rank() == 0)
      saved = params;
  });
  for (int ranks : {1, 4}) {
    std::vector<float> resharded;
    InProcessGroup::run(ranks, [&](Communicator &comm) {
      MoELanguageModel model(comm, tinyConfig(), 77);
      EXPECT_EQ(model.loadCheckpoint(directory), 4);
      auto params = model.gatherParameters();
      if (comm.rank() == 0)
        resharded = params;
    });
    EXPECT_EQ(resharded, saved) << ranks << " ranks";
  }

  // Another model shape is a clear error.
  InProcessGroup::run(1, [&](Communicator &comm) {
    LanguageModelConfig other = tinyConfig();
    other.layers = 3;
    MoELanguageModel model(comm, other, 5);
    try {
      model.loadCheckpoint(directory);
      ADD_FAILURE() << "no error";
    } catch (const RuntimeError &error) {
      EXPECT_NE(
          std::string(error.what()).find("has layers = 2 but this model has 3"),
          std::string::npos)
          << error.what();
    }
  });
}

TEST(LanguageModel, CheckpointMetadataOutOfRangeIsRefusedNotNarrowed) {
  // Metadata is outside the tensors' checksums: a count that an int would
  // read as another (4294967298 as 2) or a negative load must not load.
  TextData data = test::trainingText();
  std::string directory = ::testing::TempDir() + "/laer-checkpoint-metadata";
  std::string file = directory + "/rank0.safetensors";
  InProcessGroup::run(1, [&](Communicator &comm) {
    MoELanguageModel model(comm, tinyConfig(), 5);
    planner::PlannerHook hook(planner::makePlanner("laer+"),
                              planner::ClusterSpec{}, planner::LayerSpec{});
    std::vector<std::int32_t> ids, targets;
    for (long step = 0; step < 2; ++step) {
      data.batch(step, 11, 4, tinyConfig().sequence, 0, 1, ids, targets);
      model.trainStep(ids, targets, step, hook, AdamWConfig{});
    }
    model.saveCheckpoint(directory, 1);
  });
  auto loadError = [&] {
    std::string message;
    InProcessGroup::run(1, [&](Communicator &comm) {
      MoELanguageModel model(comm, tinyConfig(), 6);
      message = test::errorOf([&] { model.loadCheckpoint(directory); });
    });
    return message;
  };
  ASSERT_EQ(loadError(), "");
  Metadata metadata;
  TensorMap tensors = readSafetensors(file, &metadata);
  auto tampered = [&](const std::string &key, const std::string &value) {
    Metadata changed = metadata;
    changed[key] = value;
    writeSafetensors(file, tensors, changed);
    std::string message = loadError();
    writeSafetensors(file, tensors, metadata);
    return message;
  };
  std::string history = metadata.at("layer0.load_history");
  std::string negative = tampered("layer0.load_history", history + ",-5");
  EXPECT_NE(negative.find("layer0.load_history must be in [0, "),
            std::string::npos)
      << negative;
  std::string layout = tampered("layer1.kept_layout", "4294967298,0,1");
  EXPECT_NE(layout.find("layer1.kept_layout must be in [-1, 7], got "
                        "4294967298"),
            std::string::npos)
      << layout;
  std::string junk = tampered("layer1.kept_layout", "2x,0");
  EXPECT_NE(junk.find("is not a whole number: '2x'"), std::string::npos)
      << junk;

  std::string index = directory + "/index.json";
  std::string original;
  {
    std::ifstream in(index);
    original.assign(std::istreambuf_iterator<char>(in), {});
  }
  std::size_t at = original.find("\"ranks\": \"1\"");
  ASSERT_NE(at, std::string::npos) << original;
  std::ofstream(index) << original.substr(0, at) << "\"ranks\": \"4294967297\""
                       << original.substr(at + 12);
  std::string ranks = loadError();
  EXPECT_NE(ranks.find("ranks must be in [1, 65536], got 4294967297"),
            std::string::npos)
      << ranks;
  std::filesystem::remove_all(directory);
}

TEST(TextData, ReadsPreTokenizedFiles) {
  std::string u16 = ::testing::TempDir() + "/tokens.u16";
  std::string u32 = ::testing::TempDir() + "/tokens.u32";
  {
    std::ofstream a(u16, std::ios::binary), b(u32, std::ios::binary);
    for (std::uint32_t id = 0; id < 300; ++id) {
      std::uint16_t small = static_cast<std::uint16_t>(id * 3);
      a.write(reinterpret_cast<const char *>(&small), 2);
      std::uint32_t large = id * 70000u % 100000u;
      b.write(reinterpret_cast<const char *>(&large), 4);
    }
  }
  TextData small = TextData::fromTokenFile(u16, 16, 1000, 1 << 20);
  EXPECT_EQ(small.size(), 300);
  EXPECT_EQ(small.vocab(), 1000);
  std::vector<std::int32_t> ids, targets;
  small.batch(0, 1, 2, 4, 0, 1, ids, targets);
  for (std::size_t i = 0; i < ids.size(); ++i)
    EXPECT_EQ((targets[i] - ids[i] + 900) % 3, 0); // next id = this + 3
  TextData large = TextData::fromTokenFile(u32, 32, 100000, 1 << 20);
  EXPECT_EQ(large.size(), 300);

  auto errorOf = [](const std::function<void()> &body) {
    try {
      body();
    } catch (const RuntimeError &error) {
      return std::string(error.what());
    }
    return std::string();
  };
  EXPECT_NE(errorOf([&] {
              TextData::fromTokenFile(u16, 16, 500, 1 << 20);
            }).find("token 167 is 501, outside the vocabulary [0, 500)"),
            std::string::npos);
  { std::ofstream(u16, std::ios::binary | std::ios::app) << 'x'; }
  EXPECT_NE(errorOf([&] {
              TextData::fromTokenFile(u16, 16, 1000, 1 << 20);
            }).find("ends in the middle of a 16-bit id"),
            std::string::npos);
}

TEST(LanguageModel, BatchOfPartialSequencesIsAClearError) {
  InProcessGroup::run(1, [](Communicator &comm) {
    MoELanguageModel model(comm, tinyConfig(), 1);
    StaticRoundRobinHook hook;
    std::vector<std::int32_t> ids(20, 1), targets(20, 2);
    try {
      model.trainStep(ids, targets, 3, hook, {});
      ADD_FAILURE() << "no error";
    } catch (const RuntimeError &error) {
      EXPECT_STREQ(error.what(),
                   "rank 0, step 3: training batch has 20 ids and 20 "
                   "targets; both must be whole sequences of 16");
    }
  });
}

} // namespace
