//===- FsepMoELayer.cpp - one MoE layer executed with FSEP ----------------===//
//
// Buffer layouts shared by sender and receiver (both derive them from the
// plan, which every rank holds, so no sizes are exchanged):
// - tokens: see TokenExchange.h.
// - parameters: a rank sends to peer q its shard of the expert in each of
//   q's used slots, in slot order; gradients travel the reverse way and are
//   summed at the owner in source-rank order (deterministic).
//
//===----------------------------------------------------------------------===//

#include "laer/runtime/fsep/FsepMoELayer.h"

#include <algorithm>
#include <numeric>
#include <utility>

using namespace laer::rt;

FsepMoELayer::FsepMoELayer(Communicator &comm, const MoELayerConfig &config,
                           int layerIndex)
    : comm_(comm), config_(config), layer_(layerIndex),
      experts_(config.shape, config.numExperts, comm.size(), comm.rank()) {
  checkLayerConfig(config, {comm.rank(), layerIndex, -1});
  auto gateSize =
      static_cast<std::size_t>(config.shape.hidden * config.numExperts);
  gate_.assign(gateSize, 0.0f);
  gateGrad_.assign(gateSize, 0.0f);
  gateM_.assign(gateSize, 0.0f);
  gateV_.assign(gateSize, 0.0f);
  if (config.routing.selectionBias)
    bias_.assign(static_cast<std::size_t>(config.numExperts), 0.0f);
}

void FsepMoELayer::initialize(std::uint64_t seed, float expertScale,
                              float gateScale) {
  experts_.initialize(seed, expertScale);
  // The gate is replicated: every rank computes all of it from the seed.
  constexpr std::uint64_t kGateStream = 1ull << 40;
  for (std::size_t i = 0; i < gate_.size(); ++i)
    gate_[i] = gateScale * (2.0f * uniformAt(seed, kGateStream, i) - 1.0f);
}

std::int64_t FsepMoELayer::restoredBytes() const {
  std::int64_t bytes = 0;
  for (const SlotState &slot : slots_)
    bytes += static_cast<std::int64_t>(slot.weights.size() * sizeof(float));
  return bytes;
}

void FsepMoELayer::zeroGrads() {
  experts_.zeroGrads();
  std::fill(gateGrad_.begin(), gateGrad_.end(), 0.0f);
}

void FsepMoELayer::scaleGrads(float factor) {
  for (float &g : experts_.allGrads())
    g *= factor;
  for (float &g : gateGrad_)
    g *= factor;
}

void FsepMoELayer::applyAdamW(const AdamWConfig &config, long step) {
  ScopedPhase phase(times_, Phase::Optimizer);
  adamwStep(experts_.allParams(), experts_.allGrads(), experts_.firstMoments(),
            experts_.secondMoments(), config, step);
  adamwStep(gate_, gateGrad_, gateM_, gateV_, config, step);
  updateSelectionBias();
}

double FsepMoELayer::gradSquaredNorm() {
  double shards = 0, gate = 0;
  for (float g : experts_.allGrads())
    shards += static_cast<double>(g) * g;
  comm_.allReduceSum(std::span<double>(&shards, 1));
  for (float g : gateGrad_)
    gate += static_cast<double>(g) * g;
  return shards + gate;
}

void FsepMoELayer::updateSelectionBias() {
  if (config_.biasUpdateRate == 0.0 || counts_.empty())
    return;
  // The loads over every rank (identical on all ranks, so is the bias).
  cpu::updateSelectionBias(bias_, globalLoads(),
                           static_cast<float>(config_.biasUpdateRate));
}

std::vector<std::int64_t> FsepMoELayer::globalLoads() const {
  return expertLoadsOf(counts_, config_.numExperts);
}

std::int64_t FsepMoELayer::auxSequence() const {
  return auxLossSequence(config_);
}

std::pair<std::vector<std::int64_t>, std::int64_t>
FsepMoELayer::auxLoads() const {
  return auxLossLoads(config_, counts_, localLoads_, tokens_);
}

