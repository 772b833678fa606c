//===- FsepMoELayer.cpp - one MoE layer executed with FSEP ----------------===//
//
// Buffer layouts shared by sender and receiver (both derive them from the
// plan, which every rank holds, so no sizes are exchanged):
// - tokens: a rank sends to peer q the rows for q's slots in slot order,
//   each slot's rows in (token, choice) order; it receives, per source
//   peer, the rows for each of its own slots in slot order ("receive
//   layout"). The combine direction is the exact reverse.
// - parameters: a rank sends to peer q its shard of the expert in each of
//   q's used slots, in slot order; gradients travel the reverse way and are
//   summed at the owner in source-rank order (deterministic).
//
//===----------------------------------------------------------------------===//

#include "laer/runtime/FsepMoELayer.h"

#include <algorithm>

using namespace laer::rt;

FsepMoELayer::FsepMoELayer(Communicator &comm, const MoELayerConfig &config,
                           int layerIndex)
    : comm_(comm), config_(config), layer_(layerIndex),
      experts_(config.shape, config.numExperts, comm.size(), comm.rank()) {
  ErrorContext where{comm.rank(), layerIndex, -1};
  if (config.topK < 1 || config.topK > config.numExperts)
    fail(where, "top_k must be in [1, E = ", config.numExperts, "], got ",
         config.topK);
  if (config.slotsPerRank < 1)
    fail(where, "slots per rank must be >= 1, got ", config.slotsPerRank);
  auto gateSize =
      static_cast<std::size_t>(config.shape.hidden * config.numExperts);
  gate_.assign(gateSize, 0.0f);
  gateGrad_.assign(gateSize, 0.0f);
  gateM_.assign(gateSize, 0.0f);
  gateV_.assign(gateSize, 0.0f);
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
  adamwStep(experts_.allParams(), experts_.allGrads(),
            experts_.firstMoments(), experts_.secondMoments(), config, step);
  adamwStep(gate_, gateGrad_, gateM_, gateV_, config, step);
}

//===----------------------------------------------------------------------===//
// Forward
//===----------------------------------------------------------------------===//

std::vector<float> FsepMoELayer::forward(std::span<const float> x, long step,
                                         RelayoutHook &hook) {
  step_ = step;
  times_.step = step;
  comm_.setErrorContext(layer_, step);
  std::int64_t hidden = config_.shape.hidden;
  if (x.size() % hidden != 0)
    fail(context(), "input has ", x.size(),
         " elements, not a multiple of H = ", hidden);
  tokens_ = static_cast<std::int64_t>(x.size()) / hidden;
  input_.assign(x.begin(), x.end());
  haveForward_ = false;

  {
    ScopedPhase phase(times_, Phase::Router);
    router_ = cpu::routerForward(input_, gate_, tokens_, hidden,
                                 config_.numExperts, config_.topK,
                                 config_.score, config_.renormalize);
  }
  {
    ScopedPhase phase(times_, Phase::Plan);
    plan_ = makePlan(hook);
  }
  slots_.assign(config_.slotsPerRank, SlotState{});
  for (int slot = 0; slot < config_.slotsPerRank; ++slot)
    slots_[slot].expert = plan_.layout.expertAt(comm_.rank(), slot);
  // The parameter restore is in flight while tokens are permuted and
  // dispatched; expert compute waits for both.
  PendingRestore restore = startRestore();
  dispatchTokens();
  finishRestore(restore);
  computeExperts();
  std::vector<float> out = combine();
  haveForward_ = true;
  return out;
}

