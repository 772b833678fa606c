//===- WorkloadsTest.cpp - each workload's documented statistics ----------===//

#include "ErrorOf.h"

#include "laer/planner/Workloads.h"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <numeric>

using namespace laer;
using namespace laer::planner;
using laer::test::errorOf;

namespace {

/// Options without the noise that blurs a statistic: no rank offsets, no
/// partner choices.
WorkloadOptions plain(int N, int E, int k) {
  WorkloadOptions options;
  options.numRanks = N;
  options.numExperts = E;
  options.topK = k;
  options.tokensPerRank = 16384;
  options.rankJitter = 0;
  options.topKCorrelation = 0;
  options.skew = 1.0;
  return options;
}

/// Each expert's share of one step's (token, choice) pairs over all ranks.
std::vector<double> shares(const std::vector<std::int64_t> &counts, int E) {
  std::vector<double> share(E, 0.0);
  double total = 0;
  for (std::size_t i = 0; i < counts.size(); ++i) {
    share[i % E] += static_cast<double>(counts[i]);
    total += static_cast<double>(counts[i]);
  }
  for (double &s : share)
    s /= total;
  return share;
}

int hottest(const std::vector<std::int64_t> &counts, int E) {
  std::vector<double> share = shares(counts, E);
  return static_cast<int>(std::max_element(share.begin(), share.end()) -
                          share.begin());
}

} // namespace

TEST(Workloads, EveryKindRoutesEachTokenTopKTimesToDistinctExperts) {
  for (const char *name : workloadNames()) {
    WorkloadKind kind = parseWorkload(name);
    if (kind == WorkloadKind::Replay)
      continue;
    WorkloadOptions options;
    options.numRanks = 6;
    options.numExperts = 8;
    options.topK = 3;
    options.tokensPerRank = 500;
    options.skew = 2.0;
    options.dominantShare = 0.3;
    Workload workload(kind, options, 0), again(kind, options, 0),
        otherLayer(kind, options, 1);
    bool layersDiffer = false;
    for (int step = 0; step < 12; ++step) {
      std::vector<std::int64_t> counts = workload.next();
      ASSERT_EQ(counts.size(), 48u) << name;
      for (int rank = 0; rank < 6; ++rank) {
        std::int64_t row = 0;
        for (int e = 0; e < 8; ++e) {
          std::int64_t c = counts[rank * 8 + e];
          EXPECT_GE(c, 0) << name;
          EXPECT_LE(c, 500) << name << ": a token picks an expert once";
          row += c;
        }
        EXPECT_EQ(row, 1500) << name << " step " << step << " rank " << rank;
      }
      EXPECT_EQ(counts, again.next()) << name << ": not deterministic";
      layersDiffer |= counts != otherLayer.next();
    }
    if (kind != WorkloadKind::Uniform) {
      EXPECT_TRUE(layersDiffer) << name << ": layers share one stream";
    }
  }
}

TEST(Workloads, UniformGivesEveryExpertItsShare) {
  Workload uniform(WorkloadKind::Uniform, plain(8, 8, 2), 0);
  for (double share : shares(uniform.next(), 8))
    EXPECT_NEAR(share, 1.0 / 8, 0.02 / 8);
}

TEST(Workloads, ZipfIsStableAndFollowsItsExponent) {
  WorkloadOptions options = plain(8, 8, 1);
  options.skew = 1.5;
  Workload zipf(WorkloadKind::Zipf, options, 0);
  std::vector<int> ranking = zipf.ranking();
  std::vector<double> share = shares(zipf.next(), 8);
  // share(i-th) proportional to 1 / i^skew.
  double norm = 0;
  for (int i = 1; i <= 8; ++i)
    norm += std::pow(i, -1.5);
  for (int i = 0; i < 8; ++i)
    EXPECT_NEAR(share[ranking[i]], std::pow(i + 1, -1.5) / norm, 0.01)
        << "expert of rank " << i;
  for (int step = 1; step < 10; ++step)
    zipf.next();
  EXPECT_EQ(zipf.ranking(), ranking);
}