cpu::RouterLosses FsepMoELayer::routerLosses() const {
  ErrorContext where = context();
  if (stage_ == LayerStage::Idle)
    fail(where, "the router losses are asked for before the router ran");
  if (config_.losses.aux == AuxLoss::GlobalBatch &&
      stage_ == LayerStage::Routed)
    fail(where, "the global-batch aux loss needs every rank's loads: ask "
                "for it after the relayout");
  auto [loads, loadTokens] = auxLoads();
  try {
    return cpu::routerLosses(router_, loads, loadTokens, tokens_,
                             config_.numExperts, config_.topK,
                             config_.routing.score, auxSequence());
  } catch (const RuntimeError &error) {
    fail(where, error.message());
  }
}

void FsepMoELayer::setAuxLossGradient(float dAux) {
  if (stage_ == LayerStage::Idle)
    fail(context(), "the aux-loss gradient is set before the router ran");
  if (config_.losses.aux == AuxLoss::None)
    fail(context(), "an aux-loss gradient for a layer without an aux loss");
  dAux_ = dAux;
}

void FsepMoELayer::setZLossGradient(float dZ) {
  if (stage_ == LayerStage::Idle)
    fail(context(), "the z-loss gradient is set before the router ran");
  if (!config_.losses.z)
    fail(context(), "a z-loss gradient for a layer without a z-loss");
  dZ_ = dZ;
}

//===----------------------------------------------------------------------===//
// The whole layer
//===----------------------------------------------------------------------===//

std::vector<float> FsepMoELayer::forward(std::span<const float> x, long step,
                                         RelayoutHook &hook) {
  route(x, step);
  relayout(hook);
  std::vector<float> out(
      static_cast<std::size_t>(tokens_ * config_.shape.hidden), 0.0f);
  runForwardSchedule(*this, config_.tokenChunks, std::span<float>(out));
  return out;
}

std::vector<float> FsepMoELayer::backward(std::span<const float> dOut) {
  std::vector<float> dx(
      static_cast<std::size_t>(tokens_ * config_.shape.hidden), 0.0f);
  runBackwardSchedule(*this, static_cast<int>(chunks_.size()), dOut,
                      std::span<float>(dx));
  return dx;
}

//===----------------------------------------------------------------------===//
// Forward phases
//===----------------------------------------------------------------------===//

void FsepMoELayer::route(std::span<const float> x, long step) {
  step_ = step;
  times_.step = step;
  comm_.setErrorContext(layer_, step);
  std::int64_t hidden = config_.shape.hidden;
  if (x.size() % hidden != 0)
    fail(context(), "input has ", x.size(),
         " elements, not a multiple of H = ", hidden);
  if (restoreStarted_ || gradReduceStarted_)
    fail(context(), "the router of a new step ran while a transfer of the "
                    "last step is still in flight");
  tokens_ = static_cast<std::int64_t>(x.size()) / hidden;
  input_.assign(x.begin(), x.end());
  retireChunks();
  ScopedPhase phase(times_, Phase::Router);
  router_ =
      cpu::routerForward(input_, gate_, bias_, tokens_, hidden,
                         config_.numExperts, config_.topK, config_.routing);
  localLoads_.assign(config_.numExperts, 0);
  for (std::int32_t e : router_.indices)
    ++localLoads_[e];
  dAux_ = dZ_ = 0.0f;
  stage_ = LayerStage::Routed;
}

void FsepMoELayer::relayout(RelayoutHook &hook) {
  comm_.setErrorContext(layer_, step_);
  expectStage(stage_, LayerStage::Routed, "the relayout", context());
  {
    ScopedPhase phase(times_, Phase::Plan);
    plan_ = planLayerStep(comm_, hook, config_, layer_, step_, router_.indices,
                          history_, counts_);
  }
  // Slots keep their buffers from step to step (a restored expert is
  // megabytes; fresh ones would fault in every page again).
  slots_.resize(static_cast<std::size_t>(config_.slotsPerRank));
  for (int slot = 0; slot < config_.slotsPerRank; ++slot) {
    SlotState &state = slots_[slot];
    state.expert = plan_.layout.expertAt(comm_.rank(), slot);
    state.rows = 0;
    state.chunkBegin.clear();
    state.restored = {};
    state.gradWritten = false;
    if (state.expert == Layout::kEmpty)
      state.weights.clear();
    for (std::vector<float> *buffer :
         {&state.input, &state.output, &state.dOutput})
      buffer->clear();
  }
  stage_ = LayerStage::Planned;
}

