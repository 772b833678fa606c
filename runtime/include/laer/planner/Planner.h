//===- Planner.h - load-balancing planners for FSEP -------------*- C++ -*-===//
//
// A planner turns the load of one MoE layer (tokens each rank routes to
// each expert) into a plan: which experts every rank computes (hot ones
// replicated) and how each source's tokens split among replicas. All
// planners are deterministic functions of their input, so every rank of a
// run computes the same plan (the runtime checks it).
//
//===----------------------------------------------------------------------===//

#ifndef LAER_PLANNER_PLANNER_H
#define LAER_PLANNER_PLANNER_H

#include "laer/planner/CostModel.h"
#include "laer/runtime/fsep/RelayoutHook.h"

#include <memory>
#include <span>
#include <string>

namespace laer::planner {

struct PlannerInput {
  ClusterSpec cluster;
  LayerSpec layer;
  /// Tokens to route now: `counts[source * E + e]`. The routing must move
  /// exactly these.
  std::span<const std::int64_t> counts;
  /// Load to lay experts out for (e.g. a window of past steps); empty means
  /// "use `counts`".
  std::span<const std::int64_t> layoutLoad;
  /// The executor starts the restore of a layout known ahead (Plan::
  /// layoutAhead) before the layer's router; else every restore starts
  /// after the plan. Planners that choose between a layout for
  /// `layoutLoad` and one for `counts` weigh it.
  bool prefetchesRestore = false;
};

class Planner {
public:
  virtual ~Planner() = default;
  virtual std::string name() const = 0;
  /// Throws rt::RuntimeError when no valid plan exists (N * C < E).
  virtual rt::Plan plan(const PlannerInput &input) = 0;
};

/// Total tokens per expert over all sources of `counts[source * E + e]`.
std::vector<std::int64_t> expertLoads(std::span<const std::int64_t> counts,
                                      int numRanks, int numExperts);

/// "static", "flexmoe", "laer", "laer+" (and "exact" for tiny instances);
/// throws for an unknown name.
std::unique_ptr<Planner> makePlanner(const std::string &name);
/// Names accepted by makePlanner, for help texts.
std::span<const char *const> plannerNames();

/// Adapts a planner to the runtime's relayout hook.
class PlannerHook : public rt::RelayoutHook {
public:
  PlannerHook(std::unique_ptr<Planner> planner, ClusterSpec cluster,
              LayerSpec layer)
      : planner_(std::move(planner)), cluster_(cluster), layer_(layer) {}
  std::string name() const override { return planner_->name(); }
  rt::Plan plan(const rt::PlanRequest &request) override;

private:
  std::unique_ptr<Planner> planner_;
  ClusterSpec cluster_;
  LayerSpec layer_;
};

} // namespace laer::planner

#endif // LAER_PLANNER_PLANNER_H
