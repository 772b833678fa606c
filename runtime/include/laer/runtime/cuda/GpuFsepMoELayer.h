//===- GpuFsepMoELayer.h - one FSEP MoE layer on a GPU rank -----*- C++ -*-===//
//
// The CPU FsepMoELayer's phases on device buffers, one rank per GPU. The
// host does what needs the plan: it reads the router's choices back (a
// few bytes per token), plans the step with the relayout hook
// (planLayerStep, over the host communicator) and uploads the step's row
// tables (TokenExchange::gathers). Everything else is queued on streams:
// - compute stream (the context's): router, row gathers, expert GEMMs
//   (cuBLASLt), activations, combine, router backward, AdamW;
// - token communicator's stream: dispatch and combine all-to-alls, one per
//   chunk, so chunk c + 1 travels while chunk c's experts compute;
// - parameter communicator's stream: the restore (peers' shards through
//   NCCL, then copies into the slots, this rank's own shards straight from
//   its working copy) and the gradient all-to-all, beside the token
//   traffic and the compute.
// Events order them: a transfer starts after the kernel that filled its
// send buffer, and no kernel reads a received buffer before its transfer
// completed (NcclHandle::waitOn). No phase blocks the host except the
// router read-back and the gate's gradient all-reduce.
//
// Parameters: fp32 master shards with their gradients and AdamW moments
// (ExpertShards' layout: rank r owns shard r of every expert), plus a
// working copy in the context's precision that the restore sends (bf16
// halves the restore's bytes). Activations and restored weights are in
// that precision; every GEMM accumulates in fp32, and weight gradients
// are fp32. The router runs in fp32.
//
//===----------------------------------------------------------------------===//

#ifndef LAER_RUNTIME_CUDA_GPUFSEPMOELAYER_H
#define LAER_RUNTIME_CUDA_GPUFSEPMOELAYER_H

#include "laer/runtime/AdamW.h"
#include "laer/runtime/cpu/Kernels.h"
#include "laer/runtime/cuda/CudaRuntime.h"
#include "laer/runtime/cuda/GroupedGemm.h"
#include "laer/runtime/cuda/Kernels.h"
#include "laer/runtime/cuda/NcclCommunicator.h"
#include "laer/runtime/fsep/LayerPlanning.h"
#include "laer/runtime/fsep/TokenExchange.h"

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <span>
#include <vector>

namespace laer::rt::cuda {

/// What the GPU MoE layers of one rank share: the communicators, the
/// compute stream and the GEMM engines (each one cuBLASLt handle, plan
/// cache and workspace).
class GpuContext {
public:
  /// `host` carries the small control messages (counts, plan agreement);
  /// `tokens` and `params` are NCCL communicators over the same ranks.
  GpuContext(Communicator &host, NcclCommunicator &tokens,
             NcclCommunicator &params, Precision precision);

  Communicator &host() { return host_; }
  NcclCommunicator &tokens() { return tokens_; }
  NcclCommunicator &params() { return params_; }
  Precision precision() const { return precision_; }
  cudaStream_t compute() const { return compute_.get(); }
  /// Activations times weights (inputs and outputs in the precision).
  GroupedGemm &expertGemm() { return expertGemm_; }
  /// Weight gradients: inputs in the precision, fp32 outputs.
  GroupedGemm &weightGradGemm() { return weightGradGemm_; }
  /// The router's fp32 GEMMs.
  GroupedGemm &routerGemm() { return routerGemm_; }

private:
  Communicator &host_;
  NcclCommunicator &tokens_, &params_;
  Precision precision_;
  Stream compute_;
  GroupedGemm expertGemm_, weightGradGemm_, routerGemm_;
};

/// Rows of `width` elements in a precision on the device, grown (never
/// shrunk) to the largest step seen, so steady-state steps allocate
/// nothing.
class DeviceRows {
public:
  void reserve(std::int64_t rows, std::int64_t width, Precision precision);
  void *row(std::int64_t r) {
    return bytes_.data() + static_cast<std::size_t>(r * width_) * element_;
  }
  const void *row(std::int64_t r) const {
    return bytes_.data() + static_cast<std::size_t>(r * width_) * element_;
  }
  void *data() { return bytes_.data(); }
  const void *data() const { return bytes_.data(); }

private:
  DeviceBuffer<std::uint8_t> bytes_;
  std::int64_t width_ = 0;
  std::size_t element_ = 4;
};

class GpuFsepMoELayer {
public:
  GpuFsepMoELayer(GpuContext &context, const MoELayerConfig &config,
                  int layerIndex);

  const MoELayerConfig &config() const { return config_; }
  int layerIndex() const { return layer_; }
  /// ceil(3 H F / N): elements of one expert's shard.
  std::int64_t shardSize() const { return shard_; }