Plan FsepMoELayer::makePlan(RelayoutHook &hook) {
  int numExperts = config_.numExperts;
  std::vector<std::int64_t> local(numExperts, 0);
  for (std::int32_t expert : router_.indices)
    ++local[expert];
  counts_ = comm_.allGather(std::span<const std::int64_t>(local));

  std::vector<std::int64_t> history;
  if (!history_.empty()) {
    history.assign(counts_.size(), 0);
    for (const std::vector<std::int64_t> &past : history_)
      for (std::size_t i = 0; i < past.size(); ++i)
        history[i] += past[i];
  }
  PlanRequest request{layer_,      step_,      comm_.size(),
                      config_.slotsPerRank, numExperts, counts_, history};
  Plan plan;
  try {
    plan = hook.plan(request);
  } catch (const RuntimeError &error) {
    // Hooks do not know the rank; say where the failure happened.
    fail(context(), "relayout hook '", hook.name(), "': ", error.message());
  }
  if (plan.layout.numRanks() != comm_.size() ||
      plan.layout.slotsPerRank() != config_.slotsPerRank ||
      plan.layout.numExperts() != numExperts)
    fail(context(), "relayout hook '", hook.name(), "' returned a layout for N = ",
         plan.layout.numRanks(), ", C = ", plan.layout.slotsPerRank(),
         ", E = ", plan.layout.numExperts(), " but the layer runs N = ",
         comm_.size(), ", C = ", config_.slotsPerRank, ", E = ", numExperts);
  validatePlan(plan, counts_, context());
  if (config_.historyWindow > 0) {
    history_.push_back(counts_);
    if (static_cast<int>(history_.size()) > config_.historyWindow)
      history_.pop_front();
  }

  // Agreement: a rank that computed another plan would deadlock or corrupt
  // the exchanges below, so compare before any data moves.
  auto mine = static_cast<std::int64_t>(fingerprint(plan));
  std::vector<std::int64_t> all =
      comm_.allGather(std::span<const std::int64_t>(&mine, 1));
  for (int peer = 0; peer < comm_.size(); ++peer)
    if (all[peer] != mine)
      fail(context(), "the plan of relayout hook '", hook.name(),
           "' differs between this rank and rank ", peer,
           "; hooks must be deterministic functions of their request");
  return plan;
}

FsepMoELayer::PendingRestore FsepMoELayer::startRestore() {
  ScopedPhase phase(times_, Phase::Restore);
  const Layout &layout = plan_.layout;
  int ranks = comm_.size(), me = comm_.rank(), slots = config_.slotsPerRank;
  std::int64_t shard = experts_.shardSize();

  PendingRestore pending;
  std::vector<std::int64_t> sendCounts(ranks), recvCounts(ranks);
  for (int peer = 0; peer < ranks; ++peer) {
    sendCounts[peer] = layout.usedSlots(peer) * shard;
    recvCounts[peer] = layout.usedSlots(me) * shard;
  }
  pending.sizes = AllToAllSizes::packed(sendCounts, recvCounts);
  pending.send.resize(static_cast<std::size_t>(pending.sizes.totalSend()));
  pending.recv.resize(static_cast<std::size_t>(pending.sizes.totalRecv()));
  float *out = pending.send.data();
  for (int peer = 0; peer < ranks; ++peer)
    for (int slot = 0; slot < slots; ++slot)
      if (int expert = layout.expertAt(peer, slot); expert != Layout::kEmpty)
        out = std::copy_n(experts_.params(expert).data(), shard, out);
  pending.handle = comm_.startAllToAllV(pending.send.data(),
                                        pending.recv.data(), pending.sizes,
                                        DataType::Float32);
  return pending;
}

void FsepMoELayer::finishRestore(PendingRestore &pending) {
  ScopedPhase phase(times_, Phase::Restore);
  pending.handle->wait();
  const Layout &layout = plan_.layout;
  int ranks = comm_.size(), me = comm_.rank(), slots = config_.slotsPerRank;
  std::int64_t shard = experts_.shardSize();
  int used = layout.usedSlots(me);
  for (int slot = 0, index = 0; slot < slots; ++slot) {
    SlotState &state = slots_[slot];
    if (state.expert == Layout::kEmpty)
      continue;
    state.weights.resize(static_cast<std::size_t>(experts_.paddedSize()));
    for (int owner = 0; owner < ranks; ++owner)
      std::copy_n(pending.recv.data() + (owner * used + index) * shard, shard,
                  state.weights.data() + owner * shard);
    ++index;
  }
}

