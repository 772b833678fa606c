//===- CompiledAbiTest.cpp - the compiled ABI refuses what does not fit ---===//
//
// The laerrt_* calls a compiled program makes, called directly with
// arguments no verifier produced: sizes past 2^32 that a narrowing would
// read as small ones, shapes whose products wrap, memref descriptors with
// negative sizes. Each is refused with a message naming the argument,
// before anything is sized from it. Linked against liblaer_train like a
// training binary.
//
//===----------------------------------------------------------------------===//

#include "ErrorOf.h"

#include "laer/Conversion/FSEPLimits.h"
#include "laer/runtime/Limits.h"
#include "laer/runtime/comm/InProcessCommunicator.h"
#include "laer/runtime/compiled/ABI.h"
#include "laer/runtime/compiled/CompiledModel.h"

#include <gtest/gtest.h>

#include <functional>

using namespace laer::rt;
using laer::test::errorOf;

namespace {

/// What the test's "compiled program" declares (CompiledProgram holds plain
/// function pointers).
std::function<void(void *)> &declarations() {
  static std::function<void(void *)> body;
  return body;
}

void declare(void *ctx) { declarations()(ctx); }

float noStep(void *, MemRef<std::int32_t, 1> *, MemRef<std::int32_t, 1> *) {
  return 0.0f;
}

/// A MoE layer 0 of E experts, H x F, top-1, declared with `ranks` and
/// `slots` (0: the runtime's choice).
void declareMoE(void *ctx, std::int64_t experts, std::int64_t hidden,
                std::int64_t ffn, std::int64_t ranks = 0,
                std::int64_t slots = 0) {
  _mlir_ciface_laerrt_declare_moe(ctx, /*layer=*/0, experts, hidden, ffn,
                                  /*topK=*/1, /*score=*/0, /*renormalize=*/1,
                                  /*scale=*/1.0, /*groups=*/1,
                                  /*topGroups=*/1, /*groupScore=*/0,
                                  /*selectionBias=*/0, /*biasUpdateRate=*/0.0,
                                  /*auxLoss=*/0, /*zLoss=*/0,
                                  /*activation=*/0, ranks, slots);
}

/// The message of building a model whose program declares `body`, on one
/// rank ("" when it builds).
std::string buildError(std::function<void(void *)> body) {
  declarations() = std::move(body);
  std::string message;
  InProcessGroup::run(1, [&](Communicator &comm) {
    message = errorOf([&] {
      CompiledModel model(comm, {&declare, &noStep}, CompiledModelOptions{});
    });
  });
  return message;
}

constexpr std::int64_t k2To32 = std::int64_t{1} << 32;

// What the compiler lowers for, the runtime runs.
static_assert(laer::kMaxFsepDevices == kMaxRanks);
static_assert(laer::kMaxFsepSlotsPerDevice == kMaxSlotsPerRank);
static_assert(laer::kMaxFsepChunks == kMaxTokenChunks);

} // namespace

TEST(CompiledAbi, ExpertShapesWhoseParameterCountWrapsAreRefused) {
  // 3 x 2 x 3074457345618258603 is 2 modulo 2^64: two-element shards.
  std::string message = buildError([](void *ctx) {
    _mlir_ciface_laerrt_declare_model(ctx, 256, 8);
    declareMoE(ctx, 1, 2, 3074457345618258603);
  });
  EXPECT_NE(message.find("3 x H x F x E"), std::string::npos) << message;
  EXPECT_NE(message.find("layer 0"), std::string::npos) << message;
}

TEST(CompiledAbi, RanksAndSlotsPastTheLimitsAreNotNarrowed) {
  // 2^32 + 4 ranks would read as 4, 2^32 + 8 slots as 8.
  std::string ranks = buildError([](void *ctx) {
    _mlir_ciface_laerrt_declare_model(ctx, 256, 8);
    declareMoE(ctx, 4, 8, 16, k2To32 + 4, 2);
  });
  EXPECT_NE(ranks.find("ranks must be in [0, 65536], got 4294967300"),
            std::string::npos)
      << ranks;
  std::string slots = buildError([](void *ctx) {
    _mlir_ciface_laerrt_declare_model(ctx, 256, 8);
    declareMoE(ctx, 4, 8, 16, 1, k2To32 + 8);
  });
  EXPECT_NE(slots.find("slots per rank must be in [0, 4096]"),
            std::string::npos)
      << slots;
}

TEST(CompiledAbi, SequencesAndVocabulariesPastTheLimitsAreRefused) {
  std::string sequence = buildError([](void *ctx) {
    _mlir_ciface_laerrt_declare_model(ctx, 256, k2To32 + 64);
  });
  EXPECT_NE(sequence.find("sequence length 4294967360"), std::string::npos)
      << sequence;
  std::string vocab = buildError([](void *ctx) {
    _mlir_ciface_laerrt_declare_model(ctx, k2To32 + 256, 8);
  });
  EXPECT_NE(vocab.find("vocabulary 4294967552"), std::string::npos) << vocab;
}

TEST(CompiledAbi, DescriptorsWithNegativeSizesAndChunksPastTheLimitFail) {
  declarations() = [](void *ctx) {
    _mlir_ciface_laerrt_declare_model(ctx, 256, 8);
    declareMoE(ctx, 4, 8, 16);
  };
  InProcessGroup::run(1, [&](Communicator &comm) {
    CompiledModel model(comm, {&declare, &noStep}, CompiledModelOptions{});
    std::vector<float> storage(64, 0.0f);
    // -2 x -4 is 8: a product test alone would take it.
    F32x2 x{storage.data(), storage.data(), 0, {-2, -4}, {-4, 1}};
    F32x2 out{storage.data(), storage.data(), 0, {2, 8}, {8, 1}};
    std::string negative =
        errorOf([&] { _mlir_ciface_laerrt_moe_forward(&model, 0, &x, &out); });
    EXPECT_NE(negative.find("negative size -2 in dimension 0"),
              std::string::npos)
        << negative;
    std::string chunk = errorOf([&] {
      _mlir_ciface_laerrt_fsep_dispatch(&model, 0, k2To32 + 1, k2To32 + 2);
    });
    EXPECT_NE(chunk.find("chunk must be in [0, 1024]"), std::string::npos)
        << chunk;
  });
}
