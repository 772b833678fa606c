//===- LayerPlanning.h - an MoE layer's configuration and plan --*- C++ -*-===//
//
// What every executor of an FSEP MoE layer (CPU ranks, GPU ranks) shares:
// the layer's configuration, the relayout step that turns this step's
// router choices into the plan all ranks follow, the order of the phases
// (the layer's stage and each token chunk's) and the schedules over them.
//
//===----------------------------------------------------------------------===//

#ifndef LAER_RUNTIME_FSEP_LAYERPLANNING_H
#define LAER_RUNTIME_FSEP_LAYERPLANNING_H

#include "laer/runtime/MoEFunctions.h"
#include "laer/runtime/comm/Communicator.h"
#include "laer/runtime/fsep/ExpertShards.h"
#include "laer/runtime/fsep/Plan.h"
#include "laer/runtime/fsep/RelayoutHook.h"

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
  RoutingConfig routing;
  /// With routing.selectionBias: after each step the bias of expert e moves
  /// by rate * sign(mean load - load of e), loads over every rank's tokens.
  double biasUpdateRate = 0.0;
  /// The router losses the layer computes (and takes gradients of).
  RouterLossConfig losses;
  Activation activation = Activation::Silu;
  /// Steps of load history handed to the relayout hook (0: none).
  int historyWindow = 0;
  /// Chunks of the token exchanges in forward() and backward().
  int tokenChunks = 1;
  /// The executor restores a layout known ahead before the router (see
  /// PlanRequest::prefetchesRestore); the CPU layer does not.
  bool prefetchesRestore = false;
};

/// The MoE layers' shapes for a start-up line: "3 MoE layers x 8 experts
/// (top-2, F 16)" when they agree, else each run of equal layers
/// ("MoE layers 0-1: 8 experts (top-2, F 16); 2: 16 experts (top-4, F 32)").
std::string describeMoELayers(std::span<const MoELayerConfig> layers);

/// Tokens per expert over every rank from a relayout's counts
/// `[rank * E + e]`.
std::vector<std::int64_t> expertLoadsOf(std::span<const std::int64_t> counts,
                                        int numExperts);
/// The sequence length the aux loss of `config` spans (0: not the
/// sequence-wise loss).
std::int64_t auxLossSequence(const MoELayerConfig &config);
/// The expert loads and token count the aux loss of `config` weighs this
/// rank's probabilities with: the global batch's (from the relayout's
/// `counts`), or this rank's (`localLoads`, `tokens`).
std::pair<std::vector<std::int64_t>, std::int64_t>
auxLossLoads(const MoELayerConfig &config, std::span<const std::int64_t> counts,
             std::vector<std::int64_t> localLoads, std::int64_t tokens);

/// Fails naming the first setting of `config` out of range (top-k, slots,
/// the routing groups, the bias update), with `where` as the context.
void checkLayerConfig(const MoELayerConfig &config, const ErrorContext &where);

/// Where a layer executor is in its step; phases check it so that one
/// called out of order fails with a message instead of reading stale
/// buffers.
enum class LayerStage { Idle, Routed, Planned, Restored, ForwardDone };

/// Fails (naming `phase`, the stage it needs and the one the layer is in)
/// unless `actual` is `wanted`.
void expectStage(LayerStage actual, LayerStage wanted, const char *phase,
                 const ErrorContext &context);

/// Checks the dispatch of chunk `chunk` of `chunks` against the layer's
/// stage (after the relayout) and against the chunk count of the step's
/// earlier dispatches (`planned`: 0 before the first). True when it is the
/// step's first dispatch, so the caller cuts the exchange into `chunks`.
bool startsTokenChunks(LayerStage stage, int chunk, int chunks,
                       std::size_t planned, const ErrorContext &context);

/// The restore's all-to-all for `rank` under `layout`, in elements of
/// `shard`-element shards: to each peer the shards of the experts in its
/// used slots (in slot order), from each owner the shards of this rank's
/// used slots. The gradient all-to-all is its reverse.
AllToAllSizes restoreSizes(const Layout &layout, int rank, std::int64_t shard);

/// How far one token chunk of a step has come. Each chunk phase of an
/// executor (FsepMoELayer's phases, on CPU or GPU buffers) moves its chunk
/// one stage on, so a schedule that calls them out of order fails with a
/// message naming the chunk instead of reading a buffer still in flight.
enum class ChunkStage {
  Planned,
  DispatchStarted,
  Dispatched,
  Computed,
  CombineStarted,
  Combined,
  GradSent,
  GradArrived,
  GradComputed,
  GradReturnStarted,
  GradReturned
};