void FsepMoELayer::startRestore() {
  comm_.setErrorContext(layer_, step_);
  expectStage(stage_, LayerStage::Planned, "the restore", context());
  if (restoreStarted_)
    fail(context(), "the restore was started twice");
  ScopedPhase phase(times_, Phase::Restore);
  const Layout &layout = plan_.layout;
  int ranks = comm_.size(), me = comm_.rank(), slots = config_.slotsPerRank;
  std::int64_t shard = experts_.shardSize();

  // This rank's own shards go straight into its slots; the exchange
  // carries only the other ranks' (nothing at all on one rank). The
  // buffers stay allocated between steps.
  Transfer &t = restore_;
  t.sizes = restoreSizes(layout, me, shard).withoutSelf(me);
  t.send.resize(static_cast<std::size_t>(t.sizes.totalSend()));
  t.recv.resize(static_cast<std::size_t>(t.sizes.totalRecv()));
  float *out = t.send.data();
  for (int peer = 0; peer < ranks; ++peer)
    for (int slot = 0; slot < slots; ++slot)
      if (int expert = layout.expertAt(peer, slot);
          peer != me && expert != Layout::kEmpty)
        out = std::copy_n(experts_.params(expert).data(), shard, out);
  t.handle = comm_.startAllToAllV(t.send.data(), t.recv.data(), t.sizes,
                                  DataType::Float32);
  for (SlotState &state : slots_) {
    if (state.expert == Layout::kEmpty)
      continue;
    if (ranks == 1) {
      // The one shard is the whole expert: compute reads it in place.
      state.weights.clear();
      state.restored = experts_.params(state.expert);
      continue;
    }
    state.weights.resize(static_cast<std::size_t>(experts_.paddedSize()));
    std::copy_n(experts_.params(state.expert).data(), shard,
                state.weights.data() + me * shard);
    state.restored = state.weights;
  }
  restoreStarted_ = true;
}

void FsepMoELayer::finishRestore() {
  comm_.setErrorContext(layer_, step_);
  expectStage(stage_, LayerStage::Planned, "the restore's wait", context());
  if (!restoreStarted_)
    fail(context(), "the restore's wait ran before the restore started");
  ScopedPhase phase(times_, Phase::Restore);
  restore_.handle->wait();
  restoreStarted_ = false;
  int ranks = comm_.size(), me = comm_.rank(), slots = config_.slotsPerRank;
  std::int64_t shard = experts_.shardSize();
  const AllToAllSizes &sizes = restore_.sizes;
  for (int slot = 0, index = 0; slot < slots; ++slot) {
    SlotState &state = slots_[slot];
    if (state.expert == Layout::kEmpty)
      continue;
    for (int owner = 0; owner < ranks; ++owner)
      if (owner != me)
        std::copy_n(restore_.recv.data() + sizes.recvOffsets[owner] +
                        index * shard,
                    shard, state.weights.data() + owner * shard);
    ++index;
  }
  restore_.handle.reset();
  stage_ = LayerStage::Restored;
}

void FsepMoELayer::planTokenChunks(int chunks) {
  TokenExchange exchange = TokenExchange::build(
      plan_, comm_.rank(), comm_.size(), config_.slotsPerRank,
      config_.numExperts, router_.indices, config_.shape.hidden, chunks);
  std::int64_t hidden = config_.shape.hidden;
  retireChunks();
  chunks_.resize(static_cast<std::size_t>(chunks));
  for (TokenChunk &c : chunks_)
    if (!spareTransfers_.empty()) {
      c.transfer = std::move(spareTransfers_.back());
      spareTransfers_.pop_back();
    }
  for (int c = 0; c < chunks; ++c)
    static_cast<ExchangeChunk &>(chunks_[c]) = std::move(exchange.chunks[c]);
  pairRow_ = std::move(exchange.pairRow);
  pairOutput_.assign(static_cast<std::size_t>(exchange.sendRows * hidden),
                     0.0f);
  for (int slot = 0; slot < config_.slotsPerRank; ++slot) {
    SlotState &state = slots_[slot];
    state.chunkBegin = std::move(exchange.slotChunkBegin[slot]);
    state.rows = state.chunkBegin.back();
    auto size = static_cast<std::size_t>(state.rows * hidden);
    state.input.assign(size, 0.0f);
    state.output.assign(size, 0.0f);
    state.dOutput.clear();
    state.dInput.clear();
    state.weightGrad.clear();
    state.saved.resize(static_cast<std::size_t>(chunks));
  }
  dWeights_.assign(static_cast<std::size_t>(tokens_ * config_.topK), 0.0f);
}

