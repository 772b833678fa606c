//===- LayerPlanning.cpp - an MoE layer's relayout step -------------------===//

#include "laer/runtime/fsep/LayerPlanning.h"
#include "laer/runtime/Limits.h"

#include <cmath>
#include <numeric>

using namespace laer::rt;

std::string
laer::rt::describeMoELayers(std::span<const MoELayerConfig> layers) {
  auto shape = [](const MoELayerConfig &c) {
    return std::to_string(c.numExperts) + " experts (top-" +
           std::to_string(c.topK) + ", F " + std::to_string(c.shape.ffn) + ")";
  };
  auto same = [](const MoELayerConfig &a, const MoELayerConfig &b) {
    return a.numExperts == b.numExperts && a.topK == b.topK &&
           a.shape.ffn == b.shape.ffn;
  };
  if (layers.empty())
    return "no MoE layers";
  bool uniform = true;
  for (const MoELayerConfig &layer : layers)
    uniform &= same(layer, layers.front());
  if (uniform)
    return std::to_string(layers.size()) + " MoE layer" +
           (layers.size() == 1 ? "" : "s") + " x " + shape(layers.front());
  std::string text = "MoE layers ";
  for (std::size_t first = 0; first < layers.size();) {
    std::size_t last = first;
    while (last + 1 < layers.size() && same(layers[last + 1], layers[first]))
      ++last;
    if (first > 0)
      text += "; ";
    text += std::to_string(first);
    if (last > first) {
      text += '-';
      text += std::to_string(last);
    }
    text += ": ";
    text += shape(layers[first]);
    first = last + 1;
  }
  return text;
}

std::vector<std::int64_t>
laer::rt::expertLoadsOf(std::span<const std::int64_t> counts, int numExperts) {
  std::vector<std::int64_t> load(numExperts, 0);
  for (std::size_t i = 0; i < counts.size(); ++i)
    load[i % numExperts] += counts[i];
  return load;
}

std::int64_t laer::rt::auxLossSequence(const MoELayerConfig &config) {
  return config.losses.aux == AuxLoss::Sequence ? config.losses.sequenceLength
                                                : 0;
}

std::pair<std::vector<std::int64_t>, std::int64_t> laer::rt::auxLossLoads(
    const MoELayerConfig &config, std::span<const std::int64_t> counts,
    std::vector<std::int64_t> localLoads, std::int64_t tokens) {
  if (config.losses.aux != AuxLoss::GlobalBatch)
    return {std::move(localLoads), tokens};
  std::vector<std::int64_t> load = expertLoadsOf(counts, config.numExperts);
  std::int64_t pairs =
      std::accumulate(load.begin(), load.end(), std::int64_t{0});
  return {std::move(load), pairs / config.topK};
}

void laer::rt::checkLayerConfig(const MoELayerConfig &config,
                                const ErrorContext &where) {
  const RoutingConfig &r = config.routing;
  int E = config.numExperts;
  if (E < 1)
    fail(where, "the layer needs at least one expert, got E = ", E);
  if (config.topK < 1 || config.topK > E)
    fail(where, "top_k must be in [1, E = ", E, "], got ", config.topK);
  if (config.slotsPerRank < 1 || config.slotsPerRank > kMaxSlotsPerRank)
    fail(where, "slots per rank must be in [1, ", kMaxSlotsPerRank, "], got ",
         config.slotsPerRank);
  if (config.tokenChunks > kMaxTokenChunks)
    fail(where, "token chunks must be at most ", kMaxTokenChunks, ", got ",
         config.tokenChunks);
  if (config.shape.hidden < 1 || config.shape.ffn < 1)
    fail(where, "expert shape H = ", config.shape.hidden,
         ", F = ", config.shape.ffn, " must be positive");
  checkExpertStorage(config.shape, E, where);
  if (!std::isfinite(r.scale) || r.scale <= 0)
    fail(where,
         "the routed scaling factor must be finite and positive, "
         "got ",
         r.scale);
  if (r.groups < 1 || E % r.groups != 0)
    fail(where, "routing groups = ", r.groups,
         " must be >= 1 and divide E = ", E);
  if (r.topGroups < 1 || r.topGroups > r.groups)
    fail(where, "top groups = ", r.topGroups,
         " must be in [1, groups = ", r.groups, "]");
  if (config.topK > r.topGroups * (E / r.groups))
    fail(where, "top_k = ", config.topK, " exceeds the ", r.topGroups, " x ",
         E / r.groups, " experts of the chosen groups");
  if (r.groups > 1 && r.groupScore == GroupScore::TopTwoSum && E / r.groups < 2)
    fail(where,
         "a group score of the two best needs groups of at least 2 "
         "experts, got ",
         E / r.groups);
  if (!std::isfinite(config.biasUpdateRate) || config.biasUpdateRate < 0)
    fail(where,
         "the selection-bias update rate must be finite and >= 0, "
         "got ",
         config.biasUpdateRate);
  if (config.biasUpdateRate > 0 && !r.selectionBias)
    fail(where, "a selection-bias update rate without a selection bias");
  if (config.losses.aux == AuxLoss::Sequence &&
      config.losses.sequenceLength < 1)
    fail(where, "the sequence-wise aux loss needs the sequence length, got ",
         config.losses.sequenceLength);
}

