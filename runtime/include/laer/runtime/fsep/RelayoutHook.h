//===- RelayoutHook.h - where the planner enters a step ---------*- C++ -*-===//
//
// Before each MoE layer runs, the runtime all-gathers the router's token
// counts and asks the hook for the layer's plan. Every rank calls the hook
// with identical inputs; hooks must be deterministic functions of them
// (no clocks, no unseeded randomness). The runtime checks that all ranks
// obtained the same plan before any data moves, and fails otherwise.
//
//===----------------------------------------------------------------------===//

#ifndef LAER_RUNTIME_FSEP_RELAYOUTHOOK_H
#define LAER_RUNTIME_FSEP_RELAYOUTHOOK_H

#include "laer/runtime/fsep/Plan.h"

#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>

namespace laer::rt {

struct PlanRequest {
  int layer = 0;
  long step = 0;
  int numRanks = 1;
  int slotsPerRank = 1;
  int numExperts = 1;
  /// `counts[source * numExperts + e]`: (token, choice) pairs each source
  /// rank routes to expert e this step. The routing must move exactly these.
  std::span<const std::int64_t> counts;
  /// The same counts summed over the layer's last steps (the layer's
  /// history window; empty when it is 0 or on the first step): a
  /// prediction of this step's load that exists before the router runs.
  /// A layout planned on it can be restored ahead (Plan::layoutAhead);
  /// planners weigh that against a layout for this step's `counts`.
  std::span<const std::int64_t> history;
  /// The layer's expert shape and top-k (0: unknown), for cost models:
  /// layers of one model may differ (DeepSeek's widths, per-layer E).
  std::int64_t hidden = 0, ffn = 0;
  int topK = 0;
  /// The executor restores a layout known ahead (Plan::layoutAhead) before
  /// the layer's router runs; the CPU executor restores after the plan.
  bool prefetchesRestore = false;
};

class RelayoutHook {
public:
  virtual ~RelayoutHook() = default;
  virtual std::string name() const = 0;
  virtual Plan plan(const PlanRequest &request) = 0;
  /// The layout plan() will give `layer` at `step` when the hook knows it
  /// before the step's counts exist (a layout kept between re-plans), so a
  /// backend can start the layer's restore before its router runs;
  /// nullopt when it depends on the counts.
  virtual std::optional<Layout> layoutAhead(int /*layer*/,
                                            long /*step*/) const {
    return std::nullopt;
  }
};

/// The FSDP+EP baseline: a fixed round-robin layout, tokens split evenly
/// over an expert's replicas.
class StaticRoundRobinHook : public RelayoutHook {
public:
  std::string name() const override { return "static"; }
  Plan plan(const PlanRequest &request) override;
};

/// Wraps a planner: re-plans every `every` steps; in between, each layer
/// keeps its last layout (known ahead, see layoutAhead) and this step's
/// tokens split evenly over its replicas, as long as that layout has a
/// replica of every expert (else it re-plans: any expert may get tokens).
/// Adds up the time spent planning.
class ReplanningHook : public RelayoutHook {
public:
  ReplanningHook(std::unique_ptr<RelayoutHook> inner, long every);
  std::string name() const override { return inner_->name(); }
  Plan plan(const PlanRequest &request) override;
  std::optional<Layout> layoutAhead(int layer, long step) const override;
  /// Planning time since the last call.
  double takeSeconds();
  /// The layout each layer keeps until the next re-plan (checkpoints).
  const std::map<int, Layout> &keptLayouts() const { return layouts_; }
  /// Makes `layer` keep `layout` until the next re-plan (a resumed run).
  void keep(int layer, Layout layout) { layouts_[layer] = std::move(layout); }

private:
  /// The layout `layer` keeps at `step`, or null on a re-planning step.
  const Layout *keptLayout(int layer, long step) const;

  std::unique_ptr<RelayoutHook> inner_;
  long every_;
  std::map<int, Layout> layouts_;
  double seconds_ = 0;
};

} // namespace laer::rt

#endif // LAER_RUNTIME_FSEP_RELAYOUTHOOK_H