void FsepMoELayer::retireChunks() {
  for (TokenChunk &c : chunks_) {
    c.transfer.handle.reset();
    spareTransfers_.push_back(std::move(c.transfer));
  }
  chunks_.clear();
}

void FsepMoELayer::startTokens(TokenChunk &c, bool forward) {
  comm_.setErrorContext(layer_, step_);
  Transfer &t = c.transfer;
  const AllToAllSizes &d = c.sizes;
  t.sizes = forward ? d : d.reversed();
  if (static_cast<std::int64_t>(t.send.size()) != t.sizes.totalSend())
    fail(context(), "token exchange: ", t.send.size(),
         " elements to send, the plan says ", t.sizes.totalSend());
  // Every element is received into (no zero-fill); the buffers are kept.
  t.recv.resize(static_cast<std::size_t>(t.sizes.totalRecv()));
  t.handle = comm_.startAllToAllV(t.send.data(), t.recv.data(), t.sizes,
                                  DataType::Float32);
}

std::span<const float> FsepMoELayer::finishTokens(TokenChunk &c) {
  comm_.setErrorContext(layer_, step_);
  Transfer &t = c.transfer;
  t.handle->wait();
  t.handle.reset();
  return t.recv;
}

void FsepMoELayer::receiveIntoSlots(const TokenChunk &c,
                                    std::span<const float> received,
                                    std::vector<float> SlotState::*rows) {
  std::int64_t hidden = config_.shape.hidden;
  int slots = config_.slotsPerRank;
  for (int peer = 0; peer < comm_.size(); ++peer)
    for (int slot = 0; slot < slots; ++slot) {
      const RecvBlock &block = c.blocks[peer * slots + slot];
      std::copy_n(received.data() + block.offset * hidden, block.rows * hidden,
                  (slots_[slot].*rows).data() + block.slotRow * hidden);
    }
}

void FsepMoELayer::sendFromSlots(TokenChunk &c,
                                 std::vector<float> SlotState::*rows) const {
  std::int64_t hidden = config_.shape.hidden;
  int slots = config_.slotsPerRank;
  std::vector<float> &send = c.transfer.send;
  send.resize(static_cast<std::size_t>(c.sizes.totalRecv()));
  for (int peer = 0; peer < comm_.size(); ++peer)
    for (int slot = 0; slot < slots; ++slot) {
      const RecvBlock &block = c.blocks[peer * slots + slot];
      std::copy_n((slots_[slot].*rows).data() + block.slotRow * hidden,
                  block.rows * hidden, send.data() + block.offset * hidden);
    }
}

void FsepMoELayer::startDispatch(int chunk, int chunks) {
  if (startsTokenChunks(stage_, chunk, chunks, chunks_.size(), context()))
    planTokenChunks(chunks);
  TokenChunk &c =
      advanceChunk(chunks_, chunk, ChunkStage::DispatchStarted, context());
  ScopedPhase phase(times_, Phase::Dispatch);
  std::int64_t hidden = config_.shape.hidden;
  int topK = config_.topK;
  std::vector<float> &send = c.transfer.send;
  send.resize(static_cast<std::size_t>(c.sendRows * hidden));
  for (std::int64_t pair : c.pairs)
    std::copy_n(input_.data() + (pair / topK) * hidden, hidden,
                send.data() + (pairRow_[pair] - c.sendBegin) * hidden);
  startTokens(c, /*forward=*/true);
}

