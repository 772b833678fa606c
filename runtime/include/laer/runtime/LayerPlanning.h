//===- LayerPlanning.h - an MoE layer's configuration and plan --*- C++ -*-===//
//
// What every executor of an FSEP MoE layer (CPU ranks, GPU ranks) shares:
// the layer's configuration and the relayout step that turns this step's
// router choices into the plan all ranks follow.
//
//===----------------------------------------------------------------------===//

#ifndef LAER_RUNTIME_LAYERPLANNING_H
#define LAER_RUNTIME_LAYERPLANNING_H

#include "laer/runtime/Communicator.h"
#include "laer/runtime/ExpertShards.h"
#include "laer/runtime/MoEFunctions.h"
#include "laer/runtime/Plan.h"
#include "laer/runtime/RelayoutHook.h"

#include <cstdint>
#include <deque>
#include <span>
#include <string>
#include <vector>

namespace laer::rt {

struct MoELayerConfig {
  ExpertShape shape;
  int numExperts = 8;
  int topK = 2;
  /// C: experts each rank computes per step.
  int slotsPerRank = 2;
  ScoreFunction score = ScoreFunction::Softmax;
  bool renormalize = true;
  Activation activation = Activation::Silu;
  /// Steps of load history handed to the relayout hook (0: none).
  int historyWindow = 0;
  /// Chunks of the token exchanges in forward() and backward().
  int tokenChunks = 1;
};

/// Where a layer executor is in its step; phases check it so that one
/// called out of order fails with a message instead of reading stale
/// buffers.
enum class LayerStage { Idle, Routed, Planned, Restored, ForwardDone };

/// Fails (naming `phase`, the stage it needs and the one the layer is in)
/// unless `actual` is `wanted`.
void expectStage(LayerStage actual, LayerStage wanted, const char *phase,
                 const ErrorContext &context);

/// Fails unless `layout` is for `ranks` ranks and the config's slots and
/// experts; `source` says where the layout came from.
void requireLayoutShape(const Layout &layout, int ranks,
                        const MoELayerConfig &config,
                        const std::string &source,
                        const ErrorContext &context);

/// One layer's relayout: all-gathers the (token, choice) counts of every
/// rank's `indices` (expert ids) into `counts` [source * E + e], asks
/// `hook` for the plan, validates it against the counts, appends the
/// counts to `history` (kept to the config's window) and checks that every
/// rank obtained the same plan before any data moves. Collective.
Plan planLayerStep(Communicator &comm, RelayoutHook &hook,
                   const MoELayerConfig &config, int layer, long step,
                   std::span<const std::int32_t> indices,
                   std::deque<std::vector<std::int64_t>> &history,
                   std::vector<std::int64_t> &counts);

} // namespace laer::rt

#endif // LAER_RUNTIME_LAYERPLANNING_H
