//===- TokenExchange.cpp - one rank's token all-to-alls of a step ---------===//

#include "laer/runtime/fsep/TokenExchange.h"

#include <algorithm>
#include <limits>

using namespace laer::rt;

TokenExchange TokenExchange::build(const Plan &plan, int me, int ranks,
                                   int slots, int numExperts,
                                   std::span<const std::int32_t> indices,
                                   std::int64_t hidden, int chunks) {
  const Layout &layout = plan.layout;
  const Routing &routing = plan.routing;
  auto replicaCount = layout.replicas().size();
  auto chunkBegin = [chunks](std::int64_t n, int c) { return n * c / chunks; };
  TokenExchange exchange;
  exchange.chunks.resize(static_cast<std::size_t>(chunks));

  // My row of the routing, dense: what I send to each replica.
  std::vector<std::int64_t> toReplica(replicaCount, 0);
  for (const Routing::Entry &entry : routing.row(me))
    toReplica[entry.replica] = entry.tokens;
  // Send layout: where chunk c's sub-block for each replica starts.
  std::vector<std::int64_t> subStart(chunks * replicaCount, 0);
  std::int64_t row = 0;
  for (int c = 0; c < chunks; ++c) {
    ExchangeChunk &chunk = exchange.chunks[c];
    chunk.sendBegin = row;
    std::vector<std::int64_t> sendRows(ranks, 0), recvRows(ranks, 0);
    for (int peer = 0; peer < ranks; ++peer)
      for (int slot = 0; slot < slots; ++slot) {
        int replica = layout.replicaAt(peer, slot);
        if (replica < 0)
          continue;
        std::int64_t n = toReplica[replica];
        std::int64_t rows = chunkBegin(n, c + 1) - chunkBegin(n, c);
        subStart[c * replicaCount + replica] = row;
        row += rows;
        sendRows[peer] += rows * hidden;
      }
    chunk.sendRows = row - chunk.sendBegin;
    // What arrives: for each source, the sub-blocks of each of my slots.
    chunk.blocks.assign(static_cast<std::size_t>(ranks * slots), {});
    std::int64_t offset = 0;
    for (int peer = 0; peer < ranks; ++peer)
      for (int slot = 0; slot < slots; ++slot) {
        int replica = layout.replicaAt(me, slot);
        std::int64_t n = replica < 0 ? 0 : routing.at(peer, replica);
        RecvBlock &block = chunk.blocks[peer * slots + slot];
        block.offset = offset;
        block.rows = chunkBegin(n, c + 1) - chunkBegin(n, c);
        offset += block.rows;
        recvRows[peer] += block.rows * hidden;
      }
    chunk.sizes = AllToAllSizes::packed(sendRows, recvRows);
  }
  exchange.sendRows = row;

  // Slots: chunk-major rows, each chunk's sources in rank order.
  exchange.slotChunkBegin.resize(static_cast<std::size_t>(slots));
  for (int slot = 0; slot < slots; ++slot) {
    std::vector<std::int64_t> &begin = exchange.slotChunkBegin[slot];
    begin.assign(static_cast<std::size_t>(chunks + 1), 0);
    std::int64_t slotRow = 0;
    for (int c = 0; c < chunks; ++c) {
      begin[c] = slotRow;
      for (int peer = 0; peer < ranks; ++peer) {
        RecvBlock &block = exchange.chunks[c].blocks[peer * slots + slot];
        block.slotRow = slotRow;
        slotRow += block.rows;
      }
    }
    begin[chunks] = slotRow;
  }

  // Pairs fill their expert's replicas in replica order, each up to the
  // routed share; within a block, position i belongs to the chunk whose
  // range holds it.
  exchange.pairRow.assign(indices.size(), -1);
  std::vector<std::int64_t> filled(replicaCount, 0);
  std::vector<std::size_t> cursor(numExperts, 0);
  for (std::size_t pair = 0; pair < indices.size(); ++pair) {
    int expert = indices[pair];
    std::span<const int> replicas = layout.replicasOf(expert);
    std::size_t &cur = cursor[expert];
    while (cur < replicas.size() &&
           filled[replicas[cur]] == toReplica[replicas[cur]])
      ++cur;
    // validatePlan guarantees the shares add up to the pairs counted.
    int replica = replicas[cur];
    std::int64_t i = filled[replica]++, n = toReplica[replica];
    int c = 0;
    while (i >= chunkBegin(n, c + 1))
      ++c;
    exchange.pairRow[pair] =
        subStart[c * replicaCount + replica] + i - chunkBegin(n, c);
    exchange.chunks[c].pairs.push_back(static_cast<std::int64_t>(pair));
  }
  return exchange;
}

ExchangeGathers TokenExchange::gathers(int slots) const {
  auto chunkCount = static_cast<int>(chunks.size());
  int ranks = chunkCount == 0
                  ? 0
                  : static_cast<int>(chunks.front().blocks.size()) / slots;
  std::int64_t recvRows = 0;
  for (const ExchangeChunk &chunk : chunks)
    for (const RecvBlock &block : chunk.blocks)
      recvRows += block.rows;
  constexpr std::int64_t kMaxRows = std::numeric_limits<std::int32_t>::max();
  if (sendRows > kMaxRows || recvRows > kMaxRows)
    fail({}, "a step's token exchange has ", std::max(sendRows, recvRows),
         " rows; row gathers address at most ", kMaxRows);

  ExchangeGathers g;
  g.pairRow.resize(pairRow.size());
  g.sendPair.assign(static_cast<std::size_t>(sendRows), -1);
  for (std::size_t pair = 0; pair < pairRow.size(); ++pair) {
    g.pairRow[pair] = static_cast<std::int32_t>(pairRow[pair]);
    g.sendPair[static_cast<std::size_t>(pairRow[pair])] =
        static_cast<std::int32_t>(pair);
  }

  g.chunkRowBegin.assign(static_cast<std::size_t>(chunkCount + 1), 0);
  g.blockBegin.assign(static_cast<std::size_t>(chunkCount * slots + 1), 0);
  g.expertFromRecv.assign(static_cast<std::size_t>(recvRows), -1);
  g.recvFromExpert.assign(static_cast<std::size_t>(recvRows), -1);
  std::int64_t row = 0;
  for (int c = 0; c < chunkCount; ++c) {
    const ExchangeChunk &chunk = chunks[c];
    std::int64_t chunkBegin = row;
    g.chunkRowBegin[c] = chunkBegin;
    for (int slot = 0; slot < slots; ++slot) {
      g.blockBegin[c * slots + slot] = row;
      for (int source = 0; source < ranks; ++source) {
        const RecvBlock &block = chunk.blocks[source * slots + slot];
        for (std::int64_t i = 0; i < block.rows; ++i, ++row) {
          std::int64_t recv = chunkBegin + block.offset + i;
          g.expertFromRecv[row] = static_cast<std::int32_t>(recv);
          g.recvFromExpert[recv] = static_cast<std::int32_t>(row);
        }
      }
    }
  }
  g.chunkRowBegin[chunkCount] = row;
  g.blockBegin[chunkCount * slots] = row;
  return g;
}