void FsepMoELayer::finishDispatch(int chunk) {
  TokenChunk &c =
      advanceChunk(chunks_, chunk, ChunkStage::Dispatched, context());
  ScopedPhase phase(times_, Phase::Dispatch);
  receiveIntoSlots(c, finishTokens(c), &SlotState::input);
}

void FsepMoELayer::computeExperts(int chunk) {
  expectStage(stage_, LayerStage::Restored, "expert compute", context());
  advanceChunk(chunks_, chunk, ChunkStage::Computed, context());
  ScopedPhase phase(times_, Phase::Compute);
  std::int64_t hidden = config_.shape.hidden, ffn = config_.shape.ffn;
  for (SlotState &state : slots_) {
    std::int64_t begin = state.chunkBegin[chunk];
    std::int64_t rows = state.chunkBegin[chunk + 1] - begin;
    if (state.expert == Layout::kEmpty || rows == 0)
      continue;
    auto span = [&](std::vector<float> &v) {
      return std::span<float>(v).subspan(
          static_cast<std::size_t>(begin * hidden),
          static_cast<std::size_t>(rows * hidden));
    };
    cpu::swigluForward(span(state.input), state.restored, rows, hidden, ffn,
                       config_.activation, span(state.output),
                       state.saved[chunk], &scratch_);
  }
}

void FsepMoELayer::startCombine(int chunk) {
  TokenChunk &c =
      advanceChunk(chunks_, chunk, ChunkStage::CombineStarted, context());
  ScopedPhase phase(times_, Phase::Combine);
  sendFromSlots(c, &SlotState::output);
  startTokens(c, /*forward=*/false);
}

void FsepMoELayer::finishCombine(int chunk, std::span<float> out) {
  std::int64_t hidden = config_.shape.hidden;
  if (static_cast<std::int64_t>(out.size()) != tokens_ * hidden)
    fail(context(), "combine output has ", out.size(),
         " elements, expected T * H = ", tokens_, " * ", hidden);
  TokenChunk &c = advanceChunk(chunks_, chunk, ChunkStage::Combined, context());
  ScopedPhase phase(times_, Phase::Combine);
  std::span<const float> received = finishTokens(c);
  std::copy(received.begin(), received.end(),
            pairOutput_.begin() + c.sendBegin * hidden);
  int topK = config_.topK;
  for (std::int64_t pair : c.pairs) {
    float weight = router_.weights[pair];
    const float *src = pairOutput_.data() + pairRow_[pair] * hidden;
    float *dst = out.data() + (pair / topK) * hidden;
    for (std::int64_t h = 0; h < hidden; ++h)
      dst[h] += weight * src[h];
  }
  if (allChunksReached(chunks_, ChunkStage::Combined))
    stage_ = LayerStage::ForwardDone;
}

//===----------------------------------------------------------------------===//
// Backward phases
//===----------------------------------------------------------------------===//

void FsepMoELayer::startCombineBackward(int chunk,
                                        std::span<const float> dOut) {
  comm_.setErrorContext(layer_, step_);
  if (stage_ != LayerStage::ForwardDone)
    fail(context(), "backward called without a completed forward");
  std::int64_t hidden = config_.shape.hidden;
  if (static_cast<std::int64_t>(dOut.size()) != tokens_ * hidden)
    fail(context(), "output gradient has ", dOut.size(),
         " elements but the forward produced T * H = ", tokens_, " * ", hidden,
         " = ", tokens_ * hidden);
  TokenChunk &c = advanceChunk(chunks_, chunk, ChunkStage::GradSent, context());
  ScopedPhase phase(times_, Phase::Dispatch);
  // d(weights) and the rows' gradients, in send layout.
  int topK = config_.topK;
  std::vector<float> &send = c.transfer.send;
  send.resize(static_cast<std::size_t>(c.sendRows * hidden));
  for (std::int64_t pair : c.pairs) {
    const float *g = dOut.data() + (pair / topK) * hidden;
    const float *y = pairOutput_.data() + pairRow_[pair] * hidden;
    float *d = send.data() + (pairRow_[pair] - c.sendBegin) * hidden;
    float weight = router_.weights[pair], dot = 0.0f;
    for (std::int64_t h = 0; h < hidden; ++h) {
      dot += g[h] * y[h];
      d[h] = weight * g[h];
    }
    dWeights_[pair] = dot;
  }
  startTokens(c, /*forward=*/true);
}