  /// Takes this rank's master shards `[E][shardSize()]` and the gate
  /// [H, E] (an ExpertShards' allParams() and a CPU layer's gate give the
  /// same model on both backends). Resets the AdamW moments.
  void load(std::span<const float> shards, std::span<const float> gate);
  // Host copies of the state (checkpoints, tests).
  std::vector<float> shardParams() const;
  std::vector<float> shardGrads() const;
  std::vector<float> gate() const;
  std::vector<float> gateGrad() const;
  /// The AdamW moments of the master shards `[E][shardSize()]` and of the
  /// gate [H, E] (checkpoints: load() resets them, this puts them back).
  void loadMoments(std::span<const float> shardFirst,
                   std::span<const float> shardSecond,
                   std::span<const float> gateFirst,
                   std::span<const float> gateSecond);
  std::vector<float> shardFirstMoments() const;
  std::vector<float> shardSecondMoments() const;
  std::vector<float> gateFirstMoments() const;
  std::vector<float> gateSecondMoments() const;
  /// The load history the relayout hook sees (oldest first), as on the
  /// CPU layer; part of the training state.
  const std::deque<std::vector<std::int64_t>> &loadHistory() const {
    return history_;
  }
  void setLoadHistory(std::deque<std::vector<std::int64_t>> history) {
    history_ = std::move(history);
  }
  /// The selection bias [E] (empty without routing.selectionBias): part of
  /// the training state, updated after each optimizer step.
  const std::vector<float> &selectionBias() const { return bias_; }
  void setSelectionBias(std::span<const float> bias);

  /// This step's router losses (config().losses), as the CPU layer's:
  /// after the relayout (it reads the router's reductions back).
  cpu::RouterLosses routerLosses();
  /// d(loss)/d(aux) and d(loss)/d(z) for this step's router backward
  /// (zero unless set after the step's router).
  void setAuxLossGradient(float dAux);
  void setZLossGradient(float dZ);

  /// `x` [T, H] and `out` [T, H]: device buffers in the context's
  /// precision; `x` must stay unchanged until backward() returns.
  void forward(const void *x, void *out, std::int64_t tokens, long step,
               RelayoutHook &hook);
  /// `dOut` [T, H] for the last forward; writes d(x) [T, H] to `dx` and
  /// accumulates the expert-shard and gate gradients.
  void backward(const void *dOut, void *dx);

  // Forward phases, in program order (the CPU layer's; see FsepMoELayer).
  void route(const void *x, std::int64_t tokens, long step);
  /// Blocks the host: reads the router's choices back and plans the step.
  void relayout(RelayoutHook &hook);
  void startRestore();
  void finishRestore();
  /// Starts this step's restore for `layout` before the router runs, so
  /// it travels beside the previous layer's compute: for relayout hooks
  /// whose layout is known ahead (a static placement, or one planned from
  /// past load). The relayout then fails unless the plan keeps `layout`;
  /// forward() skips its own restore. Between a training forward and its
  /// backward the slots are still read: the transfer starts, the copy into
  /// the slots waits for the next finishRestore (and the shards sent are
  /// those before the coming optimizer step, so train with prefetches
  /// after it).
  void prefetchRestore(const Layout &layout);
  void startDispatch(int chunk, int chunks);
  void finishDispatch(int chunk);
  void computeExperts(int chunk);
  void startCombine(int chunk);
  /// The weighted sum runs once the last chunk is in: `out` is complete
  /// (on the compute stream) after every chunk's finishCombine.
  void finishCombine(int chunk, void *out);

  // Backward phases (same chunks as the forward).
  void startCombineBackward(int chunk, const void *dOut);
  void finishCombineBackward(int chunk);
  void computeExpertsBackward(int chunk);
  void startDispatchBackward(int chunk);
  /// Adds the input gradients of every pair to `dx` once the last chunk is
  /// in.
  void finishDispatchBackward(int chunk, void *dx);
  void startGradReduce();
  void finishGradReduce();
  /// Adds the router's input gradient to `dx` and the gate gradient
  /// (all-reduced over the ranks; blocks the host for it).
  void routerBackward(void *dx);

  void zeroGrads();
  /// Multiplies the expert-shard and gate gradients by `factor`.
  void scaleGrads(float factor);
  /// AdamW on the master shards and the gate; then the selection-bias
  /// update (config().biasUpdateRate) from the step's loads.
  void applyAdamW(const AdamWConfig &config, long step);
  /// The squared L2 norm of the gradients over every rank (collective over
  /// the host communicator): each rank's shards, and the gate once.
  double gradSquaredNorm();

