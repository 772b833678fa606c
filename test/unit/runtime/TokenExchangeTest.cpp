//===- TokenExchangeTest.cpp - the token all-to-alls derived from a plan --===//
//
// Every rank derives its exchange from the shared plan alone; these tests
// check that the ranks' tables fit together: what p sends q in a chunk is
// what q expects from p, every pair has its own send row, and the rows
// that reach a slot are the ones the routing sends its replica.
//
//===----------------------------------------------------------------------===//

#include "laer/runtime/fsep/TokenExchange.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <span>

using namespace laer::rt;

namespace {

constexpr int ranks = 3, slots = 3, experts = 6, topK = 2;
constexpr std::int64_t hidden = 4, tokens = 41;

/// Three ranks whose routers favour expert 0, which has three replicas
/// (1 has two, the others one each), tokens split evenly over replicas.
struct SkewedStep {
  Layout layout{ranks, slots, experts, {0, 1, 2, 0, 3, 1, 0, 4, 5}};
  std::vector<std::vector<std::int32_t>> indices =
      std::vector<std::vector<std::int32_t>>(ranks);
  std::vector<std::int64_t> counts =
      std::vector<std::int64_t>(ranks * experts, 0);
  Plan plan;

  SkewedStep() {
    std::mt19937 rng(3);
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
    plan = Plan{layout, Routing::evenSplit(layout, counts)};
    validatePlan(plan, counts, {});
  }
  std::vector<TokenExchange> exchanges(int chunks) const {
    std::vector<TokenExchange> result;
    for (int r = 0; r < ranks; ++r)
      result.push_back(TokenExchange::build(plan, r, ranks, slots, experts,
                                            indices[r], hidden, chunks));
    return result;
  }
};

TEST(TokenExchange, RanksAgreeAndEveryPairHasOneRow) {
  SkewedStep step;
  const Layout &layout = step.layout;
  const Plan &plan = step.plan;

  for (int chunks : {1, 2, 5}) {
    SCOPED_TRACE(chunks);
    std::vector<TokenExchange> exchanges = step.exchanges(chunks);
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

/// A row of the test's buffers: which rank's which pair it carries.
struct Tag {
  std::int32_t rank = -1, pair = -1;
  bool operator==(const Tag &) const = default;
};

template <typename T>
std::vector<T> gather(const std::vector<T> &src,
                      std::span<const std::int32_t> table) {
  std::vector<T> dst;
  for (std::int32_t i : table)
    dst.push_back(src.at(static_cast<std::size_t>(i)));
  return dst;
}

/// One chunk's all-to-all between the ranks' buffers, in rows, in the
/// dispatch (send layout -> receive layout) or combine direction.
void exchangeChunk(const std::vector<TokenExchange> &x, int c, bool dispatch,
                   const std::vector<std::vector<Tag>> &from,
                   std::vector<std::vector<Tag>> &to,
                   const std::vector<ExchangeGathers> &g) {
  for (int p = 0; p < ranks; ++p)
    for (int q = 0; q < ranks; ++q) {
      const AllToAllSizes &ps = x[p].chunks[c].sizes,
                          &qs = x[q].chunks[c].sizes;
      // The dispatch direction sends from p's send layout to q's receive
      // layout; the combine from p's receive layout back to q's send layout.
      std::int64_t fromRow =
          dispatch ? x[p].chunks[c].sendBegin + ps.sendOffsets[q] / hidden
                   : g[p].chunkRowBegin[c] + ps.recvOffsets[q] / hidden;
      std::int64_t toRow =
          dispatch ? g[q].chunkRowBegin[c] + qs.recvOffsets[p] / hidden
                   : x[q].chunks[c].sendBegin + qs.sendOffsets[p] / hidden;
      std::int64_t rows =
          (dispatch ? ps.sendCounts[q] : ps.recvCounts[q]) / hidden;
      for (std::int64_t i = 0; i < rows; ++i)
        to[q].at(toRow + i) = from[p].at(fromRow + i);
    }
}

TEST(TokenExchange, GathersCarryEveryPairToItsSlotAndBack) {
  SkewedStep step;
  for (int chunks : {1, 3}) {
    SCOPED_TRACE(chunks);
    std::vector<TokenExchange> x = step.exchanges(chunks);
    std::vector<ExchangeGathers> g;
    for (const TokenExchange &e : x)
      g.push_back(e.gathers(slots));

    // Dispatch: send rows gathered from the pairs, the chunks exchanged,
    // receive rows gathered into the expert layout.
    std::vector<std::vector<Tag>> send(ranks), recv(ranks);
    for (int r = 0; r < ranks; ++r) {
      std::vector<Tag> pairs;
      for (std::size_t pair = 0; pair < step.indices[r].size(); ++pair)
        pairs.push_back({r, static_cast<std::int32_t>(pair)});
      send[r] = gather(pairs, g[r].sendPair);
      recv[r].assign(static_cast<std::size_t>(g[r].chunkRowBegin.back()), {});
    }
    for (int c = 0; c < chunks; ++c)
      exchangeChunk(x, c, /*dispatch=*/true, send, recv, g);

    for (int r = 0; r < ranks; ++r) {
      std::vector<Tag> expert = gather(recv[r], g[r].expertFromRecv);
      ASSERT_EQ(gather(expert, g[r].recvFromExpert), recv[r]);
      for (int slot = 0; slot < slots; ++slot) {
        // The (chunk, slot) blocks, one after another, are the slot's rows
        // as the CPU layer lays them out from the RecvBlocks.
        std::vector<Tag> viaBlocks(
            static_cast<std::size_t>(x[r].slotChunkBegin[slot].back()));
        std::vector<Tag> viaGathers;
        for (int c = 0; c < chunks; ++c) {
          for (int source = 0; source < ranks; ++source) {
            const RecvBlock &b = x[r].chunks[c].blocks[source * slots + slot];
            for (std::int64_t i = 0; i < b.rows; ++i)
              viaBlocks[b.slotRow + i] =
                  recv[r][g[r].chunkRowBegin[c] + b.offset + i];
          }
          viaGathers.insert(viaGathers.end(),
                            expert.begin() + g[r].blockBegin[c * slots + slot],
                            expert.begin() +
                                g[r].blockBegin[c * slots + slot + 1]);
        }
        EXPECT_EQ(viaGathers, viaBlocks) << "rank " << r << ", slot " << slot;
        // Every row is a pair its source routed to this slot's expert, and
        // each source sends the slot's replica its routed share.
        int replica = step.layout.replicaAt(r, slot);
        std::vector<std::int64_t> fromSource(ranks, 0);
        for (const Tag &tag : viaGathers) {
          ASSERT_GE(tag.rank, 0);
          EXPECT_EQ(step.indices[tag.rank][tag.pair],
                    step.layout.expertAt(r, slot));
          ++fromSource[tag.rank];
        }
        for (int source = 0; source < ranks; ++source)
          EXPECT_EQ(fromSource[source],
                    replica < 0 ? 0 : step.plan.routing.at(source, replica));
      }
    }

    // Combine: the expert rows gathered back into the receive layout and
    // returned; every pair's row comes home to its pairRow.
    std::vector<std::vector<Tag>> back(ranks), home(ranks);
    for (int r = 0; r < ranks; ++r) {
      back[r] =
          gather(gather(recv[r], g[r].expertFromRecv), g[r].recvFromExpert);
      home[r].assign(send[r].size(), {});
    }
    for (int c = 0; c < chunks; ++c)
      exchangeChunk(x, c, /*dispatch=*/false, back, home, g);
    for (int r = 0; r < ranks; ++r)
      for (std::size_t pair = 0; pair < step.indices[r].size(); ++pair)
        ASSERT_EQ(home[r][g[r].pairRow[pair]],
                  (Tag{r, static_cast<std::int32_t>(pair)}))
            << "rank " << r << ", pair " << pair;
  }
}

} // namespace