void FsepMoELayer::finishCombineBackward(int chunk) {
  TokenChunk &c =
      advanceChunk(chunks_, chunk, ChunkStage::GradArrived, context());
  ScopedPhase phase(times_, Phase::Dispatch);
  std::span<const float> received = finishTokens(c);
  for (SlotState &state : slots_)
    if (state.dOutput.empty())
      state.dOutput.assign(state.input.size(), 0.0f);
  receiveIntoSlots(c, received, &SlotState::dOutput);
}

void FsepMoELayer::computeExpertsBackward(int chunk) {
  advanceChunk(chunks_, chunk, ChunkStage::GradComputed, context());
  ScopedPhase phase(times_, Phase::Compute);
  std::int64_t hidden = config_.shape.hidden, ffn = config_.shape.ffn;
  for (SlotState &state : slots_) {
    if (state.expert == Layout::kEmpty)
      continue;
    // Each chunk's backward writes its rows of dInput.
    state.dInput.resize(state.input.size());
    std::int64_t begin = state.chunkBegin[chunk];
    std::int64_t rows = state.chunkBegin[chunk + 1] - begin;
    if (rows == 0)
      continue;
    auto span = [&](std::vector<float> &v) {
      return std::span<float>(v).subspan(
          static_cast<std::size_t>(begin * hidden),
          static_cast<std::size_t>(rows * hidden));
    };
    // On one rank the gradient goes straight into the expert's state (its
    // one shard); else into the slot, the first chunk overwriting it.
    std::span<float> dWeights = experts_.grads(state.expert);
    bool accumulate = true;
    if (comm_.size() > 1) {
      state.weightGrad.resize(static_cast<std::size_t>(experts_.paddedSize()));
      dWeights = state.weightGrad;
      accumulate = state.gradWritten;
    }
    cpu::swigluBackward(span(state.input), state.restored, state.saved[chunk],
                        span(state.dOutput), rows, hidden, ffn,
                        config_.activation, span(state.dInput), dWeights,
                        accumulate, &scratch_);
    state.gradWritten = true;
  }
}

void FsepMoELayer::startDispatchBackward(int chunk) {
  TokenChunk &c =
      advanceChunk(chunks_, chunk, ChunkStage::GradReturnStarted, context());
  ScopedPhase phase(times_, Phase::Combine);
  sendFromSlots(c, &SlotState::dInput);
  startTokens(c, /*forward=*/false);
}

void FsepMoELayer::finishDispatchBackward(int chunk, std::span<float> dx) {
  std::int64_t hidden = config_.shape.hidden;
  if (static_cast<std::int64_t>(dx.size()) != tokens_ * hidden)
    fail(context(), "input gradient has ", dx.size(),
         " elements, expected T * H = ", tokens_, " * ", hidden);
  TokenChunk &c =
      advanceChunk(chunks_, chunk, ChunkStage::GradReturned, context());
  ScopedPhase phase(times_, Phase::Combine);
  std::span<const float> received = finishTokens(c);
  int topK = config_.topK;
  for (std::int64_t pair : c.pairs) {
    const float *src =
        received.data() + (pairRow_[pair] - c.sendBegin) * hidden;
    float *dst = dx.data() + (pair / topK) * hidden;
    for (std::int64_t h = 0; h < hidden; ++h)
      dst[h] += src[h];
  }
}

