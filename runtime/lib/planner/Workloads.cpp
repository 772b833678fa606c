//===- Workloads.cpp - routing workloads for planners and simulators ------===//

#include "laer/planner/Workloads.h"

#include "laer/runtime/Error.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <fstream>
#include <numeric>

using namespace laer;
using namespace laer::planner;

namespace {

constexpr const char *kNames[] = {"uniform", "zipf",       "dominant",
                                  "drift",   "rotating",   "shift",
                                  "bursts",  "correlated", "replay"};

/// The expert of burst `burst`: a hash of the seed, layer and burst, so
/// that it does not depend on how many steps were drawn before.
int burstExpert(std::uint64_t seed, int layer, long burst, int experts) {
  std::uint64_t x = seed * 0x9e3779b97f4a7c15ull +
                    static_cast<std::uint64_t>(layer) * 0xbf58476d1ce4e5b9ull +
                    static_cast<std::uint64_t>(burst);
  // splitmix64's finaliser.
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  x ^= x >> 31;
  return static_cast<int>(x % static_cast<std::uint64_t>(experts));
}

} // namespace

std::span<const char *const> planner::workloadNames() { return kNames; }

const char *planner::workloadName(WorkloadKind kind) {
  return kNames[static_cast<int>(kind)];
}

WorkloadKind planner::parseWorkload(const std::string &name) {
  for (std::size_t i = 0; i < std::size(kNames); ++i)
    if (name == kNames[i])
      return static_cast<WorkloadKind>(i);
  std::string known;
  for (const char *k : kNames)
    known += std::string(known.empty() ? "" : ", ") + k;
  rt::fail({}, "unknown workload '", name, "' (expected one of ", known, ")");
}

void planner::checkWorkloadOptions(WorkloadKind kind,
                                   const WorkloadOptions &o) {
  const char *name = workloadName(kind);
  auto fraction = [&](double value, const char *field) {
    if (!std::isfinite(value) || value < 0 || value > 1)
      rt::fail({}, "workload ", name, ": ", field, " must be in [0, 1], got ",
               value);
  };
  auto nonNegative = [&](double value, const char *field) {
    if (!std::isfinite(value) || value < 0)
      rt::fail({}, "workload ", name, ": ", field,
               " must be finite and >= 0, got ", value);
  };
  if (o.numRanks < 1 || o.numExperts < 1)
    rt::fail({}, "workload ", name, ": needs >= 1 ranks and experts, got ",
             o.numRanks, " ranks and ", o.numExperts, " experts");
  // The counts of one step live in one vector.
  if (static_cast<std::int64_t>(o.numRanks) * o.numExperts > (1ll << 31))
    rt::fail({}, "workload ", name, ": ", o.numRanks, " ranks x ", o.numExperts,
             " experts exceed 2^31 counts per step");
  if (o.topK < 1 || o.topK > o.numExperts)
    rt::fail({}, "workload ", name, ": top-k must be in [1, E = ", o.numExperts,
             "], got ", o.topK);
  if (o.tokensPerRank < 1 || o.tokensPerRank > (1ll << 40))
    rt::fail({}, "workload ", name,
             ": tokens per rank must be in [1, 2^40], "
             "got ",
             o.tokensPerRank);
  nonNegative(o.skew, "the Zipf skew");
  fraction(o.topKCorrelation, "the top-k correlation");
  fraction(o.correlatedChoices, "the correlated-choice probability");
  nonNegative(o.rankJitter, "the rank jitter");
  nonNegative(o.drift, "the drift");
  if (kind == WorkloadKind::Dominant &&
      (!std::isfinite(o.dominantShare) || o.dominantShare <= 0 ||
       o.dominantShare > 1.0 / o.topK))
    rt::fail({},
             "workload dominant: the hot expert's share must be in "
             "(0, 1/top-k = ",
             1.0 / o.topK, "], got ", o.dominantShare);
  if (o.period < 1)
    rt::fail({}, "workload ", name, ": the period must be >= 1 step, got ",
             o.period);
  if (o.shiftStep < 0)
    rt::fail({}, "workload ", name, ": the shift step must be >= 0, got ",
             o.shiftStep);
  if (kind == WorkloadKind::Bursts &&
      (o.burstLength < 1 || o.burstLength > o.period))
    rt::fail({}, "workload bursts: a burst lasts 1 to period = ", o.period,
             " steps, got ", o.burstLength);
  if (!std::isfinite(o.burstFactor) || o.burstFactor < 1)
    rt::fail({}, "workload ", name,
             ": the burst factor must be finite and "
             ">= 1, got ",
             o.burstFactor);
}

