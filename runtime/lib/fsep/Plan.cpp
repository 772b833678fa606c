//===- Plan.cpp - expert layout and token routing -------------------------===//

#include "laer/runtime/fsep/Plan.h"

#include <algorithm>
#include <numeric>

using namespace laer::rt;

Layout::Layout(int numRanks, int slotsPerRank, int numExperts,
               std::vector<int> slots, const ErrorContext &context)
    : numRanks_(numRanks), slotsPerRank_(slotsPerRank), numExperts_(numExperts),
      slots_(std::move(slots)) {
  if (numRanks < 1 || slotsPerRank < 1 || numExperts < 1)
    fail(context,
         "layout needs N >= 1 ranks, C >= 1 slots and E >= 1 "
         "experts, got N = ",
         numRanks, ", C = ", slotsPerRank, ", E = ", numExperts);
  std::size_t expected = static_cast<std::size_t>(numRanks) * slotsPerRank;
  if (slots_.size() != expected)
    fail(context, "layout has ", slots_.size(),
         " slots but N * C = ", expected);
  replicaOfSlot_.assign(expected, -1);
  std::vector<int> perExpert(numExperts, 0);
  for (int rank = 0; rank < numRanks; ++rank) {
    for (int slot = 0; slot < slotsPerRank; ++slot) {
      int expert = expertAt(rank, slot);
      if (expert == kEmpty)
        continue;
      if (expert < 0 || expert >= numExperts)
        fail(context, "layout slot ", slot, " of rank ", rank, " holds expert ",
             expert, ", outside [0, ", numExperts, ")");
      for (int other = 0; other < slot; ++other)
        if (expertAt(rank, other) == expert)
          fail(context, "layout puts expert ", expert, " twice on rank ", rank,
               " (slots ", other, " and ", slot, ")");
      ++perExpert[expert];
    }
  }
  // Replicas ordered by expert, then rank: the order every rank uses to
  // walk routings, so it must not depend on anything but the slots.
  expertBegin_.assign(numExperts + 1, 0);
  for (int e = 0; e < numExperts; ++e)
    expertBegin_[e + 1] = expertBegin_[e] + perExpert[e];
  std::vector<int> next(expertBegin_.begin(), expertBegin_.end() - 1);
  replicas_.resize(expertBegin_[numExperts]);
  for (int rank = 0; rank < numRanks; ++rank)
    for (int slot = 0; slot < slotsPerRank; ++slot)
      if (int expert = expertAt(rank, slot); expert != kEmpty)
        replicas_[next[expert]++] = Replica{expert, rank, slot};
  for (int index = 0; index < static_cast<int>(replicas_.size()); ++index) {
    const Replica &replica = replicas_[index];
    replicaOfSlot_[replica.rank * slotsPerRank + replica.slot] = index;
  }
  replicaOrder_.resize(replicas_.size());
  std::iota(replicaOrder_.begin(), replicaOrder_.end(), 0);
}

Layout Layout::roundRobin(int numRanks, int slotsPerRank, int numExperts,
                          const ErrorContext &context) {
  if (static_cast<long>(numRanks) * slotsPerRank < numExperts)
    fail(context, "round-robin layout needs N * C >= E, got N = ", numRanks,
         ", C = ", slotsPerRank, ", E = ", numExperts);
  std::vector<int> slots(static_cast<std::size_t>(numRanks) * slotsPerRank);
  for (std::size_t i = 0; i < slots.size(); ++i)
    slots[i] = static_cast<int>(i % numExperts);
  // With C > E / N a rank could receive the same expert twice; then its
  // duplicate slots stay empty.
  for (int rank = 0; rank < numRanks; ++rank)
    for (int slot = 0; slot < slotsPerRank; ++slot)
      for (int other = 0; other < slot; ++other)
        if (slots[rank * slotsPerRank + other] ==
            slots[rank * slotsPerRank + slot])
          slots[rank * slotsPerRank + slot] = kEmpty;
  return Layout(numRanks, slotsPerRank, numExperts, std::move(slots), context);
}

std::span<const int> Layout::replicasOf(int expert) const {
  return std::span<const int>(replicaOrder_)
      .subspan(expertBegin_[expert],
               expertBegin_[expert + 1] - expertBegin_[expert]);
}

int Layout::usedSlots(int rank) const {
  int used = 0;
  for (int slot = 0; slot < slotsPerRank_; ++slot)
    used += expertAt(rank, slot) != kEmpty;
  return used;
}

std::int64_t Routing::at(int source, int replica) const {
  std::span<const Entry> entries = row(source);
  auto it = std::lower_bound(
      entries.begin(), entries.end(), replica,
      [](const Entry &entry, int r) { return entry.replica < r; });
  return it != entries.end() && it->replica == replica ? it->tokens : 0;
}

