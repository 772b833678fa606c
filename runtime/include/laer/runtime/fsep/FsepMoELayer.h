//===- FsepMoELayer.h - one MoE layer executed with FSEP --------*- C++ -*-===//
//
// The per-rank executor of one MoE layer under Fully Sharded Expert
// Parallelism. Forward:
//   router -> load all-gather -> relayout hook (plan) -> restore (all-to-all
//   of parameter shards: each rank assembles the full weights of the experts
//   in its slots) -> token permute + dispatch all-to-all -> grouped expert
//   SwiGLU -> combine all-to-all + weighted sum.
// Backward runs the same exchanges in reverse and ends with the gradient
// all-to-all: each rank sends the slices of its restored experts' weight
// gradients to their owners, which sum over replicas. The gate is a dense,
// replicated parameter: its gradient is all-reduced.
//
// FSEP changes where experts run, never what is computed: for any plan the
// results equal a single-device MoE layer up to float rounding.
//
// The phases are public so compiled code can run the schedule the compiler
// chose (one call per fsep op, see runtime/compiled/ABI.h): token exchanges
// are split into chunks, each a contiguous share of every (source, replica)
// block, and every transfer has a start and a finish. forward() and
// backward() run the same phases in a fixed order. A phase called out of
// order fails with a message naming the rank, layer and step.
//
//===----------------------------------------------------------------------===//

#ifndef LAER_RUNTIME_FSEP_FSEPMOELAYER_H
#define LAER_RUNTIME_FSEP_FSEPMOELAYER_H

#include "laer/runtime/AdamW.h"
#include "laer/runtime/comm/Communicator.h"
#include "laer/runtime/cpu/Kernels.h"
#include "laer/runtime/fsep/ExpertShards.h"
#include "laer/runtime/fsep/LayerPlanning.h"
#include "laer/runtime/fsep/PhaseTimes.h"
#include "laer/runtime/fsep/Plan.h"
#include "laer/runtime/fsep/RelayoutHook.h"
#include "laer/runtime/fsep/TokenExchange.h"

#include <cstdint>
#include <deque>
#include <memory>
#include <span>
#include <vector>

namespace laer::rt {

class FsepMoELayer {
public:
  FsepMoELayer(Communicator &comm, const MoELayerConfig &config,
               int layerIndex);

  const MoELayerConfig &config() const { return config_; }
  int layerIndex() const { return layer_; }
  ExpertShards &experts() { return experts_; }
  const ExpertShards &experts() const { return experts_; }
  /// The router weight [H, E], replicated on every rank.
  std::span<float> gate() { return gate_; }
  /// The gate's AdamW moments (replicated like the gate), for checkpoints.
  std::span<float> gateFirstMoment() { return gateM_; }
  std::span<float> gateSecondMoment() { return gateV_; }
  std::span<const float> gateGrad() const { return gateGrad_; }
  std::span<float> gateGrad() { return gateGrad_; }
  /// The selection bias [E] (empty without routing.selectionBias):
  /// replicated, changed only by the update rule after each step.
  std::span<float> selectionBias() { return bias_; }

  /// Deterministic weights, identical for every number of ranks.
  void initialize(std::uint64_t seed, float expertScale, float gateScale);

  /// `x` holds this rank's tokens [T, H]; returns [T, H].
  std::vector<float> forward(std::span<const float> x, long step,
                             RelayoutHook &hook);
  /// `dOut` [T, H] for the tokens of the last forward; returns d(x) and
  /// accumulates the expert-gradient shards and the gate gradient.
  std::vector<float> backward(std::span<const float> dOut);

  // Forward phases, in program order.
  /// moe.router: top-k of this rank's tokens `x` [T, H] (kept for backward).
  void route(std::span<const float> x, long step);
  /// fsep.relayout: gathers every rank's counts, asks `hook` for the plan
  /// and checks that all ranks hold the same one.
  void relayout(RelayoutHook &hook);
  /// fsep.restore: the full weights of this rank's experts.
  void startRestore();
  void finishRestore();
  /// fsep.dispatch of chunk `chunk` of `chunks` (the same count for every
  /// chunk of a step).
  void startDispatch(int chunk, int chunks);
  void finishDispatch(int chunk);
  /// fsep.expert_compute of one chunk's rows.
  void computeExperts(int chunk);
  /// fsep.combine: adds the chunk's weighted expert outputs to `out` [T, H].
  void startCombine(int chunk);
  void finishCombine(int chunk, std::span<float> out);

  // Backward phases (same chunks as the forward).
  /// fsep.combine_backward: d(weights) of the chunk's pairs and their rows'
  /// gradients, sent to the experts.
  void startCombineBackward(int chunk, std::span<const float> dOut);
  void finishCombineBackward(int chunk);
  /// fsep.expert_compute_backward: input-row and weight gradients.
  void computeExpertsBackward(int chunk);
  /// fsep.dispatch_backward: adds the chunk's input gradients to `dx`.
  void startDispatchBackward(int chunk);
  void finishDispatchBackward(int chunk, std::span<float> dx);
  /// fsep.grad_reduce: weight gradients to their owners, summed there.
  void startGradReduce();
  void finishGradReduce();
  /// The router's gradient: adds to `dx` [T, H] and to the gate gradient.
  void routerBackward(std::span<float> dx);

