//===- Limits.h - the largest jobs the runtime runs -------------*- C++ -*-===//
//
// Upper bounds the runtime enforces on what sizes a job: every int the
// runtime keeps a rank, slot or chunk count in stays far from overflow
// when products of them index a table (N * C <= 2^28). The compiler's
// FSEP limits (laer/Conversion/FSEPLimits.h) are the same numbers; a unit
// test keeps them equal.
//
//===----------------------------------------------------------------------===//

#ifndef LAER_RUNTIME_LIMITS_H
#define LAER_RUNTIME_LIMITS_H

#include <cstdint>

namespace laer::rt {

/// Ranks of a job.
constexpr std::int64_t kMaxRanks = 65536;
/// Experts each rank restores and computes per step (C).
constexpr std::int64_t kMaxSlotsPerRank = 4096;
/// Chunks of a layer's token exchanges.
constexpr std::int64_t kMaxTokenChunks = 1024;
/// Tokens of one sequence (laer-train's --sequence, a model's sequence).
constexpr std::int64_t kMaxSequence = std::int64_t{1} << 24;

} // namespace laer::rt

#endif // LAER_RUNTIME_LIMITS_H