void FsepMoELayer::dispatchTokens() {
  ScopedPhase phase(times_, Phase::Dispatch);
  const Layout &layout = plan_.layout;
  const Routing &routing = plan_.routing;
  int ranks = comm_.size(), me = comm_.rank(), slots = config_.slotsPerRank;
  int numExperts = config_.numExperts, topK = config_.topK;
  std::int64_t hidden = config_.shape.hidden;
  auto replicaCount = layout.replicas().size();

  // My row of the routing, dense: what I send to each replica.
  std::vector<std::int64_t> toReplica(replicaCount, 0);
  for (const Routing::Entry &entry : routing.row(me))
    toReplica[entry.replica] = entry.tokens;
  // Where each of my replica blocks starts in the send buffer.
  std::vector<std::int64_t> blockStart(replicaCount, 0);
  std::vector<std::int64_t> sendRows(ranks, 0), recvRows(ranks, 0);
  std::int64_t row = 0;
  for (int peer = 0; peer < ranks; ++peer) {
    for (int slot = 0; slot < slots; ++slot) {
      int replica = layout.replicaAt(peer, slot);
      if (replica < 0)
        continue;
      blockStart[replica] = row;
      row += toReplica[replica];
      sendRows[peer] += toReplica[replica];
    }
  }
  std::int64_t totalSend = row;

  // Assign pairs to replicas: an expert's pairs in token order fill its
  // replicas in replica order, each up to the routed share.
  pairRow_.assign(static_cast<std::size_t>(tokens_ * topK), -1);
  std::vector<std::int64_t> filled(replicaCount, 0);
  std::vector<std::size_t> cursor(numExperts, 0);
  for (std::int64_t pair = 0; pair < tokens_ * topK; ++pair) {
    int expert = router_.indices[pair];
    std::span<const int> replicas = layout.replicasOf(expert);
    std::size_t &c = cursor[expert];
    while (c < replicas.size() && filled[replicas[c]] == toReplica[replicas[c]])
      ++c;
    // validatePlan guarantees the shares add up to the pairs counted.
    int replica = replicas[c];
    pairRow_[pair] = blockStart[replica] + filled[replica]++;
  }
  std::vector<float> send(static_cast<std::size_t>(totalSend * hidden));
  for (std::int64_t pair = 0; pair < tokens_ * topK; ++pair)
    std::copy_n(input_.data() + (pair / topK) * hidden, hidden,
                send.data() + pairRow_[pair] * hidden);

  // What arrives: for each source, each of my slots' shares.
  blockRows_.assign(static_cast<std::size_t>(ranks * slots), 0);
  blockOffset_.assign(static_cast<std::size_t>(ranks * slots), 0);
  row = 0;
  for (int peer = 0; peer < ranks; ++peer) {
    for (int slot = 0; slot < slots; ++slot) {
      int replica = layout.replicaAt(me, slot);
      std::int64_t rows = replica < 0 ? 0 : routing.at(peer, replica);
      blockOffset_[peer * slots + slot] = row;
      blockRows_[peer * slots + slot] = rows;
      row += rows;
      recvRows[peer] += rows;
    }
  }
  for (int peer = 0; peer < ranks; ++peer) {
    sendRows[peer] *= hidden;
    recvRows[peer] *= hidden;
  }
  tokenSizes_ = AllToAllSizes::packed(sendRows, recvRows);
  std::vector<float> received = exchangeTokens(send, /*forward=*/true);

  for (int slot = 0; slot < slots; ++slot) {
    SlotState &state = slots_[slot];
    state.rows = 0;
    for (int peer = 0; peer < ranks; ++peer)
      state.rows += blockRows_[peer * slots + slot];
    state.input.resize(static_cast<std::size_t>(state.rows * hidden));
    gatherSlotRows(received, slot, state.input);
  }
}

std::vector<float> FsepMoELayer::exchangeTokens(std::span<const float> send,
                                                bool forward) {
  AllToAllSizes sizes =
      forward ? tokenSizes_
              : AllToAllSizes{tokenSizes_.recvCounts, tokenSizes_.recvOffsets,
                              tokenSizes_.sendCounts, tokenSizes_.sendOffsets};
  std::vector<float> received(static_cast<std::size_t>(sizes.totalRecv()));
  comm_.allToAllV(send, std::span<float>(received), sizes);
  return received;
}

void FsepMoELayer::gatherSlotRows(std::span<const float> received, int slot,
                                  std::span<float> rows) const {
  std::int64_t hidden = config_.shape.hidden;
  int slots = config_.slotsPerRank;
  float *out = rows.data();
  for (int peer = 0; peer < comm_.size(); ++peer) {
    std::int64_t block = peer * slots + slot;
    out = std::copy_n(received.data() + blockOffset_[block] * hidden,
                      blockRows_[block] * hidden, out);
  }
}