void Routing::set(int source, int replica, std::int64_t tokens) {
  auto begin =
      entries_.begin() + static_cast<std::ptrdiff_t>(rowStart_[source]);
  auto end =
      entries_.begin() + static_cast<std::ptrdiff_t>(rowStart_[source + 1]);
  auto it =
      std::lower_bound(begin, end, replica, [](const Entry &entry, int r) {
        return entry.replica < r;
      });
  std::ptrdiff_t shift = 0;
  if (it != end && it->replica == replica) {
    if (tokens != 0) {
      it->tokens = tokens;
      return;
    }
    entries_.erase(it);
    shift = -1;
  } else {
    if (tokens == 0)
      return;
    entries_.insert(it, Entry{replica, tokens});
    shift = 1;
  }
  for (std::size_t r = source + 1; r < rowStart_.size(); ++r)
    rowStart_[r] += shift;
}

namespace {

/// Sorts `row` by replica. Planners emit rows nearly sorted (expert by
/// expert, a few entries out of place inside one expert), where insertion
/// sort is linear; a row that needs many moves falls back to std::sort.
void sortRow(std::span<Routing::Entry> row) {
  auto byReplica = [](const Routing::Entry &a, const Routing::Entry &b) {
    return a.replica < b.replica;
  };
  std::size_t budget = 4 * row.size() + 16;
  for (std::size_t i = 1; i < row.size(); ++i) {
    Routing::Entry entry = row[i];
    std::size_t j = i;
    while (j > 0 && entry.replica < row[j - 1].replica) {
      row[j] = row[j - 1];
      --j;
      if (--budget == 0) {
        row[j] = entry;
        std::sort(row.begin(), row.end(), byReplica);
        return;
      }
    }
    row[j] = entry;
  }
}

} // namespace

Routing Routing::fromTriplets(int numRanks, int numReplicas,
                              std::span<const Triplet> triplets) {
  Routing routing(numRanks, numReplicas);
  // Counting sort by source straight into the entries, then each row by
  // replica, merging repeats and dropping zeros in place.
  std::vector<std::size_t> &starts = routing.rowStart_;
  for (const Triplet &t : triplets)
    ++starts[t.source + 1];
  for (int source = 0; source < numRanks; ++source)
    starts[source + 1] += starts[source];
  std::vector<Entry> &entries = routing.entries_;
  entries.resize(triplets.size());
  std::vector<std::size_t> next(starts.begin(), starts.end() - 1);
  for (const Triplet &t : triplets)
    entries[next[t.source]++] = Entry{t.replica, t.tokens};
  std::size_t kept = 0;
  for (int source = 0; source < numRanks; ++source) {
    std::span<Entry> row(entries.data() + starts[source],
                         starts[source + 1] - starts[source]);
    sortRow(row);
    starts[source] = kept;
    std::size_t rowBegin = kept;
    for (const Entry &entry : row) {
      if (kept > rowBegin && entries[kept - 1].replica == entry.replica)
        entries[kept - 1].tokens += entry.tokens;
      else
        entries[kept++] = entry;
    }
    // Drop zero entries of this row (a merge may have made one).
    kept = static_cast<std::size_t>(
        std::remove_if(entries.begin() + static_cast<std::ptrdiff_t>(rowBegin),
                       entries.begin() + static_cast<std::ptrdiff_t>(kept),
                       [](const Entry &entry) { return entry.tokens == 0; }) -
        entries.begin());
  }
  starts[numRanks] = kept;
  entries.resize(kept);
  return routing;
}

Routing Routing::fromRows(int numReplicas, std::vector<std::size_t> rowStart,
                          std::vector<Entry> entries) {
  if (rowStart.empty() || rowStart.front() != 0 ||
      rowStart.back() != entries.size())
    fail({}, "routing rows: the row offsets must run from 0 to the ",
         entries.size(), " entries");
  for (std::size_t source = 0; source + 1 < rowStart.size(); ++source) {
    if (rowStart[source + 1] < rowStart[source])
      fail({}, "routing rows: row ", source, " ends before it starts");
    for (std::size_t i = rowStart[source]; i < rowStart[source + 1]; ++i) {
      const Entry &entry = entries[i];
      if (entry.replica < 0 || entry.replica >= numReplicas ||
          entry.tokens <= 0 ||
          (i > rowStart[source] && entries[i - 1].replica >= entry.replica))
        fail({}, "routing rows: row ", source, " entry ", i - rowStart[source],
             " (replica ", entry.replica, ", ", entry.tokens,
             " tokens) is out of order, out of range or empty");
    }
  }
  Routing routing;
  routing.numReplicas_ = numReplicas;
  routing.rowStart_ = std::move(rowStart);
  routing.entries_ = std::move(entries);
  return routing;
}