void laer::rt::expectStage(LayerStage actual, LayerStage wanted,
                           const char *phase, const ErrorContext &context) {
  if (actual == wanted)
    return;
  auto name = [](LayerStage s) {
    switch (s) {
    case LayerStage::Idle:
      return "before the router";
    case LayerStage::Routed:
      return "after the router";
    case LayerStage::Planned:
      return "after the relayout";
    case LayerStage::Restored:
      return "after the restore";
    case LayerStage::ForwardDone:
      return "after the forward";
    }
    return "?";
  };
  fail(context, phase, " must run ", name(wanted), ", but the layer is ",
       name(actual));
}

void laer::rt::requireLayoutShape(const Layout &layout, int ranks,
                                  const MoELayerConfig &config,
                                  const std::string &source,
                                  const ErrorContext &context) {
  if (layout.numRanks() != ranks ||
      layout.slotsPerRank() != config.slotsPerRank ||
      layout.numExperts() != config.numExperts)
    fail(context, source, " a layout for N = ", layout.numRanks(),
         ", C = ", layout.slotsPerRank(), ", E = ", layout.numExperts(),
         " but the layer runs N = ", ranks, ", C = ", config.slotsPerRank,
         ", E = ", config.numExperts);
}

Plan laer::rt::relayoutForCounts(RelayoutHook &hook,
                                 const MoELayerConfig &config, int numRanks,
                                 int layer, long step,
                                 std::span<const std::int64_t> counts,
                                 std::deque<std::vector<std::int64_t>> &history,
                                 const ErrorContext &context) {
  std::vector<std::int64_t> pastLoad;
  if (!history.empty()) {
    pastLoad.assign(counts.size(), 0);
    for (const std::vector<std::int64_t> &past : history) {
      if (past.size() != counts.size())
        fail(context, "the load history holds ", past.size(),
             " counts, this step ", counts.size());
      for (std::size_t i = 0; i < past.size(); ++i)
        pastLoad[i] =
            checkedAdd(pastLoad[i], past[i], context, "the load history");
    }
  }
  PlanRequest request{
      layer,  step,    numRanks, config.slotsPerRank, config.numExperts,
      counts, pastLoad};
  request.hidden = config.shape.hidden;
  request.ffn = config.shape.ffn;
  request.topK = config.topK;
  request.prefetchesRestore = config.prefetchesRestore;
  Plan plan;
  try {
    plan = hook.plan(request);
  } catch (const RuntimeError &error) {
    // Hooks do not know the rank; say where the failure happened.
    fail(context, "relayout hook '", hook.name(), "': ", error.message());
  }
  requireLayoutShape(plan.layout, numRanks, config,
                     "relayout hook '" + hook.name() + "' returned", context);
  validatePlan(plan, counts, context);
  if (config.historyWindow > 0) {
    history.emplace_back(counts.begin(), counts.end());
    if (static_cast<int>(history.size()) > config.historyWindow)
      history.pop_front();
  }
  return plan;
}

Plan laer::rt::planLayerStep(Communicator &comm, RelayoutHook &hook,
                             const MoELayerConfig &config, int layer, long step,
                             std::span<const std::int32_t> indices,
                             std::deque<std::vector<std::int64_t>> &history,
                             std::vector<std::int64_t> &counts) {
  ErrorContext context{comm.rank(), layer, step};
  int numExperts = config.numExperts;
  std::vector<std::int64_t> local(numExperts, 0);
  for (std::int32_t expert : indices) {
    if (expert < 0 || expert >= numExperts)
      fail(context, "the router chose expert ", expert,
           ", outside [0, E = ", numExperts, ")");
    ++local[expert];
  }
  counts = comm.allGather(std::span<const std::int64_t>(local));
  Plan plan = relayoutForCounts(hook, config, comm.size(), layer, step, counts,
                                history, context);

  // Agreement: a rank that computed another plan would deadlock or corrupt
  // the exchanges below, so compare before any data moves.
  auto mine = static_cast<std::int64_t>(fingerprint(plan));
  std::vector<std::int64_t> all =
      comm.allGather(std::span<const std::int64_t>(&mine, 1));
  for (int peer = 0; peer < comm.size(); ++peer)
    if (all[peer] != mine)
      fail(context, "the plan of relayout hook '", hook.name(),
           "' differs between this rank and rank ", peer,
           "; hooks must be deterministic functions of their request");
  return plan;
}

