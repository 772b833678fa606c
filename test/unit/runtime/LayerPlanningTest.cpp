//===- LayerPlanningTest.cpp - the phase checks both layers share ---------===//

#include "laer/runtime/fsep/LayerPlanning.h"

#include <gtest/gtest.h>

#include <deque>
#include <limits>

using namespace laer::rt;

namespace {

std::string errorOf(LayerStage stage, int chunk, int chunks,
                    std::size_t planned) {
  try {
    startsTokenChunks(stage, chunk, chunks, planned, {1, 4, 7});
  } catch (const RuntimeError &error) {
    return error.what();
  }
  return "";
}

} // namespace

TEST(LayerPlanning, DescribesEachRunOfEqualLayers) {
  MoELayerConfig a;
  a.numExperts = 8;
  a.topK = 2;
  a.shape = {64, 128};
  MoELayerConfig b = a;
  b.numExperts = 16;
  b.topK = 4;
  b.shape.ffn = 32;
  std::vector<MoELayerConfig> uniform{a, a, a};
  EXPECT_EQ(describeMoELayers(uniform),
            "3 MoE layers x 8 experts (top-2, F 128)");
  std::vector<MoELayerConfig> one{b};
  EXPECT_EQ(describeMoELayers(one), "1 MoE layer x 16 experts (top-4, F 32)");
  std::vector<MoELayerConfig> mixed{a, a, b, a};
  EXPECT_EQ(describeMoELayers(mixed),
            "MoE layers 0-1: 8 experts (top-2, F 128); 2: 16 experts (top-4, "
            "F 32); 3: 8 experts (top-2, F 128)");
  EXPECT_EQ(describeMoELayers({}), "no MoE layers");
}

TEST(LayerPlanning, TheFirstDispatchCutsTheChunksAndTheRestAgree) {
  EXPECT_TRUE(startsTokenChunks(LayerStage::Planned, 0, 3, 0, {}));
  // Chunk 1 after the restore finished, and chunk 2 before: both fine.
  EXPECT_FALSE(startsTokenChunks(LayerStage::Restored, 1, 3, 3, {}));
  EXPECT_FALSE(startsTokenChunks(LayerStage::Planned, 2, 3, 3, {}));
  // Chunks are counted from the first dispatch of the step, not from 0.
  EXPECT_TRUE(startsTokenChunks(LayerStage::Restored, 2, 3, 0, {}));
}

TEST(LayerPlanning, DispatchesOutOfTurnNameRankLayerStepAndValue) {
  EXPECT_EQ(errorOf(LayerStage::Planned, 1, 4, 3),
            "rank 1, layer 4, step 7: dispatch of chunk 1 says 4 chunks, an "
            "earlier one of this step 3");
  EXPECT_EQ(errorOf(LayerStage::Planned, 0, 0, 0),
            "rank 1, layer 4, step 7: the dispatch needs >= 1 chunks, got 0");
  std::string early = errorOf(LayerStage::Routed, 0, 2, 0);
  EXPECT_NE(early.find("rank 1, layer 4, step 7: the dispatch"),
            std::string::npos)
      << early;
  EXPECT_NE(early.find("after the router"), std::string::npos) << early;
}

namespace {

struct Chunk {
  ChunkStage stage = ChunkStage::Planned;
};

/// The message `body` fails with ("" when it does not).
template <typename Body> std::string failureOf(Body body) {
  try {
    body();
  } catch (const RuntimeError &error) {
    return error.what();
  }
  return "";
}

constexpr ChunkStage kStepInOrder[] = {
    ChunkStage::DispatchStarted,   ChunkStage::Dispatched,
    ChunkStage::Computed,          ChunkStage::CombineStarted,
    ChunkStage::Combined,          ChunkStage::GradSent,
    ChunkStage::GradArrived,       ChunkStage::GradComputed,
    ChunkStage::GradReturnStarted, ChunkStage::GradReturned};

} // namespace

