//===- TokenSplit.h - the best split of tokens among replicas --*- C++ -*-===//
//
// Given a layout (which ranks compute which experts) and each expert's
// tokens, how many tokens each replica takes so that the busiest rank
// computes as few rows as possible. The layout fixes the bipartite graph
// experts -> ranks; the split is a maximum flow through it with every rank
// capped at T, and the smallest T that routes every token is found exactly
// by raising T from a lower bound by the deficit over the ranks that block
// it (each raise is itself a lower bound, so it never overshoots). The
// flow minimises compute only: where tokens come from, and so the token
// traffic, is left to the routing that fills the shares.
//
//===----------------------------------------------------------------------===//

#ifndef LAER_PLANNER_TOKENSPLIT_H
#define LAER_PLANNER_TOKENSPLIT_H

#include "laer/runtime/fsep/Plan.h"

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

namespace laer::planner {

struct TokenSplit {
  /// Tokens of each replica (indexed like layout.replicas()); integers
  /// summing to each expert's load.
  std::vector<std::int64_t> shares;
  /// The busiest rank's rows: the least any split of this layout achieves.
  std::int64_t maxRankRows = 0;
};

/// The split minimising the busiest rank's rows for `loads[e]` tokens of
/// expert e. Fails (rt::RuntimeError) when an expert with tokens has no
/// replica or a load is negative.
TokenSplit optimalTokenSplit(const rt::Layout &layout,
                             std::span<const std::int64_t> loads);

/// A split from `start` (shares indexed like layout.replicas()) whose
/// busiest rank takes at most `cap` rows: only the tokens above the cap
/// move, from the ranks that exceed it along replicas of shared experts to
/// ranks below it, so a split that keeps tokens near their source keeps
/// most of that. nullopt when no split of the layout reaches `cap`.
std::optional<TokenSplit>
rebalanceTokenSplit(const rt::Layout &layout,
                    std::span<const std::int64_t> start, std::int64_t cap);

} // namespace laer::planner

#endif // LAER_PLANNER_TOKENSPLIT_H