  const Plan &lastPlan() const { return plan_; }
  const std::vector<std::int64_t> &lastCounts() const { return counts_; }
  std::int64_t tokens() const { return tokens_; }

private:
  /// A chunk's four token transfers (kept until the next step: destroying
  /// an NcclHandle blocks the host until its transfer is done).
  struct ChunkState {
    std::unique_ptr<NcclHandle> dispatch, combine, gradIn, gradOut;
    ChunkStage stage = ChunkStage::Planned;
  };

  ErrorContext context() const;
  /// Expert loads over every rank (the plan's counts), and the loads and
  /// tokens the aux loss counts.
  std::vector<std::int64_t> globalLoads() const;
  std::pair<std::vector<std::int64_t>, std::int64_t> auxLoads() const;
  std::int64_t auxSequence() const;
  void planChunks(int chunks);
  /// A chunk's token all-to-all in bytes, dispatch direction or reversed.
  AllToAllSizes chunkSizes(int c, bool dispatch) const;
  /// Expert rows of (chunk c, slot s): first row and count.
  std::int64_t blockBegin(int c, int s) const;
  std::int64_t blockRows(int c, int s) const;
  /// Restored weights of slot s (w1 [H, F], w3 [H, F], w2 [F, H]).
  const void *slotWeight(int s, std::int64_t offset) const;
  float *slotGrad(int s, std::int64_t offset);
  const void *workingShards() const;
  void startRestoreFor(const Layout &layout);
  /// The restored shards of `layout` into this rank's slots, on `stream`.
  void unpackRestore(const Layout &layout, cudaStream_t stream);

  GpuContext &ctx_;
  MoELayerConfig config_;
  int layer_, ranks_, rank_;
  std::int64_t shard_, slotPitch_;
  long step_ = -1;

  // Persistent state: fp32 master shards, gradients, moments; working copy.
  DeviceBuffer<float> master_, grads_, firstMoment_, secondMoment_;
  DeviceBuffer<std::uint8_t> working_; // bf16 copy (empty in fp32)
  DeviceBuffer<float> gate_, gateGrad_, gateFirstMoment_, gateSecondMoment_;
  DeviceBuffer<float> biasDevice_; // [E] with a selection bias
  std::vector<float> bias_;        // its host copy, the state of record
  DeviceBuffer<double> squares_;   // sumOfSquares' partials and result
  Event weightsReady_;             // the working shards are written
  Event restoreRead_; // the last restore's receive buffer is consumed
  Event slotsFree_;   // the compute stream's reads of the slots so far
  Event restored_;    // the slots hold the restored experts

  // Restore and gradient all-to-all buffers, sized for C slots per rank.
  DeviceBuffer<std::uint8_t> restoreSend_, restoreRecv_, slotWeights_;
  DeviceBuffer<float> gradSend_, gradRecv_, slotGrads_;
  std::unique_ptr<NcclHandle> restore_, gradReduce_;
  bool gradReduceStarted_ = false;
  std::optional<std::vector<int>> prefetchedSlots_; // layout of a prefetch
  /// The last forward's backward ran (its slot reads are queued); a
  /// prefetch before it leaves the unpack to finishRestore.
  bool backwardDone_ = true;
  bool unpackPending_ = false;

  // Step state.
  LayerStage stage_ = LayerStage::Idle;
  std::int64_t tokens_ = 0;
  const void *x_ = nullptr;
  std::vector<std::int32_t> indices_;
  float dAux_ = 0.0f, dZ_ = 0.0f;
  std::vector<std::int64_t> counts_;
  std::deque<std::vector<std::int64_t>> history_;
  Plan plan_;
  TokenExchange exchange_;
  ExchangeGathers gathers_;
  std::vector<ChunkState> chunks_;

  // Step buffers (grown to the largest step).
  DeviceBuffer<float> xFloat_, logits_, scores_, logSumExp_, routeWeights_,
      dWeights_, dLogits_, dxRouter_, dGate_, ones_, divisors_, auxGradient_;
  DeviceBuffer<double> probabilitySums_;
  std::vector<float> auxGradientHost_; // the source of auxGradient_
  std::vector<float> onesHost_;        // the source of ones_ (async upload)
  DeviceBuffer<std::int32_t> indicesDevice_, sendPair_, pairRow_,
      expertFromRecv_, recvFromExpert_;
  DeviceRows send_, recv_, expertIn_, gateProj_, upProj_, hidden_, expertOut_,
      combineSend_, pairOut_;
  DeviceRows dSend_, dRecv_, dExpertOut_, dHidden_, dGateProj_, dUpProj_,
      dExpertIn_, dReturn_, dPair_;
};

} // namespace laer::rt::cuda

#endif // LAER_RUNTIME_CUDA_GPUFSEPMOELAYER_H
