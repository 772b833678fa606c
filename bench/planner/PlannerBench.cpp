//===- PlannerBench.cpp - planner wall time at scale ----------------------===//
//
// E = 32 experts, N in {64 .. 1024} ranks in nodes of 8, C in {1 .. 16}
// slots per rank, skewed random loads (8192 tokens x top-2 per rank), the
// setting of the paper's planner timing (planner_results_backup.csv).
// One core: the planner runs inside the step on one CPU thread.
//
//===----------------------------------------------------------------------===//

#include "laer/planner/Planner.h"
#include "laer/planner/TraceGenerator.h"

#include <benchmark/benchmark.h>

using namespace laer;
using namespace laer::planner;

namespace {

void planOnce(benchmark::State &state, const char *name) {
  int N = static_cast<int>(state.range(0));
  int C = static_cast<int>(state.range(1));
  TraceOptions trace;
  trace.numRanks = N;
  trace.numExperts = 32;
  trace.topK = 2;
  trace.tokensPerRank = 8192;
  trace.skew = 1.0;
  trace.seed = 3;
  std::vector<std::int64_t> counts = TraceGenerator(trace, 0).next();
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

} // namespace

BENCHMARK(laerPlus)->Apply(sizes)->Name("laer+");
BENCHMARK(laerBaseline)->Apply(sizes)->Name("laer");
BENCHMARK(flexmoe)->Apply(sizes)->Name("flexmoe");

BENCHMARK_MAIN();