TEST(Workloads, OneDominantExpertTakesItsShare) {
  WorkloadOptions options = plain(8, 16, 2);
  options.dominantShare = 0.45;
  Workload dominant(WorkloadKind::Dominant, options, 0);
  int hot = dominant.ranking()[0];
  std::vector<double> share = shares(dominant.next(), 16);
  EXPECT_NEAR(share[hot], 0.45, 0.005);
  for (int e = 0; e < 16; ++e)
    if (e != hot) {
      EXPECT_NEAR(share[e], 0.55 / 15, 0.004) << e;
    }
}

TEST(Workloads, DriftMovesThePopularityByItsWalk) {
  WorkloadOptions options = plain(4, 16, 2);
  options.skew = 0.2;
  options.drift = 0.0;
  Workload still(WorkloadKind::Drift, options, 0);
  std::vector<int> before = still.ranking();
  for (int step = 0; step < 20; ++step)
    still.next();
  EXPECT_EQ(still.ranking(), before);
  options.drift = 0.5;
  Workload walking(WorkloadKind::Drift, options, 0);
  for (int step = 0; step < 20; ++step)
    walking.next();
  EXPECT_NE(walking.ranking(), before);
}

TEST(Workloads, TheRotatingHotspotMovesOneExpertPerPeriod) {
  WorkloadOptions options = plain(4, 8, 2);
  options.skew = 2.0;
  options.period = 3;
  Workload rotating(WorkloadKind::Rotating, options, 0);
  std::vector<int> first = rotating.ranking();
  for (int step = 0; step < 24; ++step) {
    std::vector<int> ranking = rotating.ranking();
    for (int i = 0; i < 8; ++i)
      EXPECT_EQ(ranking[i], (first[i] + step / 3) % 8) << "step " << step;
    EXPECT_EQ(hottest(rotating.next(), 8), ranking[0]) << "step " << step;
  }
}

TEST(Workloads, TheShiftChangesThePopularityOnceAtItsStep) {
  WorkloadOptions options = plain(4, 8, 2);
  options.shiftStep = 5;
  Workload shift(WorkloadKind::Shift, options, 0);
  std::vector<int> before = shift.ranking();
  for (int step = 0; step < 5; ++step) {
    EXPECT_EQ(shift.ranking(), before);
    shift.next();
  }
  std::vector<int> after = shift.ranking();
  EXPECT_NE(after, before);
  for (int step = 5; step < 15; ++step) {
    EXPECT_EQ(shift.ranking(), after);
    shift.next();
  }
}

TEST(Workloads, BurstsHeatOneExpertForTheirLength) {
  WorkloadOptions options = plain(4, 16, 2);
  options.skew = 0.0;
  options.period = 5;
  options.burstLength = 2;
  options.burstFactor = 20;
  Workload bursts(WorkloadKind::Bursts, options, 0);
  for (int step = 0; step < 20; ++step) {
    std::vector<int> ranking = bursts.ranking();
    std::vector<double> share = shares(bursts.next(), 16);
    double top = share[ranking[0]];
    if (step % 5 < 2) {
      // 20 / (20 + 15) of first choices, then the k = 2 choices mix.
      EXPECT_GT(top, 0.3) << "step " << step;
    } else {
      EXPECT_NEAR(top, 1.0 / 16, 0.01) << "step " << step;
    }
  }
}