CountsTrace CountsTrace::fromCsv(const std::string &path, int numRanks,
                                 int numExperts) {
  std::ifstream in(path);
  if (!in)
    rt::fail({}, "cannot open counts CSV '", path, "'");
  CountsTrace trace;
  trace.numRanks_ = numRanks;
  trace.numExperts_ = numExperts;
  std::string line;
  long lineNumber = 0;
  std::vector<long long> values;
  while (std::getline(in, line)) {
    ++lineNumber;
    if (!line.empty() && line.back() == '\r')
      line.pop_back();
    if (line.empty() || line[0] == '#' || line.starts_with("step"))
      continue;
    values.clear();
    for (std::size_t begin = 0; begin <= line.size();) {
      std::size_t end = std::min(line.find(',', begin), line.size());
      long long value = 0;
      auto [ptr, error] =
          std::from_chars(line.data() + begin, line.data() + end, value);
      if (error != std::errc() || ptr != line.data() + end || value < 0)
        rt::fail({}, path, ":", lineNumber, ": field ", values.size() + 1, " '",
                 line.substr(begin, end - begin),
                 "' is not a count (a non-negative integer)");
      values.push_back(value);
      begin = end + 1;
    }
    if (values.size() != static_cast<std::size_t>(3 + numExperts))
      rt::fail({}, path, ":", lineNumber, ": expected step,layer,rank and ",
               numExperts, " counts, got ", values.size(), " fields");
    long long step = values[0], layer = values[1], rank = values[2];
    // Steps and layers index vectors: keep them to what a run records.
    if (step > 10'000'000 || layer > 100'000 || rank >= numRanks)
      rt::fail({}, path, ":", lineNumber, ": step ", step, ", layer ", layer,
               ", rank ", rank, " out of range (", numRanks, " ranks)");
    if (trace.steps_.size() <= static_cast<std::size_t>(step))
      trace.steps_.resize(step + 1);
    auto &layers = trace.steps_[step];
    if (layers.size() <= static_cast<std::size_t>(layer))
      layers.resize(layer + 1);
    auto &counts = layers[layer];
    counts.resize(static_cast<std::size_t>(numRanks) * numExperts, 0);
    for (int e = 0; e < numExperts; ++e)
      counts[static_cast<std::size_t>(rank) * numExperts + e] = values[3 + e];
  }
  if (trace.steps_.empty())
    rt::fail({}, "counts CSV '", path, "' has no rows");
  for (std::size_t step = 0; step < trace.steps_.size(); ++step)
    if (trace.steps_[step].empty())
      rt::fail({}, "counts CSV '", path, "' has no rows for step ", step,
               " (steps must be 0, 1, 2, ... without gaps)");
  return trace;
}

const std::vector<std::int64_t> &CountsTrace::at(long step, int layer) const {
  const auto &layers = steps_[static_cast<std::size_t>(step) % steps_.size()];
  const auto &counts = layers[static_cast<std::size_t>(layer) % layers.size()];
  if (counts.empty())
    rt::fail({}, "counts trace has no rows for layer ", layer % layers.size(),
             " at step ", step % steps_.size());
  return counts;
}

Workload::Workload(WorkloadKind kind, const WorkloadOptions &options, int layer,
                   const CountsTrace *replay)
    : kind_(kind), options_(options), layer_(layer), replay_(replay),
      rng_(options.seed * 0x9e3779b97f4a7c15ull + layer) {
  checkWorkloadOptions(kind, options);
  int E = options.numExperts, N = options.numRanks;
  if (kind == WorkloadKind::Replay) {
    if (!replay)
      rt::fail({}, "workload replay needs recorded counts (a counts CSV)");
    if (replay->numRanks() != N || replay->numExperts() != E)
      rt::fail({}, "workload replay: the counts are for ", replay->numRanks(),
               " ranks x ", replay->numExperts(), " experts, the run has ", N,
               " x ", E);
    return;
  }
  // Zipf popularity over a random permutation of the experts.
  std::vector<int> order(E);
  std::iota(order.begin(), order.end(), 0);
  std::shuffle(order.begin(), order.end(), rng_);
  logPopularity_.resize(E);
  for (int i = 0; i < E; ++i)
    logPopularity_[order[i]] = -options.skew * std::log(i + 1.0);
  std::normal_distribution<double> jitter(0.0, options.rankJitter);
  rankOffset_.resize(static_cast<std::size_t>(N) * E);
  for (double &offset : rankOffset_)
    offset = kind == WorkloadKind::Uniform ? 0.0 : jitter(rng_);
  // Partners pair the experts up at random.
  partner_.resize(E);
  std::vector<int> pairing(order);
  std::shuffle(pairing.begin(), pairing.end(), rng_);
  for (int i = 0; i < E; ++i)
    partner_[pairing[i]] = pairing[(i + 1) % E];
  if (kind == WorkloadKind::Shift) {
    std::vector<int> after(E);
    std::iota(after.begin(), after.end(), 0);
    std::shuffle(after.begin(), after.end(), rng_);
    shifted_.resize(E);
    for (int i = 0; i < E; ++i)
      shifted_[after[i]] = -options.skew * std::log(i + 1.0);
  }
  if (kind == WorkloadKind::Dominant) {
    double rest = E > 1 ? (1.0 - options.dominantShare) / (E - 1) : 0.0;
    int hot = order[0];
    for (int e = 0; e < E; ++e)
      logPopularity_[e] = e == hot ? std::log(options.dominantShare)
                                   : (rest > 0 ? std::log(rest) : -INFINITY);
  }
}

std::vector<double> Workload::logPopularityAt(long step) const {
  int E = options_.numExperts;
  switch (kind_) {
  case WorkloadKind::Uniform:
    return std::vector<double>(E, 0.0);
  case WorkloadKind::Rotating: {
    std::vector<double> rotated(E);
    long moves = step / options_.period;
    for (int e = 0; e < E; ++e)
      rotated[e] = logPopularity_[((e - moves) % E + E) % E];
    return rotated;
  }
  case WorkloadKind::Shift:
    return step < options_.shiftStep ? logPopularity_ : shifted_;
  case WorkloadKind::Bursts: {
    std::vector<double> burst = logPopularity_;
    if (step % options_.period < options_.burstLength)
      burst[burstExpert(options_.seed, layer_, step / options_.period, E)] +=
          std::log(options_.burstFactor);
    return burst;
  }
  default:
    return logPopularity_;
  }
}

std::vector<int> Workload::ranking() const {
  if (kind_ == WorkloadKind::Replay)
    return {};
  std::vector<double> popularity = logPopularityAt(step_);
  std::vector<int> order(popularity.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int a, int b) { return popularity[a] > popularity[b]; });
  return order;
}

