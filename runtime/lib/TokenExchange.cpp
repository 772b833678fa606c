//===- TokenExchange.cpp - one rank's token all-to-alls of a step ---------===//

#include "laer/runtime/TokenExchange.h"

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