void FsepMoELayer::startGradReduce() {
  comm_.setErrorContext(layer_, step_);
  requireAllChunks(chunks_, ChunkStage::GradComputed, "the gradient all-to-all",
                   context());
  if (gradReduceStarted_)
    fail(context(), "the gradient all-to-all was started twice");
  ScopedPhase phase(times_, Phase::GradAllToAll);
  // Slice `owner` of each restored expert's gradient goes to `owner`.
  const Layout &layout = plan_.layout;
  int ranks = comm_.size(), me = comm_.rank(), slots = config_.slotsPerRank;
  std::int64_t shard = experts_.shardSize();
  // This rank's own slices are summed straight from its slots when the
  // exchange finishes; the exchange carries only the other ranks'.
  if (ranks > 1) {
    // Slots whose backward had no rows hold no gradient yet; the padding
    // past the three matrices is never written by the kernels.
    auto padded = static_cast<std::size_t>(experts_.paddedSize());
    auto matrices =
        static_cast<std::size_t>(3 * config_.shape.hidden * config_.shape.ffn);
    for (SlotState &state : slots_) {
      if (state.expert == Layout::kEmpty)
        continue;
      state.weightGrad.resize(padded);
      std::fill(state.weightGrad.begin() +
                    static_cast<std::ptrdiff_t>(
                        state.gradWritten ? matrices : std::size_t(0)),
                state.weightGrad.end(), 0.0f);
    }
  }
  Transfer &t = gradReduce_;
  t.sizes = restoreSizes(layout, me, shard).reversed().withoutSelf(me);
  t.send.resize(static_cast<std::size_t>(t.sizes.totalSend()));
  t.recv.resize(static_cast<std::size_t>(t.sizes.totalRecv()));
  float *out = t.send.data();
  for (int owner = 0; owner < ranks; ++owner)
    for (int slot = 0; slot < slots; ++slot)
      if (owner != me && slots_[slot].expert != Layout::kEmpty)
        out = std::copy_n(slots_[slot].weightGrad.data() + owner * shard, shard,
                          out);
  t.handle = comm_.startAllToAllV(t.send.data(), t.recv.data(), t.sizes,
                                  DataType::Float32);
  gradReduceStarted_ = true;
}

void FsepMoELayer::finishGradReduce() {
  comm_.setErrorContext(layer_, step_);
  if (!gradReduceStarted_)
    fail(context(), "the gradient all-to-all's wait ran before it started");
  ScopedPhase phase(times_, Phase::GradAllToAll);
  gradReduce_.handle->wait();
  gradReduceStarted_ = false;
  // Owners sum the replicas' slices in source-rank order (this rank's own
  // from its slots).
  const Layout &layout = plan_.layout;
  int ranks = comm_.size(), me = comm_.rank(), slots = config_.slotsPerRank;
  std::int64_t shard = experts_.shardSize();
  const float *in = gradReduce_.recv.data();
  if (ranks == 1) { // the backward wrote the expert's state directly
    gradReduce_.handle.reset();
    return;
  }
  for (int source = 0; source < ranks; ++source)
    for (int slot = 0; slot < slots; ++slot) {
      int expert = layout.expertAt(source, slot);
      if (expert == Layout::kEmpty)
        continue;
      const float *slice = in;
      if (source == me)
        slice = slots_[slot].weightGrad.data() + me * shard;
      else
        in += shard;
      std::span<float> grads = experts_.grads(expert);
      for (std::int64_t i = 0; i < shard; ++i)
        grads[i] += slice[i];
    }
  gradReduce_.handle.reset();
}

void FsepMoELayer::routerBackward(std::span<float> dx) {
  comm_.setErrorContext(layer_, step_);
  requireAllChunks(chunks_, ChunkStage::GradSent, "the router gradient",
                   context());
  std::int64_t hidden = config_.shape.hidden;
  if (static_cast<std::int64_t>(dx.size()) != tokens_ * hidden)
    fail(context(), "router input gradient has ", dx.size(),
         " elements, expected T * H = ", tokens_, " * ", hidden);
  ScopedPhase phase(times_, Phase::Router);
  std::vector<float> dGate(gate_.size(), 0.0f);
  auto [loads, loadTokens] = auxLoads();
  cpu::RouterLossGradients losses{dAux_, dZ_, loads, loadTokens, auxSequence()};
  try {
    cpu::routerBackward(input_, gate_, router_, dWeights_, tokens_, hidden,
                        config_.numExperts, config_.topK, config_.routing,
                        losses, dx, dGate);
  } catch (const RuntimeError &error) {
    fail(context(), error.message());
  }
  comm_.allReduceSum(std::span<float>(dGate));
  for (std::size_t i = 0; i < dGate.size(); ++i)
    gateGrad_[i] += dGate[i];
}