void FsepMoELayer::scatterSlotRows(std::span<const float> rows, int slot,
                                   std::span<float> received) const {
  std::int64_t hidden = config_.shape.hidden;
  int slots = config_.slotsPerRank;
  const float *in = rows.data();
  for (int peer = 0; peer < comm_.size(); ++peer) {
    std::int64_t block = peer * slots + slot;
    std::copy_n(in, blockRows_[block] * hidden,
                received.data() + blockOffset_[block] * hidden);
    in += blockRows_[block] * hidden;
  }
}

void FsepMoELayer::computeExperts() {
  ScopedPhase phase(times_, Phase::Compute);
  std::int64_t hidden = config_.shape.hidden, ffn = config_.shape.ffn;
  for (SlotState &state : slots_) {
    state.output.assign(static_cast<std::size_t>(state.rows * hidden), 0.0f);
    if (state.expert == Layout::kEmpty || state.rows == 0)
      continue;
    cpu::swigluForward(state.input, state.weights, state.rows, hidden, ffn,
                       config_.activation, state.output, state.saved);
  }
}

std::vector<float> FsepMoELayer::combine() {
  ScopedPhase phase(times_, Phase::Combine);
  std::int64_t hidden = config_.shape.hidden;
  std::vector<float> outgoing(
      static_cast<std::size_t>(tokenSizes_.totalRecv()));
  for (int slot = 0; slot < config_.slotsPerRank; ++slot)
    scatterSlotRows(slots_[slot].output, slot, outgoing);
  pairOutput_ = exchangeTokens(outgoing, /*forward=*/false);

  int topK = config_.topK;
  std::vector<float> out(static_cast<std::size_t>(tokens_ * hidden), 0.0f);
  for (std::int64_t t = 0; t < tokens_; ++t) {
    float *dst = out.data() + t * hidden;
    for (int j = 0; j < topK; ++j) {
      float weight = router_.weights[t * topK + j];
      const float *src = pairOutput_.data() + pairRow_[t * topK + j] * hidden;
      for (std::int64_t h = 0; h < hidden; ++h)
        dst[h] += weight * src[h];
    }
  }
  return out;
}

//===----------------------------------------------------------------------===//
// Backward
//===----------------------------------------------------------------------===//