Routing Routing::evenSplit(const Layout &layout,
                           std::span<const std::int64_t> counts) {
  int numRanks = layout.numRanks(), numExperts = layout.numExperts();
  Routing routing(numRanks, static_cast<int>(layout.replicas().size()));
  for (int source = 0; source < numRanks; ++source) {
    // Replica indices grow with the expert, so appending keeps rows sorted.
    for (int expert = 0; expert < numExperts; ++expert) {
      std::span<const int> replicas = layout.replicasOf(expert);
      std::int64_t count =
          counts[static_cast<std::size_t>(source) * numExperts + expert];
      if (replicas.empty() || count == 0)
        continue;
      auto copies = static_cast<std::int64_t>(replicas.size());
      for (std::int64_t i = 0; i < copies; ++i) {
        std::int64_t share =
            count / copies +
            ((i - source % copies + copies) % copies < count % copies);
        if (share != 0)
          routing.entries_.push_back(Entry{replicas[i], share});
      }
    }
    routing.rowStart_[source + 1] = routing.entries_.size();
  }
  return routing;
}

void laer::rt::validatePlan(const Plan &plan,
                            std::span<const std::int64_t> counts,
                            const ErrorContext &context) {
  const Layout &layout = plan.layout;
  const Routing &routing = plan.routing;
  int numRanks = layout.numRanks(), numExperts = layout.numExperts();
  std::size_t expected = static_cast<std::size_t>(numRanks) * numExperts;
  if (counts.size() != expected)
    fail(context, "load counts have ", counts.size(),
         " entries but N * E = ", expected);
  auto replicaCount = static_cast<int>(layout.replicas().size());
  if (routing.numRanks() != numRanks || routing.numReplicas() != replicaCount)
    fail(context, "routing is for ", routing.numRanks(), " ranks and ",
         routing.numReplicas(), " replicas but the layout has ", numRanks,
         " ranks and ", replicaCount, " replicas");
  std::vector<std::int64_t> total(numExperts, 0);
  for (int source = 0; source < numRanks; ++source) {
    for (int expert = 0; expert < numExperts; ++expert) {
      std::int64_t count =
          counts[static_cast<std::size_t>(source) * numExperts + expert];
      if (count < 0)
        fail(context, "source rank ", source, " routes ", count,
             " tokens to expert ", expert);
      total[expert] += count;
    }
  }
  for (int expert = 0; expert < numExperts; ++expert)
    if (total[expert] > 0 && layout.replicasOf(expert).empty())
      fail(context, "expert ", expert, " receives ", total[expert],
           " tokens but the layout gives it no replica");
  std::vector<std::int64_t> routed(numExperts);
  for (int source = 0; source < numRanks; ++source) {
    std::fill(routed.begin(), routed.end(), 0);
    for (const Routing::Entry &entry : routing.row(source)) {
      if (entry.replica < 0 || entry.replica >= replicaCount)
        fail(context, "routing of source rank ", source, " names replica ",
             entry.replica, ", outside [0, ", replicaCount, ")");
      const Replica &replica = layout.replicas()[entry.replica];
      if (entry.tokens < 0)
        fail(context, "routing sends ", entry.tokens, " tokens of source rank ",
             source, " to replica of expert ", replica.expert, " on rank ",
             replica.rank);
      routed[replica.expert] += entry.tokens;
    }
    for (int expert = 0; expert < numExperts; ++expert) {
      std::int64_t count =
          counts[static_cast<std::size_t>(source) * numExperts + expert];
      if (routed[expert] != count)
        fail(context, "routing sends ", routed[expert],
             " tokens of source rank ", source, " to the replicas of expert ",
             expert, " but rank ", source, " routes ", count, " tokens to it");
    }
  }
}

std::vector<std::int64_t> laer::rt::rowsPerRank(const Plan &plan) {
  std::vector<std::int64_t> rows(plan.layout.numRanks(), 0);
  const std::vector<Replica> &replicas = plan.layout.replicas();
  for (int source = 0; source < plan.routing.numRanks(); ++source)
    for (const Routing::Entry &entry : plan.routing.row(source))
      rows[replicas[entry.replica].rank] += entry.tokens;
  return rows;
}

double laer::rt::maxOverMeanRows(std::span<const std::int64_t> rows) {
  double total = 0, max = 0;
  for (std::int64_t r : rows) {
    total += static_cast<double>(r);
    max = std::max(max, static_cast<double>(r));
  }
  return total > 0 ? max * static_cast<double>(rows.size()) / total : 1.0;
}

std::uint64_t laer::rt::fingerprint(const Plan &plan) {
  // FNV-1a over the dimensions, the slots and the routing.
  std::uint64_t hash = 1469598103934665603ull;
  auto mix = [&](std::int64_t value) {
    for (int byte = 0; byte < 8; ++byte) {
      hash ^= static_cast<std::uint64_t>(value >> (8 * byte)) & 0xff;
      hash *= 1099511628211ull;
    }
  };
  mix(plan.layout.numRanks());
  mix(plan.layout.slotsPerRank());
  mix(plan.layout.numExperts());
  for (int expert : plan.layout.slots())
    mix(expert);
  for (int source = 0; source < plan.routing.numRanks(); ++source) {
    mix(-source - 1); // row separator
    for (const Routing::Entry &entry : plan.routing.row(source)) {
      mix(entry.replica);
      mix(entry.tokens);
    }
  }
  return hash;
}
