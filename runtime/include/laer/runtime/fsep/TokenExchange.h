//===- TokenExchange.h - one rank's token all-to-alls of a step -*- C++ -*-===//
//
// Where every (token, choice) pair of a rank travels in a step, derived
// from the plan alone (every rank holds it, so no sizes are exchanged):
// - the rows a rank sends to replica r form a block, in pair order; chunk
//   c of K carries rows [n c / K, n (c + 1) / K) of every block;
// - in a chunk a rank sends to peer q the sub-blocks for q's slots in slot
//   order, and receives, per source peer, the sub-blocks for each of its
//   own slots in slot order;
// - a slot's rows are kept chunk-major (chunk, then source), so each
//   chunk's rows of a slot are contiguous for the expert GEMMs.
// The combine direction is the exact reverse. The CPU layer moves rows
// with these tables on the host; the GPU layer moves them with row gathers
// by the index tables of `gathers()`.
//
//===----------------------------------------------------------------------===//

#ifndef LAER_RUNTIME_FSEP_TOKENEXCHANGE_H
#define LAER_RUNTIME_FSEP_TOKENEXCHANGE_H

#include "laer/runtime/comm/Communicator.h"
#include "laer/runtime/fsep/Plan.h"

#include <cstdint>
#include <span>
#include <vector>

namespace laer::rt {

/// Where chunk c's rows of one (source, slot) block sit.
struct RecvBlock {
  std::int64_t offset = 0; // row in the chunk's receive buffer
  std::int64_t rows = 0;
  std::int64_t slotRow = 0; // row in the slot's buffers
};

/// The token exchange of one chunk.
struct ExchangeChunk {
  std::int64_t sendBegin = 0, sendRows = 0; // rows, send layout
  AllToAllSizes sizes;                      // elements, dispatch direction
  std::vector<RecvBlock> blocks;            // [source * C + slot]
  std::vector<std::int64_t> pairs;          // pairs in this chunk
};

/// The same exchange as row gathers (dst[i] = src[table[i]]), for a device
/// that moves rows with one kernel per buffer rather than block copies.
/// The receive buffer holds the chunks one after another, each laid out as
/// its RecvBlocks say (source, then slot); the expert buffer holds the
/// same rows chunk-major, then slot, then source, so every (chunk, slot)
/// block is contiguous for the GEMMs and holds the rows the CPU layer
/// gives that slot for that chunk, in the same order.
struct ExchangeGathers {
  /// Send row i carries the token of pair sendPair[i] (the inverse of
  /// pairRow).
  std::vector<std::int32_t> sendPair;
  /// Send row of each pair (TokenExchange::pairRow, 32-bit).
  std::vector<std::int32_t> pairRow;
  /// Rows of chunk c in the receive and the expert buffers: [chunks + 1].
  std::vector<std::int64_t> chunkRowBegin;
  /// Expert rows of (chunk c, slot s) start at blockBegin[c * C + s];
  /// [chunks * C + 1].
  std::vector<std::int64_t> blockBegin;
  /// Expert row j holds receive row expertFromRecv[j] ...
  std::vector<std::int32_t> expertFromRecv;
  /// ... and receive row i holds expert row recvFromExpert[i].
  std::vector<std::int32_t> recvFromExpert;
};

struct TokenExchange {
  std::vector<ExchangeChunk> chunks;
  /// Row of each (token, choice) pair in the send layout: chunk-major,
  /// then destination rank, then slot.
  std::vector<std::int64_t> pairRow;
  std::int64_t sendRows = 0;
  /// Per slot: the row where each chunk's rows begin, and the total
  /// ([chunks + 1]).
  std::vector<std::vector<std::int64_t>> slotChunkBegin;

  /// The exchange of rank `rank` of `ranks` whose router chose `indices`
  /// ([tokens * topK], expert ids), in `chunks` chunks of rows of `hidden`
  /// elements. The plan must have been validated against these counts.
  static TokenExchange build(const Plan &plan, int rank, int ranks,
                             int slotsPerRank, int numExperts,
                             std::span<const std::int32_t> indices,
                             std::int64_t hidden, int chunks);

  /// The row gathers that carry out this exchange (C = `slotsPerRank`).
  /// Fails when a buffer has more rows than 32-bit indices address.
  ExchangeGathers gathers(int slotsPerRank) const;
};

} // namespace laer::rt

#endif // LAER_RUNTIME_FSEP_TOKENEXCHANGE_H