TEST(LayerPlanning, ChunksMoveThroughEveryPhaseInOrder) {
  std::vector<Chunk> chunks(2);
  ErrorContext where{0, 0, 0};
  for (ChunkStage next : kStepInOrder) {
    EXPECT_FALSE(allChunksReached(chunks, next));
    EXPECT_EQ(&advanceChunk(chunks, 1, next, where), &chunks[1]);
    EXPECT_EQ(chunks[1].stage, next);
    EXPECT_FALSE(allChunksReached(chunks, next)); // chunk 0 is behind
    advanceChunk(chunks, 0, next, where);
    EXPECT_TRUE(allChunksReached(chunks, next));
    requireAllChunks(chunks, next, "the next phase", where);
  }
}

TEST(LayerPlanning, ChunkPhasesOutOfOrderNameTheChunkAndWhatItWaitsFor) {
  ErrorContext where{2, 3, 9};
  std::vector<Chunk> chunks(3);
  advanceChunk(chunks, 2, ChunkStage::DispatchStarted, where);
  // Computing on rows still in flight.
  EXPECT_EQ(
      failureOf([&] { advanceChunk(chunks, 2, ChunkStage::Computed, where); }),
      "rank 2, layer 3, step 9: expert compute of chunk 2 ran before "
      "its dispatch completed");
  EXPECT_EQ(chunks[2].stage, ChunkStage::DispatchStarted); // unchanged
  EXPECT_EQ(failureOf([&] {
              advanceChunk(chunks, 2, ChunkStage::DispatchStarted, where);
            }),
            "rank 2, layer 3, step 9: dispatch of chunk 2 ran twice");
  for (ChunkStage next : {ChunkStage::Dispatched, ChunkStage::Computed,
                          ChunkStage::CombineStarted})
    advanceChunk(chunks, 2, next, where);
  EXPECT_EQ(
      failureOf([&] { advanceChunk(chunks, 2, ChunkStage::Computed, where); }),
      "rank 2, layer 3, step 9: expert compute of chunk 2 ran after "
      "its combine started");
  // A backward before the chunk's combine completed.
  EXPECT_EQ(
      failureOf([&] { advanceChunk(chunks, 2, ChunkStage::GradSent, where); }),
      "rank 2, layer 3, step 9: combine backward of chunk 2 ran "
      "before its combine completed");
  // No such chunk.
  EXPECT_EQ(
      failureOf([&] { advanceChunk(chunks, 3, ChunkStage::Combined, where); }),
      "rank 2, layer 3, step 9: the combine's wait of chunk 3: the "
      "step's token exchange has 3 chunks");
  EXPECT_NE(failureOf([&] {
              advanceChunk(chunks, -1, ChunkStage::DispatchStarted, where);
            }).find("chunk -1: the step's token exchange has 3 chunks"),
            std::string::npos);
  // A phase over every chunk names the first one behind.
  EXPECT_EQ(failureOf([&] {
              requireAllChunks(chunks, ChunkStage::Dispatched,
                               "the gradient all-to-all", where);
            }),
            "rank 2, layer 3, step 9: the gradient all-to-all ran before "
            "chunk 0's dispatch completed");
}