std::vector<std::int64_t> Workload::next() {
  long step = step_++;
  if (kind_ == WorkloadKind::Replay)
    return replay_->at(step, layer_);
  int E = options_.numExperts, N = options_.numRanks, k = options_.topK;
  if (kind_ == WorkloadKind::Drift) {
    std::normal_distribution<double> walk(0.0, options_.drift);
    for (double &value : logPopularity_)
      value += walk(rng_);
  }
  std::vector<double> popularity = logPopularityAt(step);
  // A later choice follows the partner of the first with probability rho,
  // else the popularity again. Dominant keeps its share exact: no partner.
  double rho = k == 1 || kind_ == WorkloadKind::Dominant ||
                       kind_ == WorkloadKind::Uniform
                   ? 0.0
               : kind_ == WorkloadKind::Correlated ? options_.correlatedChoices
                                                   : options_.topKCorrelation;

  std::vector<std::int64_t> counts(static_cast<std::size_t>(N) * E, 0);
  std::vector<double> first(E), mix(E);
  for (int rank = 0; rank < N; ++rank) {
    double total = 0;
    for (int e = 0; e < E; ++e)
      total += first[e] = std::exp(
          popularity[e] + rankOffset_[static_cast<std::size_t>(rank) * E + e]);
    for (double &p : first)
      p /= total;
    for (int e = 0; e < E; ++e)
      mix[e] = first[e] / k;
    for (int e = 0; e < E; ++e) {
      mix[partner_[e]] += (k - 1.0) / k * rho * first[e];
      mix[e] += (k - 1.0) / k * (1.0 - rho) * first[e];
    }
    // Multinomial draw of tokens * k choices by sequential binomials; a
    // token's choices are distinct experts, so no expert gets more than
    // one choice per token.
    std::int64_t remaining = options_.tokensPerRank * k;
    double mass = 1.0;
    auto row = counts.begin() + static_cast<std::ptrdiff_t>(rank) * E;
    for (int e = 0; e < E && remaining > 0; ++e) {
      std::int64_t draw = remaining;
      if (e + 1 < E && mass > 0) {
        double p = std::clamp(mix[e] / mass, 0.0, 1.0);
        draw = std::binomial_distribution<std::int64_t>(remaining, p)(rng_);
      }
      draw = std::min(draw, options_.tokensPerRank);
      row[e] = draw;
      remaining -= draw;
      mass -= mix[e];
    }
    // Whatever the per-expert cap left over goes to the least loaded.
    while (remaining > 0) {
      auto least = std::min_element(row, row + E);
      std::int64_t add = std::min(remaining, options_.tokensPerRank - *least);
      *least += add;
      remaining -= add;
    }
  }
  return counts;
}
