//===- Planner.cpp - planner registry and the runtime hook ----------------===//

#include "Planners.h"

#include "laer/runtime/Error.h"

using namespace laer;
using namespace laer::planner;

namespace {
constexpr const char *kNames[] = {"static", "greedy", "flexmoe",
                                  "laer",   "laer+",  "exact"};
} // namespace

std::span<const char *const> planner::plannerNames() { return kNames; }

std::unique_ptr<Planner> planner::makePlanner(const std::string &name) {
  if (name == "static")
    return std::make_unique<StaticPlanner>();
  if (name == "greedy")
    return std::make_unique<GreedyPlanner>();
  if (name == "flexmoe")
    return std::make_unique<FlexMoEPlanner>();
  if (name == "laer")
    return std::make_unique<LaerPlanner>();
  if (name == "laer+")
    return std::make_unique<LaerPlusPlanner>();
  if (name == "exact")
    return std::make_unique<ExactPlanner>();
  rt::fail({}, "unknown planner '", name,
           "' (expected static, greedy, flexmoe, laer, laer+ or exact)");
}

rt::Plan PlannerHook::plan(const rt::PlanRequest &request) {
  ClusterSpec cluster = cluster_;
  cluster.numRanks = request.numRanks;
  LayerSpec layer = layer_;
  layer.numExperts = request.numExperts;
  layer.slotsPerRank = request.slotsPerRank;
  // This layer's shape where the executor says it (models mix widths).
  if (request.hidden > 0)
    layer.hidden = request.hidden;
  if (request.ffn > 0)
    layer.ffn = request.ffn;
  if (request.topK > 0)
    layer.topK = request.topK;
  return planner_->plan(PlannerInput{cluster, layer, request.counts,
                                     request.history,
                                     request.prefetchesRestore});
}
