//===- TokenExchangeTest.cpp - the token all-to-alls derived from a plan --===//
//
// Every rank derives its exchange from the shared plan alone; these tests
// check that the ranks' tables fit together: what p sends q in a chunk is
// what q expects from p, every pair has its own send row, and the rows
// that reach a slot are the ones the routing sends its replica.
//
//===----------------------------------------------------------------------===//

#include "laer/runtime/TokenExchange.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>

using namespace laer::rt;

namespace {

TEST(TokenExchange, RanksAgreeAndEveryPairHasOneRow) {
  const int ranks = 3, slots = 3, experts = 6, topK = 2;
  const std::int64_t hidden = 4, tokens = 41;
  // Expert 0 is hot: three replicas; 1 has two; the others one each.
  Layout layout(ranks, slots, experts, {0, 1, 2, 0, 3, 1, 0, 4, 5});
  std::mt19937 rng(3);
  std::vector<std::vector<std::int32_t>> indices(ranks);
  std::vector<std::int64_t> counts(ranks * experts, 0);
  for (int r = 0; r < ranks; ++r)
    for (std::int64_t t = 0; t < tokens; ++t) {
      // Half of the first choices go to the hot expert 0.
      int first = rng() % 2 ? 0 : static_cast<int>(rng() % experts);
      int second =
          (first + 1 + static_cast<int>(rng() % (experts - 1))) % experts;
      for (int e : {first, second}) {
        indices[r].push_back(e);
        ++counts[r * experts + e];
      }
    }
  Plan plan{layout, Routing::evenSplit(layout, counts)};
  validatePlan(plan, counts, {});

  for (int chunks : {1, 2, 5}) {
    SCOPED_TRACE(chunks);
    std::vector<TokenExchange> exchanges;
    for (int r = 0; r < ranks; ++r)
      exchanges.push_back(TokenExchange::build(plan, r, ranks, slots, experts,
                                               indices[r], hidden, chunks));
    for (int r = 0; r < ranks; ++r) {
      const TokenExchange &x = exchanges[r];
      // pairRow is a permutation of the send rows.
      std::vector<std::int64_t> rows = x.pairRow;
      std::sort(rows.begin(), rows.end());
      ASSERT_EQ(static_cast<std::int64_t>(rows.size()), tokens * topK);
      for (std::size_t i = 0; i < rows.size(); ++i)
        ASSERT_EQ(rows[i], static_cast<std::int64_t>(i));
      EXPECT_EQ(x.sendRows, tokens * topK);
      std::int64_t pairsInChunks = 0;
      for (int c = 0; c < chunks; ++c) {
        const ExchangeChunk &chunk = x.chunks[c];
        pairsInChunks += static_cast<std::int64_t>(chunk.pairs.size());
        EXPECT_EQ(static_cast<std::int64_t>(chunk.pairs.size()),
                  chunk.sendRows);
        for (std::int64_t pair : chunk.pairs) {
          EXPECT_GE(x.pairRow[pair], chunk.sendBegin);
          EXPECT_LT(x.pairRow[pair], chunk.sendBegin + chunk.sendRows);
        }
        EXPECT_EQ(chunk.sizes.totalSend(), chunk.sendRows * hidden);
        // What r sends q is what q expects from r.
        for (int q = 0; q < ranks; ++q)
          EXPECT_EQ(chunk.sizes.sendCounts[q],
                    exchanges[q].chunks[c].sizes.recvCounts[r])
              << "rank " << r << " to rank " << q << ", chunk " << c;
      }
      EXPECT_EQ(pairsInChunks, tokens * topK);
      // A slot receives, over all chunks and sources, what the routing
      // sends its replica; its rows are chunk-major and contiguous.
      for (int slot = 0; slot < slots; ++slot) {
        int replica = layout.replicaAt(r, slot);
        std::int64_t routed = 0;
        for (int source = 0; source < ranks; ++source)
          routed += replica < 0 ? 0 : plan.routing.at(source, replica);
        EXPECT_EQ(x.slotChunkBegin[slot].back(), routed);
        std::int64_t next = 0;
        for (int c = 0; c < chunks; ++c) {
          EXPECT_EQ(x.slotChunkBegin[slot][c], next);
          for (int source = 0; source < ranks; ++source) {
            const RecvBlock &block = x.chunks[c].blocks[source * slots + slot];
            EXPECT_EQ(block.slotRow, next);
            next += block.rows;
          }
        }
      }
    }
  }
}

} // namespace