std::vector<float> FsepMoELayer::backward(std::span<const float> dOut) {
  comm_.setErrorContext(layer_, step_);
  if (!haveForward_)
    fail(context(), "backward called without a completed forward");
  std::int64_t hidden = config_.shape.hidden, ffn = config_.shape.ffn;
  int topK = config_.topK, ranks = comm_.size(), slots = config_.slotsPerRank;
  if (static_cast<std::int64_t>(dOut.size()) != tokens_ * hidden)
    fail(context(), "output gradient has ", dOut.size(),
         " elements but the forward produced T * H = ", tokens_, " * ",
         hidden, " = ", tokens_ * hidden);

  // d(weights) and the rows' gradients, in send layout.
  std::vector<float> dWeights(static_cast<std::size_t>(tokens_ * topK));
  std::vector<float> dPairs(pairOutput_.size());
  {
    ScopedPhase phase(times_, Phase::Dispatch);
    for (std::int64_t t = 0; t < tokens_; ++t) {
      const float *g = dOut.data() + t * hidden;
      for (int j = 0; j < topK; ++j) {
        std::int64_t pair = t * topK + j;
        const float *y = pairOutput_.data() + pairRow_[pair] * hidden;
        float *d = dPairs.data() + pairRow_[pair] * hidden;
        float weight = router_.weights[pair], dot = 0.0f;
        for (std::int64_t h = 0; h < hidden; ++h) {
          dot += g[h] * y[h];
          d[h] = weight * g[h];
        }
        dWeights[pair] = dot;
      }
    }
  }
  std::vector<float> dReceived;
  {
    ScopedPhase phase(times_, Phase::Dispatch);
    dReceived = exchangeTokens(dPairs, /*forward=*/true);
  }

  // Expert backward: input gradients go back, weight gradients to owners.
  std::vector<float> dInputs(dReceived.size(), 0.0f);
  std::vector<std::vector<float>> weightGrads(slots);
  {
    ScopedPhase phase(times_, Phase::Compute);
    for (int slot = 0; slot < slots; ++slot) {
      SlotState &state = slots_[slot];
      if (state.expert == Layout::kEmpty)
        continue;
      weightGrads[slot].assign(static_cast<std::size_t>(experts_.paddedSize()),
                               0.0f);
      if (state.rows == 0)
        continue;
      auto size = static_cast<std::size_t>(state.rows * hidden);
      std::vector<float> dy(size), dx(size);
      gatherSlotRows(dReceived, slot, dy);
      cpu::swigluBackward(state.input, state.weights, state.saved, dy,
                          state.rows, hidden, ffn, config_.activation, dx,
                          weightGrads[slot]);
      scatterSlotRows(dx, slot, dInputs);
    }
  }
  std::vector<float> dPairInputs;
  {
    ScopedPhase phase(times_, Phase::Combine);
    dPairInputs = exchangeTokens(dInputs, /*forward=*/false);
  }

  // Gradient all-to-all: slice `owner` of each restored expert's gradient
  // goes to `owner`; it runs while the router gradient is computed.
  const Layout &layout = plan_.layout;
  int me = comm_.rank();
  std::int64_t shard = experts_.shardSize();
  std::vector<float> gradSend, gradRecv;
  AllToAllSizes gradSizes;
  std::unique_ptr<CommHandle> gradHandle;
  {
    ScopedPhase phase(times_, Phase::GradAllToAll);
    std::vector<std::int64_t> sendCounts(ranks), recvCounts(ranks);
    for (int peer = 0; peer < ranks; ++peer) {
      sendCounts[peer] = layout.usedSlots(me) * shard;
      recvCounts[peer] = layout.usedSlots(peer) * shard;
    }
    gradSizes = AllToAllSizes::packed(sendCounts, recvCounts);
    gradSend.resize(static_cast<std::size_t>(gradSizes.totalSend()));
    gradRecv.resize(static_cast<std::size_t>(gradSizes.totalRecv()));
    float *out = gradSend.data();
    for (int owner = 0; owner < ranks; ++owner)
      for (int slot = 0; slot < slots; ++slot)
        if (slots_[slot].expert != Layout::kEmpty)
          out = std::copy_n(weightGrads[slot].data() + owner * shard, shard,
                            out);
    gradHandle = comm_.startAllToAllV(gradSend.data(), gradRecv.data(),
                                      gradSizes, DataType::Float32);
  }

  std::vector<float> dx(static_cast<std::size_t>(tokens_ * hidden), 0.0f);
  {
    ScopedPhase phase(times_, Phase::Router);
    for (std::int64_t t = 0; t < tokens_; ++t) {
      float *dst = dx.data() + t * hidden;
      for (int j = 0; j < topK; ++j) {
        const float *src =
            dPairInputs.data() + pairRow_[t * topK + j] * hidden;
        for (std::int64_t h = 0; h < hidden; ++h)
          dst[h] += src[h];
      }
    }
    std::vector<float> dGate(gate_.size(), 0.0f);
    cpu::routerBackward(input_, gate_, router_, dWeights, tokens_, hidden,
                        config_.numExperts, topK, config_.score,
                        config_.renormalize, dx, dGate);
    comm_.allReduceSum(std::span<float>(dGate));
    for (std::size_t i = 0; i < dGate.size(); ++i)
      gateGrad_[i] += dGate[i];
  }

  {
    ScopedPhase phase(times_, Phase::GradAllToAll);
    gradHandle->wait();
    // Owners sum the replicas' slices in source-rank order.
    const float *in = gradRecv.data();
    for (int source = 0; source < ranks; ++source) {
      for (int slot = 0; slot < slots; ++slot) {
        int expert = layout.expertAt(source, slot);
        if (expert == Layout::kEmpty)
          continue;
        std::span<float> grads = experts_.grads(expert);
        for (std::int64_t i = 0; i < shard; ++i)
          grads[i] += in[i];
        in += shard;
      }
    }
  }
  return dx;
}