AllToAllSizes laer::rt::restoreSizes(const Layout &layout, int rank,
                                     std::int64_t shard) {
  int ranks = layout.numRanks();
  std::vector<std::int64_t> sendCounts(ranks), recvCounts(ranks);
  for (int peer = 0; peer < ranks; ++peer) {
    sendCounts[peer] = layout.usedSlots(peer) * shard;
    recvCounts[peer] = layout.usedSlots(rank) * shard;
  }
  return AllToAllSizes::packed(std::move(sendCounts), std::move(recvCounts));
}

namespace {

/// The phase that moves a chunk into `stage`.
const char *phaseInto(ChunkStage stage) {
  switch (stage) {
  case ChunkStage::Planned:
    return "the token exchange's plan";
  case ChunkStage::DispatchStarted:
    return "dispatch";
  case ChunkStage::Dispatched:
    return "the dispatch's wait";
  case ChunkStage::Computed:
    return "expert compute";
  case ChunkStage::CombineStarted:
    return "combine";
  case ChunkStage::Combined:
    return "the combine's wait";
  case ChunkStage::GradSent:
    return "combine backward";
  case ChunkStage::GradArrived:
    return "the combine backward's wait";
  case ChunkStage::GradComputed:
    return "expert backward";
  case ChunkStage::GradReturnStarted:
    return "dispatch backward";
  case ChunkStage::GradReturned:
    return "the dispatch backward's wait";
  }
  return "?";
}

/// What a chunk in `stage` has done last.
const char *doneAt(ChunkStage stage) {
  switch (stage) {
  case ChunkStage::Planned:
    return "token exchange plan";
  case ChunkStage::DispatchStarted:
    return "dispatch started";
  case ChunkStage::Dispatched:
    return "dispatch completed";
  case ChunkStage::Computed:
    return "expert compute";
  case ChunkStage::CombineStarted:
    return "combine started";
  case ChunkStage::Combined:
    return "combine completed";
  case ChunkStage::GradSent:
    return "combine backward started";
  case ChunkStage::GradArrived:
    return "output gradients arrived";
  case ChunkStage::GradComputed:
    return "expert backward";
  case ChunkStage::GradReturnStarted:
    return "dispatch backward started";
  case ChunkStage::GradReturned:
    return "dispatch backward completed";
  }
  return "?";
}

} // namespace

void laer::rt::advanceChunk(ChunkStage &stage, ChunkStage next, int chunk,
                            const ErrorContext &context) {
  auto previous = static_cast<ChunkStage>(static_cast<int>(next) - 1);
  if (stage == previous) {
    stage = next;
    return;
  }
  if (stage < previous)
    fail(context, phaseInto(next), " of chunk ", chunk, " ran before its ",
         doneAt(previous));
  if (stage == next)
    fail(context, phaseInto(next), " of chunk ", chunk, " ran twice");
  fail(context, phaseInto(next), " of chunk ", chunk, " ran after its ",
       doneAt(stage));
}

void laer::rt::requireChunk(int chunk, std::size_t chunks, ChunkStage next,
                            const ErrorContext &context) {
  if (chunk < 0 || static_cast<std::size_t>(chunk) >= chunks)
    fail(context, phaseInto(next), " of chunk ", chunk,
         ": the step's token exchange has ", chunks, " chunks");
}

void laer::rt::failChunkBehind(const char *phase, std::size_t chunk,
                               ChunkStage stage, const ErrorContext &context) {
  fail(context, phase, " ran before chunk ", chunk, "'s ", doneAt(stage));
}

bool laer::rt::startsTokenChunks(LayerStage stage, int chunk, int chunks,
                                 std::size_t planned,
                                 const ErrorContext &context) {
  if (stage != LayerStage::Planned && stage != LayerStage::Restored)
    expectStage(stage, LayerStage::Planned, "the dispatch", context);
  if (chunks < 1)
    fail(context, "the dispatch needs >= 1 chunks, got ", chunks);
  if (planned != 0 && static_cast<int>(planned) != chunks)
    fail(context, "dispatch of chunk ", chunk, " says ", chunks,
         " chunks, an earlier one of this step ", planned);
  return planned == 0;
}