TEST(Workloads, CorrelatedChoicesFollowThePartner) {
  WorkloadOptions options = plain(8, 8, 2);
  options.skew = 3.0;
  options.correlatedChoices = 0.9;
  Workload correlated(WorkloadKind::Correlated, options, 0);
  int top = correlated.ranking()[0], partner = correlated.partner(top);
  std::vector<double> share = shares(correlated.next(), 8);
  // First choices: p_e; a second choice is the partner's with 0.9, else a
  // fresh draw: share_e = p_e / 2 + 0.05 p_e + 0.45 p_(e's predecessor).
  double norm = 0;
  for (int i = 1; i <= 8; ++i)
    norm += std::pow(i, -3.0);
  std::vector<double> first(8);
  std::vector<int> ranking = correlated.ranking();
  for (int i = 0; i < 8; ++i)
    first[ranking[i]] = std::pow(i + 1, -3.0) / norm;
  double expected = 0.55 * first[partner] + 0.45 * first[top];
  EXPECT_NEAR(share[partner], expected, 0.01);
  EXPECT_GT(share[partner], 0.3); // independent choices: at most 0.11
}

TEST(Workloads, ReplayReturnsTheRecordedCountsCyclically) {
  std::string path = ::testing::TempDir() + "/replay.csv";
  {
    std::ofstream csv(path);
    csv << "step,layer,rank,e0,e1\n";
    csv << "0,0,0,3,1\n0,0,1,0,4\n1,0,0,2,2\n1,0,1,1,3\r\n";
  }
  CountsTrace trace = CountsTrace::fromCsv(path, 2, 2);
  WorkloadOptions options;
  options.numRanks = 2;
  options.numExperts = 2;
  Workload replay(WorkloadKind::Replay, options, 3, &trace);
  EXPECT_TRUE(replay.ranking().empty());
  EXPECT_EQ(replay.next(), (std::vector<std::int64_t>{3, 1, 0, 4}));
  EXPECT_EQ(replay.next(), (std::vector<std::int64_t>{2, 2, 1, 3}));
  EXPECT_EQ(replay.next(), (std::vector<std::int64_t>{3, 1, 0, 4}));

  options.numExperts = 4;
  EXPECT_EQ(
      errorOf([&] { Workload(WorkloadKind::Replay, options, 0, &trace); }),
      "workload replay: the counts are for 2 ranks x 2 experts, the "
      "run has 2 x 4");
  EXPECT_EQ(errorOf([&] { Workload(WorkloadKind::Replay, options, 0); }),
            "workload replay needs recorded counts (a counts CSV)");
  std::ofstream(path) << "0,0,0,3,x\n";
  EXPECT_EQ(errorOf([&] { CountsTrace::fromCsv(path, 2, 2); }),
            path + ":1: field 5 'x' is not a count (a non-negative integer)");
  std::ofstream(path) << "0,0,0,3,1\n2,0,0,3,1\n";
  EXPECT_EQ(errorOf([&] { CountsTrace::fromCsv(path, 2, 2); }),
            "counts CSV '" + path +
                "' has no rows for step 1 (steps must be 0, 1, 2, ... "
                "without gaps)");
}

TEST(Workloads, OptionsOutOfRangeAreRefusedByName) {
  EXPECT_EQ(errorOf([] { parseWorkload("hot"); }),
            "unknown workload 'hot' (expected one of uniform, zipf, "
            "dominant, drift, rotating, shift, bursts, correlated, replay)");
  WorkloadOptions options;
  options.topK = 4;
  options.dominantShare = 0.3;
  EXPECT_EQ(
      errorOf([&] { checkWorkloadOptions(WorkloadKind::Dominant, options); }),
      "workload dominant: the hot expert's share must be in (0, 1/top-k "
      "= 0.25], got 0.3");
  options = {};
  options.period = 2;
  options.burstLength = 3;
  EXPECT_EQ(
      errorOf([&] { checkWorkloadOptions(WorkloadKind::Bursts, options); }),
      "workload bursts: a burst lasts 1 to period = 2 steps, got 3");
  options = {};
  options.skew = std::nan("");
  EXPECT_EQ(errorOf([&] { checkWorkloadOptions(WorkloadKind::Zipf, options); }),
            "workload zipf: the Zipf skew must be finite and >= 0, got nan");
  options = {};
  options.topK = 9;
  EXPECT_EQ(
      errorOf([&] { checkWorkloadOptions(WorkloadKind::Uniform, options); }),
      "workload uniform: top-k must be in [1, E = 8], got 9");
}
