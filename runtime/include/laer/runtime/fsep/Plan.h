//===- Plan.h - expert layout and token routing of one MoE layer -*- C++
//-*-===//
//
// A plan says, for one MoE layer and one step, which experts each rank
// computes (the layout: C slots per rank, an expert may sit in several
// slots on different ranks = replicas) and how the tokens each source rank
// routes to an expert are split among that expert's replicas (the routing).
// FSEP makes any plan valid at no cost in persistent state: the planner may
// change it every step.
//
//===----------------------------------------------------------------------===//

#ifndef LAER_RUNTIME_FSEP_PLAN_H
#define LAER_RUNTIME_FSEP_PLAN_H

#include "laer/runtime/Error.h"

#include <cstdint>
#include <span>
#include <vector>

namespace laer::rt {

/// One copy of an expert in one slot of one rank.
struct Replica {
  int expert;
  int rank;
  int slot;
};

class Layout {
public:
  /// Marks a slot that computes nothing this step.
  static constexpr int kEmpty = -1;

  Layout() = default;
  /// `slots[rank * slotsPerRank + slot]` is an expert id or kEmpty. Throws
  /// RuntimeError (with `context`) when an id is out of range or an expert
  /// sits twice on one rank.
  Layout(int numRanks, int slotsPerRank, int numExperts, std::vector<int> slots,
         const ErrorContext &context = {});

  /// Slot (r, c) holds expert (r * C + c) mod E: every expert gets
  /// floor or ceil(N*C/E) replicas spread over the ranks. Needs N*C >= E.
  static Layout roundRobin(int numRanks, int slotsPerRank, int numExperts,
                           const ErrorContext &context = {});

  int numRanks() const { return numRanks_; }
  int slotsPerRank() const { return slotsPerRank_; }
  int numExperts() const { return numExperts_; }
  int expertAt(int rank, int slot) const {
    return slots_[rank * slotsPerRank_ + slot];
  }
  const std::vector<int> &slots() const { return slots_; }

  /// Every replica, ordered by expert, then rank.
  const std::vector<Replica> &replicas() const { return replicas_; }
  /// Indices into replicas() of the copies of `expert` (rank order).
  std::span<const int> replicasOf(int expert) const;
  /// Index into replicas() of slot (rank, slot), or -1 if it is empty.
  int replicaAt(int rank, int slot) const {
    return replicaOfSlot_[rank * slotsPerRank_ + slot];
  }
  /// Number of non-empty slots of `rank`.
  int usedSlots(int rank) const;

private:
  int numRanks_ = 0, slotsPerRank_ = 0, numExperts_ = 0;
  std::vector<int> slots_;
  std::vector<Replica> replicas_;
  std::vector<int> replicaOfSlot_;
  std::vector<int> replicaOrder_; // replicas_ indices grouped by expert
  std::vector<int> expertBegin_;  // E + 1 offsets into replicaOrder_
};

/// Token counts per (source rank, replica): how many of the source's
/// (token, choice) pairs for the replica's expert go to that replica.
/// Sparse rows (compressed sparse row storage): at scale (N = 1024 ranks,
/// 16k replicas) a source only talks to a few replicas of each expert.
class Routing {
public:
  struct Entry {
    int replica;
    std::int64_t tokens;
  };
  struct Triplet {
    int source;
    int replica;
    std::int64_t tokens;
  };

  Routing() = default;
  Routing(int numRanks, int numReplicas)
      : numReplicas_(numReplicas), rowStart_(numRanks + 1, 0) {}

  /// Splits every (source, expert) count evenly over the expert's replicas,
  /// the remainder going to replicas in rotation starting at the source.
  static Routing evenSplit(const Layout &layout,
                           std::span<const std::int64_t> counts);
  /// From unordered (source, replica, tokens) triplets; entries for the
  /// same (source, replica) are summed, zero entries dropped.
  static Routing fromTriplets(int numRanks, int numReplicas,
                              std::span<const Triplet> triplets);
  /// From rows already in order: row `source` is `entries[rowStart[source]
  /// .. rowStart[source + 1])`, by strictly increasing replica, tokens > 0
  /// (checked; what a planner that emits rows in order builds without a
  /// sort).
  static Routing fromRows(int numReplicas, std::vector<std::size_t> rowStart,
                          std::vector<Entry> entries);

  int numRanks() const { return static_cast<int>(rowStart_.size()) - 1; }
  int numReplicas() const { return numReplicas_; }
  /// Tokens `source` sends to `replica` (0 when there is no entry).
  std::int64_t at(int source, int replica) const;
  /// Sets one entry; O(entries), meant for tests and hand-made plans.
  void set(int source, int replica, std::int64_t tokens);
  void add(int source, int replica, std::int64_t tokens) {
    set(source, replica, at(source, replica) + tokens);
  }
  /// The non-zero entries of `source`, by increasing replica.
  std::span<const Entry> row(int source) const {
    return std::span<const Entry>(entries_).subspan(
        rowStart_[source], rowStart_[source + 1] - rowStart_[source]);
  }
  std::int64_t entries() const {
    return static_cast<std::int64_t>(entries_.size());
  }

private:
  int numReplicas_ = 0;
  std::vector<std::size_t> rowStart_;
  std::vector<Entry> entries_;
};

struct Plan {
  Layout layout;
  Routing routing;
  /// The layout depends only on what was known before this step's router
  /// ran (nothing, or the request's history), so an executor could start
  /// its restore ahead; cost models charge the others a restore that
  /// starts after the plan.
  bool layoutAhead = false;
};

/// Checks `plan` against the load it must serve: `counts[source * E + e]`
/// pairs that each source rank routes to expert e. Every expert with tokens
/// needs a replica, the routing must move exactly the counted tokens, and
/// no count may be negative. Throws RuntimeError naming `context`'s rank,
/// layer and step and the offending value.
void validatePlan(const Plan &plan, std::span<const std::int64_t> counts,
                  const ErrorContext &context);

/// Expert rows each rank computes under `plan` (tokens routed to the
/// replicas in its slots).
std::vector<std::int64_t> rowsPerRank(const Plan &plan);

/// The largest rank's rows over the mean (1 when nothing is routed): the
/// load imbalance the planner is there to remove.
double maxOverMeanRows(std::span<const std::int64_t> rows);

/// A hash of the plan, equal on every rank iff the plans are equal; used to
/// check that all ranks agree before any data moves.
std::uint64_t fingerprint(const Plan &plan);

} // namespace laer::rt

#endif // LAER_RUNTIME_FSEP_PLAN_H
