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
// with these tables on the host; a GPU layer gathers by `pairRow`.
//
//===----------------------------------------------------------------------===//

#ifndef LAER_RUNTIME_TOKENEXCHANGE_H
#define LAER_RUNTIME_TOKENEXCHANGE_H

#include "laer/runtime/Communicator.h"
#include "laer/runtime/Plan.h"

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
};

} // namespace laer::rt

#endif // LAER_RUNTIME_TOKENEXCHANGE_H
