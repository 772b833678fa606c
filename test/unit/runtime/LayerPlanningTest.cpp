//===- LayerPlanningTest.cpp - the phase checks both layers share ---------===//

#include "laer/runtime/LayerPlanning.h"

#include <gtest/gtest.h>

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