TEST(LayerPlanning, RestoreSizesAgreeBetweenEveryPairOfRanks) {
  // 3 ranks, 3 slots, 4 experts; rank 1 has an empty slot, rank 2 two.
  Layout layout(3, 3, 4,
                {0, 1, 2, /**/ 3, Layout::kEmpty, 0, /**/ Layout::kEmpty, 1,
                 Layout::kEmpty});
  constexpr std::int64_t shard = 5;
  std::vector<AllToAllSizes> sizes;
  for (int rank = 0; rank < 3; ++rank)
    sizes.push_back(restoreSizes(layout, rank, shard));
  // Rank 0 sends each peer the shards of that peer's used slots, in order.
  EXPECT_EQ(sizes[0].sendCounts, (std::vector<std::int64_t>{15, 10, 5}));
  EXPECT_EQ(sizes[0].sendOffsets, (std::vector<std::int64_t>{0, 15, 25}));
  // Rank 2 gets its one used slot's shard from every owner.
  EXPECT_EQ(sizes[2].recvCounts, (std::vector<std::int64_t>{5, 5, 5}));
  EXPECT_EQ(sizes[2].recvOffsets, (std::vector<std::int64_t>{0, 5, 10}));
  for (int a = 0; a < 3; ++a)
    for (int b = 0; b < 3; ++b) {
      // What a sends b, b receives from a; the gradients go back.
      EXPECT_EQ(sizes[a].sendCounts[b], sizes[b].recvCounts[a]);
      AllToAllSizes gradA = sizes[a].reversed(), gradB = sizes[b].reversed();
      EXPECT_EQ(gradA.sendCounts[b], gradB.recvCounts[a]);
      EXPECT_EQ(gradA.sendCounts[b], sizes[a].recvCounts[b]);
      EXPECT_EQ(gradA.recvOffsets[b], sizes[a].sendOffsets[b]);
    }
  // In bytes (a bf16 restore): counts and offsets both.
  AllToAllSizes bytes = sizes[0].scaled(2);
  EXPECT_EQ(bytes.sendCounts, (std::vector<std::int64_t>{30, 20, 10}));
  EXPECT_EQ(bytes.sendOffsets, (std::vector<std::int64_t>{0, 30, 50}));
  EXPECT_EQ(bytes.recvCounts, (std::vector<std::int64_t>{30, 30, 30}));
  EXPECT_EQ(bytes.recvOffsets, (std::vector<std::int64_t>{0, 30, 60}));
  EXPECT_EQ(bytes.totalSend(), 2 * sizes[0].totalSend());
}

namespace {

std::string configError(const MoELayerConfig &config) {
  try {
    checkLayerConfig(config, {0, 3, 9});
  } catch (const RuntimeError &error) {
    return error.what();
  }
  return "";
}

/// A hook that must not be reached.
class UnreachedHook : public RelayoutHook {
public:
  std::string name() const override { return "unreached"; }
  Plan plan(const PlanRequest &) override {
    ADD_FAILURE() << "the hook was asked for a plan";
    return {};
  }
};

} // namespace

TEST(LayerPlanning, LayerSizesPastTheRuntimeLimitsAreRefused) {
  MoELayerConfig config;
  config.shape = {64, 128};
  EXPECT_EQ(configError(config), "");
  config.slotsPerRank = 4097;
  EXPECT_NE(configError(config).find("slots per rank must be in [1, 4096], "
                                     "got 4097"),
            std::string::npos);
  config.slotsPerRank = 2;
  config.tokenChunks = 1025;
  EXPECT_NE(configError(config).find("token chunks must be at most 1024"),
            std::string::npos);
  config.tokenChunks = 1;
  // 3 x 2 x 3074457345618258603 x 8 wraps to a small count.
  config.shape = {2, 3074457345618258603};
  std::string wrapped = configError(config);
  EXPECT_NE(wrapped.find("3 x H x F x E"), std::string::npos) << wrapped;
  EXPECT_NE(wrapped.find("layer 3"), std::string::npos) << wrapped;
}

TEST(LayerPlanning, AHistoryWhoseSumOverflowsIsRefused) {
  MoELayerConfig config;
  config.shape = {8, 16};
  config.numExperts = 2;
  std::vector<std::int64_t> counts = {3, 5};
  std::deque<std::vector<std::int64_t>> history = {
      {std::numeric_limits<std::int64_t>::max() - 1, 0}, {7, 0}};
  UnreachedHook hook;
  try {
    relayoutForCounts(hook, config, 1, 0, 4, counts, history, {0, 0, 4});
    FAIL() << "an overflowing history was summed";
  } catch (const RuntimeError &error) {
    EXPECT_NE(std::string(error.what()).find("the load history"),
              std::string::npos)
        << error.what();
  }
}