  /// This step's router losses (config().losses): after the router, and for
  /// the global-batch aux loss after the relayout, which gathers every
  /// rank's loads.
  cpu::RouterLosses routerLosses() const;
  /// Tokens per expert over every rank in this step's relayout counts
  /// (empty before the first relayout).
  std::vector<std::int64_t> globalLoads() const;
  /// d(loss)/d(aux) and d(loss)/d(z) of this step, taken by
  /// routerBackward (zero unless set after the step's router).
  void setAuxLossGradient(float dAux);
  void setZLossGradient(float dZ);

  void zeroGrads();
  /// Multiplies the expert-shard and gate gradients by `factor` (1/N turns
  /// the sum over data-parallel ranks into their mean).
  void scaleGrads(float factor);
  /// AdamW on the expert shards and the gate; then the selection-bias
  /// update from the loads of the step's relayout.
  void applyAdamW(const AdamWConfig &config, long step);
  /// The squared L2 norm of the expert-shard gradients over every rank and
  /// of the (replicated) gate gradient (collective).
  double gradSquaredNorm();

  const Plan &lastPlan() const { return plan_; }
  /// The load history the relayout hook sees (oldest first); part of the
  /// training state, so checkpoints save and restore it.
  const std::deque<std::vector<std::int64_t>> &loadHistory() const {
    return history_;
  }
  void setLoadHistory(std::deque<std::vector<std::int64_t>> history) {
    history_ = std::move(history);
  }
  /// Load of the last forward: [source * E + e].
  const std::vector<std::int64_t> &lastCounts() const { return counts_; }
  PhaseTimes &times() { return times_; }
  /// Bytes of full expert weights restored on this rank in the last step
  /// (none on one rank: its slots read the expert state in place).
  std::int64_t restoredBytes() const;
  /// Tokens of the last route().
  std::int64_t tokens() const { return tokens_; }

private:
  /// An all-to-all in flight (its buffers must outlive the handle).
  struct Transfer {
    std::vector<float> send, recv;
    AllToAllSizes sizes;
    std::unique_ptr<CommHandle> handle;
  };
  struct SlotState {
    int expert = Layout::kEmpty;
    std::int64_t rows = 0;
    std::vector<std::int64_t> chunkBegin; // [chunks + 1], rows
    std::vector<float> weights;           // restored, padded to N * shard
    /// What the expert compute reads: `weights`, or on one rank the
    /// expert's own state (its one shard is the whole expert).
    std::span<const float> restored;
    std::vector<float> input, output;   // [rows, H], chunk-major
    std::vector<float> dOutput, dInput; // [rows, H], chunk-major
    std::vector<float> weightGrad;      // padded like weights
    bool gradWritten = false;           // a chunk's backward has set weightGrad
    std::vector<cpu::SwiGluSaved> saved; // per chunk
  };
  /// The token exchange of one chunk (from the plan) and its progress.
  struct TokenChunk : ExchangeChunk {
    ChunkStage stage = ChunkStage::Planned;
    Transfer transfer;
  };

  ErrorContext context() const { return {comm_.rank(), layer_, step_}; }
  /// The loads the aux loss counts (this rank's or every rank's) and the
  /// tokens they come from.
  std::pair<std::vector<std::int64_t>, std::int64_t> auxLoads() const;
  /// Tokens per aux-loss sequence (AuxLoss::Sequence), else 0.
  std::int64_t auxSequence() const;
  void updateSelectionBias();
  void planTokenChunks(int chunks);
  /// Starts chunk `c`'s token all-to-all of what its transfer's send
  /// buffer holds (the dispatch direction when `forward`).
  void startTokens(TokenChunk &c, bool forward);
  /// Waits for it; the rows stay in the transfer's receive buffer.
  std::span<const float> finishTokens(TokenChunk &c);
  /// Drops the step's chunks, keeping their transfers' buffers.
  void retireChunks();
  /// Copies a chunk's receive buffer into / out of the slots' row buffers.
  void receiveIntoSlots(const TokenChunk &c, std::span<const float> received,
                        std::vector<float> SlotState::*rows);
  void sendFromSlots(TokenChunk &c, std::vector<float> SlotState::*rows) const;

  Communicator &comm_;
  MoELayerConfig config_;
  int layer_;
  long step_ = -1;
  ExpertShards experts_;
  std::vector<float> gate_, gateGrad_, gateM_, gateV_;
  std::vector<float> bias_;
  PhaseTimes times_;

  // State of the step, used by the later phases and by backward.
  LayerStage stage_ = LayerStage::Idle;
  std::int64_t tokens_ = 0;
  std::vector<float> input_;
  cpu::RouterOutput router_;
  std::vector<std::int64_t> localLoads_; // [E], this rank's tokens
  float dAux_ = 0.0f, dZ_ = 0.0f;
  std::vector<std::int64_t> counts_;
  std::deque<std::vector<std::int64_t>> history_; // oldest first
  Plan plan_;
  Transfer restore_;
  bool restoreStarted_ = false;
  /// Row of each (token, choice) pair in the send layout: chunk-major, then
  /// destination rank, then slot.
  std::vector<std::int64_t> pairRow_;
  std::vector<TokenChunk> chunks_;
  std::vector<float> pairOutput_; // expert output per pair, send layout
  /// Token transfers of past chunks: their buffers serve the next step's.
  std::vector<Transfer> spareTransfers_;
  std::vector<float> dWeights_; // [T, k], summed over chunks
  Transfer gradReduce_;
  bool gradReduceStarted_ = false;
  std::vector<SlotState> slots_;
  /// The expert kernels' working buffers, kept between calls and steps.
  cpu::SwiGluScratch scratch_;
};

} // namespace laer::rt

#endif // LAER_RUNTIME_FSEP_FSEPMOELAYER_H
