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
//===----------------------------------------------------------------------===//

#ifndef LAER_RUNTIME_FSEPMOELAYER_H
#define LAER_RUNTIME_FSEPMOELAYER_H

#include "laer/runtime/AdamW.h"
#include "laer/runtime/Communicator.h"
#include "laer/runtime/ExpertShards.h"
#include "laer/runtime/PhaseTimes.h"
#include "laer/runtime/Plan.h"
#include "laer/runtime/RelayoutHook.h"
#include "laer/runtime/cpu/Kernels.h"

#include <cstdint>
#include <deque>
#include <memory>
#include <span>
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
};

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

  /// Deterministic weights, identical for every number of ranks.
  void initialize(std::uint64_t seed, float expertScale, float gateScale);

  /// `x` holds this rank's tokens [T, H]; returns [T, H].
  std::vector<float> forward(std::span<const float> x, long step,
                             RelayoutHook &hook);
  /// `dOut` [T, H] for the tokens of the last forward; returns d(x) and
  /// accumulates the expert-gradient shards and the gate gradient.
  std::vector<float> backward(std::span<const float> dOut);

  void zeroGrads();
  /// Multiplies the expert-shard and gate gradients by `factor` (1/N turns
  /// the sum over data-parallel ranks into their mean).
  void scaleGrads(float factor);
  void applyAdamW(const AdamWConfig &config, long step);

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
  /// Bytes of full expert weights restored on this rank in the last step.
  std::int64_t restoredBytes() const;

private:
  /// A restore all-to-all in flight (its buffers must outlive the handle).
  struct PendingRestore {
    std::vector<float> send, recv;
    AllToAllSizes sizes;
    std::unique_ptr<CommHandle> handle;
  };

  ErrorContext context() const { return {comm_.rank(), layer_, step_}; }
  Plan makePlan(RelayoutHook &hook);
  PendingRestore startRestore();
  void finishRestore(PendingRestore &pending);
  void dispatchTokens();
  void computeExperts();
  std::vector<float> combine();
  /// Copies slot `slot`'s rows out of / into a buffer in receive layout.
  void gatherSlotRows(std::span<const float> received, int slot,
                      std::span<float> rows) const;
  void scatterSlotRows(std::span<const float> rows, int slot,
                       std::span<float> received) const;
  /// Token all-to-all in the dispatch (`forward` true) or combine direction.
  std::vector<float> exchangeTokens(std::span<const float> send,
                                    bool forward);

  Communicator &comm_;
  MoELayerConfig config_;
  int layer_;
  long step_ = -1;
  ExpertShards experts_;
  std::vector<float> gate_, gateGrad_, gateM_, gateV_;
  PhaseTimes times_;

  // State of the last forward, used by backward.
  std::int64_t tokens_ = 0;
  std::vector<float> input_;
  cpu::RouterOutput router_;
  std::vector<std::int64_t> counts_;
  std::deque<std::vector<std::int64_t>> history_; // oldest first
  Plan plan_;
  /// Row of each (token, choice) pair in the dispatch send buffer.
  std::vector<std::int64_t> pairRow_;
  AllToAllSizes tokenSizes_;               // elements, dispatch direction
  std::vector<std::int64_t> blockRows_;    // [peer * C + slot]
  std::vector<std::int64_t> blockOffset_;  // [peer * C + slot], in rows
  struct SlotState {
    int expert = Layout::kEmpty;
    std::int64_t rows = 0;
    std::vector<float> weights; // restored, padded to N * shard
    std::vector<float> input;   // [rows, H]
    std::vector<float> output;  // [rows, H]
    cpu::SwiGluSaved saved;
  };
  std::vector<SlotState> slots_;
  std::vector<float> pairOutput_; // expert output per pair, send layout
  bool haveForward_ = false;
};

} // namespace laer::rt

#endif // LAER_RUNTIME_FSEPMOELAYER_H