/// Moves chunk `chunk`'s `stage` on to `next`; fails (naming the phase
/// that leads to `next` and what it waits for) unless `next` directly
/// follows `stage`.
void advanceChunk(ChunkStage &stage, ChunkStage next, int chunk,
                  const ErrorContext &context);

/// Fails unless the step has a chunk `chunk` (of `chunks`).
void requireChunk(int chunk, std::size_t chunks, ChunkStage next,
                  const ErrorContext &context);

/// Fails naming `phase` and the chunk that has not reached `stage`.
[[noreturn]] void failChunkBehind(const char *phase, std::size_t chunk,
                                  ChunkStage stage,
                                  const ErrorContext &context);

/// Chunk `chunk` of `chunks` (elements with a ChunkStage `stage`), moved
/// on to `next`.
template <typename Chunk>
Chunk &advanceChunk(std::vector<Chunk> &chunks, int chunk, ChunkStage next,
                    const ErrorContext &context) {
  requireChunk(chunk, chunks.size(), next, context);
  advanceChunk(chunks[chunk].stage, next, chunk, context);
  return chunks[chunk];
}

/// The first chunk that has not reached `stage` (chunks.size() if none).
template <typename Chunk>
std::size_t firstChunkBehind(const std::vector<Chunk> &chunks,
                             ChunkStage stage) {
  std::size_t c = 0;
  while (c < chunks.size() && chunks[c].stage >= stage)
    ++c;
  return c;
}

template <typename Chunk>
bool allChunksReached(const std::vector<Chunk> &chunks, ChunkStage stage) {
  return firstChunkBehind(chunks, stage) == chunks.size();
}

/// Fails unless every chunk has reached `stage` before `phase` runs.
template <typename Chunk>
void requireAllChunks(const std::vector<Chunk> &chunks, ChunkStage stage,
                      const char *phase, const ErrorContext &context) {
  if (std::size_t c = firstChunkBehind(chunks, stage); c < chunks.size())
    failChunkBehind(phase, c, stage, context);
}

/// Fails unless `layout` is for `ranks` ranks and the config's slots and
/// experts; `source` says where the layout came from.
void requireLayoutShape(const Layout &layout, int ranks,
                        const MoELayerConfig &config, const std::string &source,
                        const ErrorContext &context);

/// One layer's relayout once every rank's counts are known (`counts`
/// [source * E + e] over `numRanks` sources): asks `hook` for the plan with
/// the history window summed as its prediction, validates the plan against
/// the counts, then appends the counts to `history` (kept to the config's
/// window). What planLayerStep does between its collectives, and what the
/// simulator calls so that it measures the runtime's own relayout path.
Plan relayoutForCounts(RelayoutHook &hook, const MoELayerConfig &config,
                       int numRanks, int layer, long step,
                       std::span<const std::int64_t> counts,
                       std::deque<std::vector<std::int64_t>> &history,
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

/// The fixed schedule of forward() after the relayout, for any executor
/// with the phases of FsepMoELayer: the restore (started here unless
/// `restoreStarted`) is in flight while the chunks are dispatched; each
/// chunk's experts run as soon as its tokens are in, and its combine
/// travels while the next chunk computes.
template <typename Layer, typename Out>
void runForwardSchedule(Layer &layer, int chunks, Out out,
                        bool restoreStarted = false) {
  if (!restoreStarted)
    layer.startRestore();
  for (int c = 0; c < chunks; ++c)
    layer.startDispatch(c, chunks);
  layer.finishRestore();
  for (int c = 0; c < chunks; ++c) {
    layer.finishDispatch(c);
    layer.computeExperts(c);
    layer.startCombine(c);
  }
  for (int c = 0; c < chunks; ++c)
    layer.finishCombine(c, out);
}

/// The fixed schedule of backward(): the same chunks in reverse, then the
/// gradient all-to-all in flight while the router gradient is computed.
/// `dx` must start at zero (the phases add to it).
template <typename Layer, typename In, typename Out>
void runBackwardSchedule(Layer &layer, int chunks, In dOut, Out dx) {
  for (int c = 0; c < chunks; ++c)
    layer.startCombineBackward(c, dOut);
  for (int c = 0; c < chunks; ++c) {
    layer.finishCombineBackward(c);
    layer.computeExpertsBackward(c);
    layer.startDispatchBackward(c);
  }
  for (int c = 0; c < chunks; ++c)
    layer.finishDispatchBackward(c, dx);
  layer.startGradReduce();
  layer.routerBackward(dx);
  layer.finishGradReduce();
}

} // namespace laer::rt

#endif // LAER_RUNTIME_FSEP_LAYERPLANNING_H
