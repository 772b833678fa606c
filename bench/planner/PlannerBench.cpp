//===- PlannerBench.cpp - planner wall time at scale ----------------------===//
//
// E = 32 experts, N in {64 .. 1024} ranks in nodes of 8, C in {1 .. 16}
// slots per rank, skewed random loads (8192 tokens x top-2 per rank), the
// setting of the paper's planner timing (planner_results_backup.csv).
// One core: the planner runs inside the step on one CPU thread.
//
//===----------------------------------------------------------------------===//

#include "laer/planner/Bounds.h"
#include "laer/planner/Planner.h"
#include "laer/planner/TokenSplit.h"
#include "laer/planner/Workloads.h"

#include <algorithm>

#include <benchmark/benchmark.h>

using namespace laer;
using namespace laer::planner;

namespace {

/// One step of the drift workload (Zipf 1.0, seed 3): N ranks routing
/// `tokens` x top-k to E experts, and a planner input over it (nodes of 8,
/// C slots). Not copyable: the input's counts view the member.
struct BenchLoad {
  std::vector<std::int64_t> counts;
  PlannerInput input;

  BenchLoad(int N, int E, int topK, std::int64_t tokens, int C) {
    WorkloadOptions trace;
    trace.numRanks = N;
    trace.numExperts = E;
    trace.topK = topK;
    trace.tokensPerRank = tokens;
    trace.skew = 1.0;
    trace.seed = 3;
    counts = Workload(WorkloadKind::Drift, trace, 0).next();
    input.cluster.numRanks = N;
    input.cluster.gpusPerNode = 8;
    input.layer.numExperts = E;
    input.layer.slotsPerRank = C;
    input.counts = counts;
  }
  BenchLoad(const BenchLoad &) = delete;
  BenchLoad &operator=(const BenchLoad &) = delete;
};

void planOnce(benchmark::State &state, const char *name) {
  int N = static_cast<int>(state.range(0));
  int C = static_cast<int>(state.range(1));
  BenchLoad load(N, 32, 2, 8192, C);
  const PlannerInput &input = load.input;
  std::unique_ptr<Planner> planner = makePlanner(name);
  double criticalPath = 0;
  for (auto _ : state) {
    rt::Plan plan = planner->plan(input);
    benchmark::DoNotOptimize(plan);
    state.PauseTiming();
    criticalPath = evaluate(plan, input.cluster, input.layer).criticalPath;
    state.ResumeTiming();
  }
  state.counters["critical_path_ms"] = 1e3 * criticalPath;
}

void sizes(benchmark::internal::Benchmark *bench) {
  for (int N : {64, 128, 256, 512, 1024})
    for (int C : {1, 2, 4, 8, 16})
      bench->Args({N, C});
  bench->Unit(benchmark::kMillisecond);
}

void laerPlus(benchmark::State &state) { planOnce(state, "laer+"); }
void laerBaseline(benchmark::State &state) { planOnce(state, "laer"); }
void flexmoe(benchmark::State &state) { planOnce(state, "flexmoe"); }

/// optimalTokenSplit alone on laer+'s fresh layout of the step's counts
/// (N ranks, E experts, top-2 for 32 experts and top-8 for 256, C slots):
/// its time, and max/mean rank rows of its split and of the even split.
void tokenSplit(benchmark::State &state) {
  int N = static_cast<int>(state.range(0));
  int E = static_cast<int>(state.range(1));
  int C = static_cast<int>(state.range(2));
  BenchLoad load(N, E, E >= 256 ? 8 : 2, 8192, C);
  rt::Plan plan = makePlanner("laer+")->plan(load.input);
  std::vector<std::int64_t> loads = expertLoads(load.counts, N, E);
  TokenSplit split;
  for (auto _ : state) {
    split = optimalTokenSplit(plan.layout, loads);
    benchmark::DoNotOptimize(split);
  }
  std::vector<std::int64_t> rows(N, 0);
  for (std::size_t i = 0; i < split.shares.size(); ++i)
    rows[plan.layout.replicas()[i].rank] += split.shares[i];
  rt::Plan even{plan.layout, rt::Routing::evenSplit(plan.layout, load.counts)};
  state.counters["split_max_mean"] = rt::maxOverMeanRows(rows);
  state.counters["even_max_mean"] = rt::maxOverMeanRows(rt::rowsPerRank(even));
}

void splitSizes(benchmark::internal::Benchmark *bench) {
  for (int E : {32, 256})
    for (int C : {2, 4, 8})
      bench->Args({1024, E, C});
  bench->Unit(benchmark::kMillisecond);
}

/// DeepSeek-V3's MoE layer (E = 256, top-8, H 7168, F 2048) at N ranks in
/// nodes of 8 with C slots each, 4096 tokens per rank (one sequence):
/// laer+'s plan time, its busiest rank over the slot-counting bound, and
/// its critical path over that of the plain water-fill + LPT greedy.
void deepSeekV3(benchmark::State &state) {
  int N = static_cast<int>(state.range(0));
  int C = static_cast<int>(state.range(1));
  BenchLoad load(N, 256, 8, 4096, C);
  load.input.layer.topK = 8;
  load.input.layer.hidden = 7168;
  load.input.layer.ffn = 2048;
  const PlannerInput &input = load.input;
  const std::vector<std::int64_t> &counts = load.counts;
  std::unique_ptr<Planner> planner = makePlanner("laer+");
  rt::Plan plan;
  for (auto _ : state) {
    plan = planner->plan(input);
    benchmark::DoNotOptimize(plan);
  }
  std::vector<std::int64_t> loads = expertLoads(counts, N, 256);
  std::vector<std::int64_t> rows = rt::rowsPerRank(plan);
  state.counters["over_bound"] =
      static_cast<double>(*std::max_element(rows.begin(), rows.end())) /
      static_cast<double>(maxRankRowsLowerBound(loads, N, C));
  state.counters["max_mean"] = rt::maxOverMeanRows(rows);
  double path = evaluate(plan, input.cluster, input.layer).criticalPath;
  rt::Plan greedy = makePlanner("greedy")->plan(input);
  state.counters["critical_path_ms"] = 1e3 * path;
  state.counters["vs_greedy"] =
      path / evaluate(greedy, input.cluster, input.layer).criticalPath;
  std::vector<std::int64_t> greedyRows = rt::rowsPerRank(greedy);
  state.counters["greedy_max_mean"] = rt::maxOverMeanRows(greedyRows);
}

void deepSeekSizes(benchmark::internal::Benchmark *bench) {
  for (int N : {256, 1024, 4096, 8192})
    for (int C : {1, 2, 4})
      bench->Args({N, C});
  bench->Unit(benchmark::kMillisecond);
}

} // namespace

BENCHMARK(deepSeekV3)->Apply(deepSeekSizes)->Name("deepseek_v3");
BENCHMARK(tokenSplit)->Apply(splitSizes)->Name("token_split");
BENCHMARK(laerPlus)->Apply(sizes)->Name("laer+");
BENCHMARK(laerBaseline)->Apply(sizes)->Name("laer");
BENCHMARK(flexmoe)->Apply(sizes)->Name("flexmoe");

BENCHMARK_MAIN();
