//===- PlannerBench.cpp - planner wall time at scale ----------------------===//
//
// E = 32 experts, N in {64 .. 1024} ranks in nodes of 8, C in {1 .. 16}
// slots per rank, skewed random loads (8192 tokens x top-2 per rank), the
// setting of the paper's planner timing (planner_results_backup.csv).
// One core: the planner runs inside the step on one CPU thread.
//
//===----------------------------------------------------------------------===//

#include "laer/planner/Planner.h"
#include "laer/planner/TokenSplit.h"
#include "laer/planner/Workloads.h"

#include <algorithm>

#include <benchmark/benchmark.h>

using namespace laer;
using namespace laer::planner;

namespace {

void planOnce(benchmark::State &state, const char *name) {
  int N = static_cast<int>(state.range(0));
  int C = static_cast<int>(state.range(1));
  WorkloadOptions trace;
  trace.numRanks = N;
  trace.numExperts = 32;
  trace.topK = 2;
  trace.tokensPerRank = 8192;
  trace.skew = 1.0;
  trace.seed = 3;
  std::vector<std::int64_t> counts =
      Workload(WorkloadKind::Drift, trace, 0).next();
  PlannerInput input;
  input.cluster.numRanks = N;
  input.cluster.gpusPerNode = 8;
  input.layer.numExperts = 32;
  input.layer.slotsPerRank = C;
  input.counts = counts;
  std::unique_ptr<Planner> planner = makePlanner(name);
  double criticalPath = 0;
  for (auto _ : state) {
    rt::Plan plan = planner->plan(input);
    benchmark::DoNotOptimize(plan);
    state.PauseTiming();
    criticalPath =
        evaluate(plan, input.cluster, input.layer).criticalPath;
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
  WorkloadOptions trace;
  trace.numRanks = N;
  trace.numExperts = E;
  trace.topK = E >= 256 ? 8 : 2;
  trace.tokensPerRank = 8192;
  trace.skew = 1.0;
  trace.seed = 3;
  std::vector<std::int64_t> counts =
      Workload(WorkloadKind::Drift, trace, 0).next();
  PlannerInput input;
  input.cluster.numRanks = N;
  input.cluster.gpusPerNode = 8;
  input.layer.numExperts = E;
  input.layer.slotsPerRank = C;
  input.counts = counts;
  rt::Plan plan = makePlanner("laer+")->plan(input);
  std::vector<std::int64_t> loads(E, 0);
  for (int source = 0; source < N; ++source)
    for (int e = 0; e < E; ++e)
      loads[e] += counts[static_cast<std::size_t>(source) * E + e];
  TokenSplit split;
  for (auto _ : state) {
    split = optimalTokenSplit(plan.layout, loads);
    benchmark::DoNotOptimize(split);
  }
  std::vector<std::int64_t> rows(N, 0);
  for (std::size_t i = 0; i < split.shares.size(); ++i)
    rows[plan.layout.replicas()[i].rank] += split.shares[i];
  auto maxOverMean = [&](const std::vector<std::int64_t> &r) {
    double total = 0;
    for (std::int64_t v : r)
      total += static_cast<double>(v);
    return static_cast<double>(*std::max_element(r.begin(), r.end())) /
           (total / static_cast<double>(r.size()));
  };
  rt::Plan even{plan.layout, rt::Routing::evenSplit(plan.layout, counts)};
  state.counters["split_max_mean"] = maxOverMean(rows);
  state.counters["even_max_mean"] = maxOverMean(rt::rowsPerRank(even));
}

void splitSizes(benchmark::internal::Benchmark *bench) {
  for (int E : {32, 256})
    for (int C : {2, 4, 8})
      bench->Args({1024, E, C});
  bench->Unit(benchmark::kMillisecond);
}

} // namespace

BENCHMARK(tokenSplit)->Apply(splitSizes)->Name("token_split");
BENCHMARK(laerPlus)->Apply(sizes)->Name("laer+");
BENCHMARK(laerBaseline)->Apply(sizes)->Name("laer");
BENCHMARK(flexmoe)->Apply(sizes)->Name("flexmoe");

BENCHMARK_MAIN();
