//===- GpuFsepMoELayer.cpp - one FSEP MoE layer on a GPU rank -------------===//
//
// Buffer layouts (the CPU layer's, see FsepMoELayer.cpp and
// TokenExchange.h):
// - restore: a rank sends peer q its working shard of the expert in each
//   of q's used slots, in slot order; it receives from each owner the
//   shards of its own used slots and assembles slot s's full weights as
//   [owner 0's shard, owner 1's, ...] with one strided copy;
// - gradients travel the reverse way (fp32) and are summed at the owner in
//   source-rank order, as on the CPU;
// - tokens: send rows by pair (gathered from x by sendPair), receive rows
//   per chunk (source, then slot), expert rows chunk-major then slot then
//   source; the gathers of TokenExchange::gathers() move rows between them.
//
//===----------------------------------------------------------------------===//

#include "laer/runtime/cuda/GpuFsepMoELayer.h"
#include "laer/runtime/Limits.h"

#include <algorithm>
#include <numeric>

using namespace laer::rt;
using namespace laer::rt::cuda;

namespace {

template <typename T> void growTo(DeviceBuffer<T> &buffer, std::int64_t n) {
  if (static_cast<std::int64_t>(buffer.size()) < n)
    buffer = DeviceBuffer<T>(static_cast<std::size_t>(n));
}

template <typename T>
void uploadAsync(DeviceBuffer<T> &buffer, const std::vector<T> &host,
                 cudaStream_t stream) {
  growTo(buffer, static_cast<std::int64_t>(host.size()));
  if (!host.empty())
    check(cudaMemcpyAsync(buffer.data(), host.data(), host.size() * sizeof(T),
                          cudaMemcpyHostToDevice, stream),
          "cudaMemcpyAsync to device");
}

void zeroAsync(void *data, std::size_t bytes, cudaStream_t stream) {
  if (bytes)
    check(cudaMemsetAsync(data, 0, bytes, stream), "cudaMemsetAsync");
}

const std::uint8_t *bytesAt(const void *base, std::int64_t elements,
                            std::size_t elementBytes) {
  return static_cast<const std::uint8_t *>(base) +
         static_cast<std::size_t>(elements) * elementBytes;
}

} // namespace

//===----------------------------------------------------------------------===//
// GpuContext and DeviceRows
//===----------------------------------------------------------------------===//

GpuContext::GpuContext(Communicator &host, NcclCommunicator &tokens,
                       NcclCommunicator &params, Precision precision)
    : host_(host), tokens_(tokens), params_(params), precision_(precision),
      expertGemm_(precision, precision),
      weightGradGemm_(precision, Precision::Float32),
      routerGemm_(Precision::Float32, Precision::Float32) {
  if (tokens.size() != host.size() || params.size() != host.size() ||
      tokens.rank() != host.rank() || params.rank() != host.rank())
    fail({host.rank(), -1, -1},
         "the GPU context's communicators disagree: host rank ", host.rank(),
         " of ", host.size(), ", token rank ", tokens.rank(), " of ",
         tokens.size(), ", parameter rank ", params.rank(), " of ",
         params.size());
}

void DeviceRows::reserve(std::int64_t rows, std::int64_t width,
                         Precision precision) {
  width_ = width;
  element_ = bytesOf(precision);
  // 16 spare bytes: the gathers copy 16-byte vectors.
  auto bytes = static_cast<std::size_t>(rows * width) * element_ + 16;
  if (bytes_.size() < bytes)
    bytes_ = DeviceBuffer<std::uint8_t>(bytes);
}

//===----------------------------------------------------------------------===//
// Construction and state
//===----------------------------------------------------------------------===//

GpuFsepMoELayer::GpuFsepMoELayer(GpuContext &context,
                                 const MoELayerConfig &config, int layerIndex)
    : ctx_(context), config_(config), layer_(layerIndex),
      ranks_(context.host().size()), rank_(context.host().rank()) {
  ErrorContext where{rank_, layerIndex, -1};
  checkLayerConfig(config, where);
  if (ranks_ > kMaxRanks)
    fail(where, "a job runs at most ", kMaxRanks, " ranks, got ", ranks_);
  if (config.routing.groups > kMaxRouterGroups)
    fail(where, "group-limited routing on the GPU takes at most ",
         kMaxRouterGroups, " groups, got ", config.routing.groups);
  if (config.tokenChunks < 1)
    fail(where, "token chunks must be >= 1, got ", config.tokenChunks);
  const ExpertShape &shape = config.shape;
  if (shape.hidden < 1 || shape.ffn < 1)
    fail(where, "expert shape H = ", shape.hidden, ", F = ", shape.ffn,
         " must be positive");
  shard_ = (shape.parameters() + ranks_ - 1) / ranks_;
  // Slots start on 128-element boundaries, 256 bytes or more (cuBLASLt's
  // fastest paths want 256-byte aligned operands).
  slotPitch_ = (ranks_ * shard_ + 127) / 128 * 128;

  std::int64_t experts = config.numExperts, slots = config.slotsPerRank;
  std::size_t bytes = bytesOf(ctx_.precision());
  cudaStream_t compute = ctx_.compute();
  auto persistent = static_cast<std::size_t>(experts * shard_);
  master_ = DeviceBuffer<float>(persistent);
  grads_ = DeviceBuffer<float>(persistent);
  firstMoment_ = DeviceBuffer<float>(persistent);
  secondMoment_ = DeviceBuffer<float>(persistent);
  if (ctx_.precision() != Precision::Float32)
    working_ = DeviceBuffer<std::uint8_t>(persistent * bytes);
  auto gateSize = static_cast<std::size_t>(shape.hidden * experts);
  gate_ = DeviceBuffer<float>(gateSize);
  gateGrad_ = DeviceBuffer<float>(gateSize);
  gateFirstMoment_ = DeviceBuffer<float>(gateSize);
  gateSecondMoment_ = DeviceBuffer<float>(gateSize);
  dGate_ = DeviceBuffer<float>(gateSize);
  if (config.routing.selectionBias) {
    bias_.assign(static_cast<std::size_t>(experts), 0.0f);
    biasDevice_ = DeviceBuffer<float>(bias_.size());
    biasDevice_.upload(bias_);
  }
  squares_ = DeviceBuffer<double>(kSumOfSquaresBlocks + 1);

  // A rank sends or receives at most C shards per peer.
  auto exchange = static_cast<std::size_t>(ranks_ * slots * shard_);
  restoreSend_ = DeviceBuffer<std::uint8_t>(exchange * bytes);
  restoreRecv_ = DeviceBuffer<std::uint8_t>(exchange * bytes);
  gradSend_ = DeviceBuffer<float>(exchange);
  gradRecv_ = DeviceBuffer<float>(exchange);
  slotWeights_ = DeviceBuffer<std::uint8_t>(
      static_cast<std::size_t>(slots * slotPitch_) * bytes);
  slotGrads_ =
      DeviceBuffer<float>(static_cast<std::size_t>(slots * slotPitch_));
  for (DeviceBuffer<float> *buffer :
       {&master_, &grads_, &firstMoment_, &secondMoment_, &gate_, &gateGrad_,
        &gateFirstMoment_, &gateSecondMoment_, &slotGrads_})
    zeroAsync(buffer->data(), buffer->bytes(), compute);
  zeroAsync(working_.data(), working_.bytes(), compute);
  zeroAsync(slotWeights_.data(), slotWeights_.bytes(), compute);
  weightsReady_.record(compute);
  restoreRead_.record(compute);
  check(cudaStreamSynchronize(compute), "cudaStreamSynchronize");
}

ErrorContext GpuFsepMoELayer::context() const { return {rank_, layer_, step_}; }

void GpuFsepMoELayer::load(std::span<const float> shards,
                           std::span<const float> gate) {
  if (shards.size() != master_.size() || gate.size() != gate_.size())
    fail(context(), "GPU layer load: got ", shards.size(), " shard and ",
         gate.size(),
         " gate elements, the layer holds E * shard = ", master_.size(),
         " and H * E = ", gate_.size());
  cudaStream_t compute = ctx_.compute();
  check(cudaStreamSynchronize(compute), "cudaStreamSynchronize");
  master_.upload(shards);
  gate_.upload(gate);
  for (DeviceBuffer<float> *buffer :
       {&grads_, &firstMoment_, &secondMoment_, &gateGrad_, &gateFirstMoment_,
        &gateSecondMoment_})
    zeroAsync(buffer->data(), buffer->bytes(), compute);
  if (ctx_.precision() != Precision::Float32)
    convert(master_.data(), Precision::Float32, working_.data(),
            ctx_.precision(), static_cast<std::int64_t>(master_.size()),
            compute);
  weightsReady_.record(compute);
  check(cudaStreamSynchronize(compute), "cudaStreamSynchronize");
}

namespace {
std::vector<float> downloadAfter(const DeviceBuffer<float> &buffer,
                                 cudaStream_t stream) {
  check(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
  return buffer.download();
}
} // namespace

std::vector<float> GpuFsepMoELayer::shardParams() const {
  return downloadAfter(master_, ctx_.compute());
}
std::vector<float> GpuFsepMoELayer::shardGrads() const {
  return downloadAfter(grads_, ctx_.compute());
}
std::vector<float> GpuFsepMoELayer::gate() const {
  return downloadAfter(gate_, ctx_.compute());
}
std::vector<float> GpuFsepMoELayer::gateGrad() const {
  return downloadAfter(gateGrad_, ctx_.compute());
}

std::vector<float> GpuFsepMoELayer::shardFirstMoments() const {
  return downloadAfter(firstMoment_, ctx_.compute());
}
std::vector<float> GpuFsepMoELayer::shardSecondMoments() const {
  return downloadAfter(secondMoment_, ctx_.compute());
}
std::vector<float> GpuFsepMoELayer::gateFirstMoments() const {
  return downloadAfter(gateFirstMoment_, ctx_.compute());
}
std::vector<float> GpuFsepMoELayer::gateSecondMoments() const {
  return downloadAfter(gateSecondMoment_, ctx_.compute());
}

void GpuFsepMoELayer::loadMoments(std::span<const float> shardFirst,
                                  std::span<const float> shardSecond,
                                  std::span<const float> gateFirst,
                                  std::span<const float> gateSecond) {
  if (shardFirst.size() != master_.size() ||
      shardSecond.size() != master_.size() ||
      gateFirst.size() != gate_.size() || gateSecond.size() != gate_.size())
    fail(context(), "GPU layer moments: got ", shardFirst.size(), " and ",
         shardSecond.size(), " shard elements, ", gateFirst.size(), " and ",
         gateSecond.size(),
         " gate elements; the layer holds E * shard = ", master_.size(),
         " and H * E = ", gate_.size());
  check(cudaStreamSynchronize(ctx_.compute()), "cudaStreamSynchronize");
  firstMoment_.upload(shardFirst);
  secondMoment_.upload(shardSecond);
  gateFirstMoment_.upload(gateFirst);
  gateSecondMoment_.upload(gateSecond);
}

const void *GpuFsepMoELayer::workingShards() const {
  return ctx_.precision() == Precision::Float32
             ? static_cast<const void *>(master_.data())
             : static_cast<const void *>(working_.data());
}

const void *GpuFsepMoELayer::slotWeight(int s, std::int64_t offset) const {
  return bytesAt(slotWeights_.data(), s * slotPitch_ + offset,
                 bytesOf(ctx_.precision()));
}

float *GpuFsepMoELayer::slotGrad(int s, std::int64_t offset) {
  return slotGrads_.data() + s * slotPitch_ + offset;
}

void GpuFsepMoELayer::zeroGrads() {
  cudaStream_t compute = ctx_.compute();
  zeroAsync(grads_.data(), grads_.bytes(), compute);
  zeroAsync(gateGrad_.data(), gateGrad_.bytes(), compute);
}

void GpuFsepMoELayer::scaleGrads(float factor) {
  cudaStream_t compute = ctx_.compute();
  scale(grads_.data(), static_cast<std::int64_t>(grads_.size()), factor,
        compute);
  scale(gateGrad_.data(), static_cast<std::int64_t>(gateGrad_.size()), factor,
        compute);
}

void GpuFsepMoELayer::setSelectionBias(std::span<const float> bias) {
  if (bias.size() != bias_.size())
    fail(context(), "the selection bias has ", bias.size(),
         " elements; the layer's has ", bias_.size(),
         " (E with a selection bias, else none)");
  bias_.assign(bias.begin(), bias.end());
  // The router reads it on the compute stream.
  check(cudaStreamSynchronize(ctx_.compute()), "cudaStreamSynchronize");
  biasDevice_.upload(bias_);
}

double GpuFsepMoELayer::gradSquaredNorm() {
  cudaStream_t compute = ctx_.compute();
  double *result = squares_.data() + kSumOfSquaresBlocks;
  sumOfSquares(grads_.data(), static_cast<std::int64_t>(grads_.size()),
               squares_.data(), result, compute);
  double shards = 0, gate = 0;
  check(cudaMemcpyAsync(&shards, result, sizeof(double), cudaMemcpyDeviceToHost,
                        compute),
        "cudaMemcpyAsync of the gradient norm");
  check(cudaStreamSynchronize(compute), "cudaStreamSynchronize");
  ctx_.host().allReduceSum(std::span<double>(&shards, 1));
  sumOfSquares(gateGrad_.data(), static_cast<std::int64_t>(gateGrad_.size()),
               squares_.data(), result, compute);
  check(cudaMemcpyAsync(&gate, result, sizeof(double), cudaMemcpyDeviceToHost,
                        compute),
        "cudaMemcpyAsync of the gradient norm");
  check(cudaStreamSynchronize(compute), "cudaStreamSynchronize");
  return shards + gate;
}

void GpuFsepMoELayer::applyAdamW(const AdamWConfig &config, long step) {
  cudaStream_t compute = ctx_.compute();
  bool lowPrecision = ctx_.precision() != Precision::Float32;
  adamw(master_.data(), grads_.data(), firstMoment_.data(),
        secondMoment_.data(), static_cast<std::int64_t>(master_.size()), config,
        step, lowPrecision ? working_.data() : nullptr, compute);
  adamw(gate_.data(), gateGrad_.data(), gateFirstMoment_.data(),
        gateSecondMoment_.data(), static_cast<std::int64_t>(gate_.size()),
        config, step, nullptr, compute);
  weightsReady_.record(compute);
  if (config_.biasUpdateRate != 0.0 && !counts_.empty()) {
    // The loads over every rank: the same bias on every rank.
    cpu::updateSelectionBias(bias_, globalLoads(),
                             static_cast<float>(config_.biasUpdateRate));
    // Ordered before the next router on the compute stream; a copy from
    // pageable memory has read bias_ when the call returns.
    uploadAsync(biasDevice_, bias_, compute);
  }
}

//===----------------------------------------------------------------------===//
// Router losses
//===----------------------------------------------------------------------===//

std::vector<std::int64_t> GpuFsepMoELayer::globalLoads() const {
  return expertLoadsOf(counts_, config_.numExperts);
}

std::int64_t GpuFsepMoELayer::auxSequence() const {
  return auxLossSequence(config_);
}

std::pair<std::vector<std::int64_t>, std::int64_t>
GpuFsepMoELayer::auxLoads() const {
  return auxLossLoads(
      config_, counts_,
      cpu::choiceCounts(indices_, 0, tokens_, config_.numExperts, config_.topK),
      tokens_);
}

cpu::RouterLosses GpuFsepMoELayer::routerLosses() {
  if (stage_ == LayerStage::Idle || stage_ == LayerStage::Routed)
    fail(context(), "the router losses are asked for before the relayout "
                    "read the router's choices back");
  if (tokens_ == 0)
    return {};
  int E = config_.numExperts;
  std::int64_t span = tokens_;
  try {
    span = cpu::auxSpan(tokens_, auxSequence());
  } catch (const RuntimeError &error) {
    fail(context(), error.message());
  }
  cudaStream_t compute = ctx_.compute();
  routerProbabilitySums(scores_.data(), tokens_, E, config_.routing.score, span,
                        divisors_.data(), probabilitySums_.data(), compute);
  std::vector<double> sums(static_cast<std::size_t>(tokens_ / span * E));
  std::vector<float> logSumExp(static_cast<std::size_t>(tokens_));
  check(cudaMemcpyAsync(sums.data(), probabilitySums_.data(),
                        sums.size() * sizeof(double), cudaMemcpyDeviceToHost,
                        compute),
        "cudaMemcpyAsync of the router's probability sums");
  check(cudaMemcpyAsync(logSumExp.data(), logSumExp_.data(),
                        logSumExp.size() * sizeof(float),
                        cudaMemcpyDeviceToHost, compute),
        "cudaMemcpyAsync of the router's logsumexps");
  check(cudaStreamSynchronize(compute), "cudaStreamSynchronize");
  double squares = 0;
  for (float lse : logSumExp)
    squares += static_cast<double>(lse) * lse;
  auto [loads, loadTokens] = auxLoads();
  return cpu::routerLossesFrom(sums, squares, indices_, loads, loadTokens,
                               tokens_, E, config_.topK, auxSequence());
}

void GpuFsepMoELayer::setAuxLossGradient(float dAux) {
  if (stage_ == LayerStage::Idle)
    fail(context(), "the aux-loss gradient is set before the router ran");
  if (config_.losses.aux == AuxLoss::None)
    fail(context(), "an aux-loss gradient for a layer without an aux loss");
  dAux_ = dAux;
}

void GpuFsepMoELayer::setZLossGradient(float dZ) {
  if (stage_ == LayerStage::Idle)
    fail(context(), "the z-loss gradient is set before the router ran");
  if (!config_.losses.z)
    fail(context(), "a z-loss gradient for a layer without a z-loss");
  dZ_ = dZ;
}

//===----------------------------------------------------------------------===//
// The whole layer
//===----------------------------------------------------------------------===//

void GpuFsepMoELayer::forward(const void *x, void *out, std::int64_t tokens,
                              long step, RelayoutHook &hook) {
  route(x, tokens, step);
  relayout(hook);
  runForwardSchedule(*this, config_.tokenChunks, out,
                     /*restoreStarted=*/prefetchedSlots_.has_value());
}

void GpuFsepMoELayer::backward(const void *dOut, void *dx) {
  zeroAsync(dx,
            static_cast<std::size_t>(tokens_ * config_.shape.hidden) *
                bytesOf(ctx_.precision()),
            ctx_.compute());
  runBackwardSchedule(*this, static_cast<int>(chunks_.size()), dOut, dx);
}

AllToAllSizes GpuFsepMoELayer::chunkSizes(int c, bool dispatch) const {
  const AllToAllSizes &elements = exchange_.chunks[c].sizes;
  AllToAllSizes bytes =
      elements.scaled(static_cast<std::int64_t>(bytesOf(ctx_.precision())));
  return dispatch ? bytes : bytes.reversed();
}

std::int64_t GpuFsepMoELayer::blockBegin(int c, int s) const {
  return gathers_.blockBegin[c * config_.slotsPerRank + s];
}

std::int64_t GpuFsepMoELayer::blockRows(int c, int s) const {
  return blockBegin(c, s + 1) - blockBegin(c, s);
}

//===----------------------------------------------------------------------===//
// Forward phases
//===----------------------------------------------------------------------===//

void GpuFsepMoELayer::route(const void *x, std::int64_t tokens, long step) {
  step_ = step;
  for (Communicator *comm : {static_cast<Communicator *>(&ctx_.host()),
                             static_cast<Communicator *>(&ctx_.tokens()),
                             static_cast<Communicator *>(&ctx_.params())})
    comm->setErrorContext(layer_, step);
  if (tokens < 0)
    fail(context(), "the router got ", tokens, " tokens");
  if (restore_ && stage_ == LayerStage::Planned)
    fail(context(), "the router of a new step ran while the last step's "
                    "restore is still in flight");
  if (!prefetchedSlots_)
    restore_.reset();
  if (gradReduceStarted_)
    fail(context(), "the router of a new step ran while the last step's "
                    "gradient all-to-all is still in flight");
  tokens_ = tokens;
  x_ = x;
  chunks_.clear();
  std::int64_t hidden = config_.shape.hidden, experts = config_.numExperts;
  std::int64_t pairs = tokens * config_.topK;
  growTo(xFloat_, tokens * hidden);
  growTo(logits_, tokens * experts);
  growTo(scores_, tokens * experts);
  growTo(logSumExp_, tokens);
  growTo(divisors_, tokens);
  // The aux loss's groups: the sequences, or the whole batch.
  std::int64_t sequence = auxSequence();
  std::int64_t auxGroups =
      sequence > 0 ? (tokens + sequence - 1) / sequence : 1;
  growTo(probabilitySums_, auxGroups * experts);
  growTo(auxGradient_, auxGroups * experts);
  growTo(dLogits_, tokens * experts);
  growTo(dxRouter_, tokens * hidden);
  growTo(indicesDevice_, pairs);
  growTo(routeWeights_, pairs);
  growTo(dWeights_, pairs);

  cudaStream_t compute = ctx_.compute();
  convert(x, ctx_.precision(), xFloat_.data(), Precision::Float32,
          tokens * hidden, compute);
  GemmProblem logits{xFloat_.data(), gate_.data(), logits_.data(),
                     tokens,         experts,      hidden};
  ctx_.routerGemm().run({&logits, 1}, 1.0f, 0.0f, compute);
  routerTopK(logits_.data(), tokens, config_.numExperts, config_.topK,
             config_.routing, bias_.empty() ? nullptr : biasDevice_.data(),
             scores_.data(), logSumExp_.data(), indicesDevice_.data(),
             routeWeights_.data(), compute);
  dAux_ = dZ_ = 0.0f;
  stage_ = LayerStage::Routed;
}

void GpuFsepMoELayer::relayout(RelayoutHook &hook) {
  expectStage(stage_, LayerStage::Routed, "the relayout", context());
  cudaStream_t compute = ctx_.compute();
  indices_.resize(static_cast<std::size_t>(tokens_ * config_.topK));
  if (!indices_.empty())
    check(cudaMemcpyAsync(indices_.data(), indicesDevice_.data(),
                          indices_.size() * sizeof(std::int32_t),
                          cudaMemcpyDeviceToHost, compute),
          "cudaMemcpyAsync of the router's choices");
  check(cudaStreamSynchronize(compute), "cudaStreamSynchronize");
  plan_ = planLayerStep(ctx_.host(), hook, config_, layer_, step_, indices_,
                        history_, counts_);
  if (prefetchedSlots_ && *prefetchedSlots_ != plan_.layout.slots())
    fail(context(), "relayout hook '", hook.name(),
         "' chose another layout than the one this step's restore was "
         "prefetched for; prefetch only with hooks whose layout is known "
         "before the router runs");
  stage_ = LayerStage::Planned;
}

void GpuFsepMoELayer::startRestore() {
  expectStage(stage_, LayerStage::Planned, "the restore", context());
  if (restore_)
    fail(context(), "the restore was started twice");
  startRestoreFor(plan_.layout);
}

void GpuFsepMoELayer::prefetchRestore(const Layout &layout) {
  if (stage_ != LayerStage::Idle && stage_ != LayerStage::ForwardDone)
    fail(context(), "a restore was prefetched in the middle of a step");
  if (gradReduceStarted_)
    fail(context(), "a restore was prefetched while the last step's "
                    "gradient all-to-all is in flight");
  if (prefetchedSlots_)
    fail(context(), "the restore was prefetched twice");
  requireLayoutShape(layout, ranks_, config_, "a restore was prefetched for",
                     context());
  restore_.reset();
  startRestoreFor(layout);
  prefetchedSlots_ = layout.slots();
}

void GpuFsepMoELayer::startRestoreFor(const Layout &layout) {
  int slots = config_.slotsPerRank;
  std::size_t bytes = bytesOf(ctx_.precision());
  NcclCommunicator &params = ctx_.params();
  cudaStream_t stream = params.stream();
  // The working shards are final and the last restore's buffer was read.
  params.after(weightsReady_);
  params.after(restoreRead_);
  // The peers' shards of their slots' experts; this rank's own shards do
  // not travel (the unpack copies them from the working shards), so on one
  // GPU the restore is copies alone, which leave the SMs to the GEMMs.
  std::int64_t offset = 0;
  for (int peer = 0; peer < ranks_; ++peer)
    for (int slot = 0; slot < slots; ++slot)
      if (int expert = layout.expertAt(peer, slot); expert != Layout::kEmpty) {
        if (peer != rank_)
          check(
              cudaMemcpyAsync(restoreSend_.data() + offset * bytes,
                              bytesAt(workingShards(), expert * shard_, bytes),
                              shard_ * bytes, cudaMemcpyDeviceToDevice, stream),
              "cudaMemcpyAsync of a parameter shard");
        offset += shard_;
      }
  AllToAllSizes sizes = restoreSizes(layout, rank_, shard_)
                            .scaled(static_cast<std::int64_t>(bytes));
  sizes.sendCounts[rank_] = sizes.recvCounts[rank_] = 0;
  restore_ = params.startDeviceAllToAllV(
      restoreSend_.data(), restoreRecv_.data(), sizes, DataType::Byte);
  // The unpack into the slots, on the parameter stream as well, once what
  // the compute stream holds so far (the slots' earlier readers) is done.
  // A prefetch between a forward and its backward leaves it to
  // finishRestore on the compute stream: the backward still reads the
  // slots and is not queued yet.
  if (stage_ == LayerStage::ForwardDone && !backwardDone_) {
    unpackPending_ = true;
    return;
  }
  slotsFree_.record(ctx_.compute());
  params.after(slotsFree_);
  unpackRestore(layout, stream);
  restoreRead_.record(stream);
  restored_.record(stream);
}

void GpuFsepMoELayer::unpackRestore(const Layout &layout, cudaStream_t stream) {
  int slots = config_.slotsPerRank;
  std::size_t bytes = bytesOf(ctx_.precision());
  std::int64_t used = layout.usedSlots(rank_);
  for (int slot = 0, index = 0; slot < slots; ++slot) {
    int expert = layout.expertAt(rank_, slot);
    if (expert == Layout::kEmpty)
      continue;
    // Owner o's shard of this slot's expert sits at (o * used + index) of
    // the receive buffer, and at o * shard of the slot.
    auto *slotBytes = slotWeights_.data() + slot * slotPitch_ * bytes;
    auto copyOwners = [&](int first, int count) {
      if (count > 0)
        check(cudaMemcpy2DAsync(
                  slotBytes + first * shard_ * bytes, shard_ * bytes,
                  restoreRecv_.data() + (first * used + index) * shard_ * bytes,
                  used * shard_ * bytes, shard_ * bytes, count,
                  cudaMemcpyDeviceToDevice, stream),
              "cudaMemcpy2DAsync of restored shards");
    };
    copyOwners(0, rank_);
    check(cudaMemcpyAsync(slotBytes + rank_ * shard_ * bytes,
                          bytesAt(workingShards(), expert * shard_, bytes),
                          shard_ * bytes, cudaMemcpyDeviceToDevice, stream),
          "cudaMemcpyAsync of an own shard");
    copyOwners(rank_ + 1, ranks_ - rank_ - 1);
    ++index;
  }
}

void GpuFsepMoELayer::finishRestore() {
  expectStage(stage_, LayerStage::Planned, "the restore's wait", context());
  if (!restore_)
    fail(context(), "the restore's wait ran before the restore started");
  cudaStream_t compute = ctx_.compute();
  restore_->waitOn(compute);
  if (unpackPending_) {
    unpackRestore(plan_.layout, compute);
    restoreRead_.record(compute);
    unpackPending_ = false;
  } else {
    restored_.waitOn(compute);
  }
  prefetchedSlots_.reset();
  stage_ = LayerStage::Restored;
}

void GpuFsepMoELayer::planChunks(int chunks) {
  const MoELayerConfig &c = config_;
  std::int64_t hidden = c.shape.hidden, ffn = c.shape.ffn;
  exchange_ = TokenExchange::build(plan_, rank_, ranks_, c.slotsPerRank,
                                   c.numExperts, indices_, hidden, chunks);
  gathers_ = exchange_.gathers(c.slotsPerRank);
  cudaStream_t compute = ctx_.compute();
  uploadAsync(sendPair_, gathers_.sendPair, compute);
  uploadAsync(pairRow_, gathers_.pairRow, compute);
  uploadAsync(expertFromRecv_, gathers_.expertFromRecv, compute);
  uploadAsync(recvFromExpert_, gathers_.recvFromExpert, compute);
  if (auto pairs = static_cast<std::size_t>(tokens_ * c.topK);
      onesHost_.size() < pairs) {
    onesHost_.assign(pairs, 1.0f);
    uploadAsync(ones_, onesHost_, compute);
  }

  Precision p = ctx_.precision();
  std::int64_t sendRows = exchange_.sendRows;
  std::int64_t recvRows = gathers_.chunkRowBegin.back();
  for (DeviceRows *rows : {&send_, &pairOut_, &dSend_, &dPair_})
    rows->reserve(sendRows, hidden, p);
  for (DeviceRows *rows : {&recv_, &expertIn_, &expertOut_, &combineSend_,
                           &dRecv_, &dExpertOut_, &dExpertIn_, &dReturn_})
    rows->reserve(recvRows, hidden, p);
  for (DeviceRows *rows :
       {&gateProj_, &upProj_, &hidden_, &dHidden_, &dGateProj_, &dUpProj_})
    rows->reserve(recvRows, ffn, p);

  // Every pair's token row in send order, for all chunks at once.
  gatherRows(x_, send_.data(), p, hidden, sendPair_.data(), sendRows, c.topK,
             compute);
  chunks_.clear();
  chunks_.resize(static_cast<std::size_t>(chunks));
}

void GpuFsepMoELayer::startDispatch(int c, int chunks) {
  if (startsTokenChunks(stage_, c, chunks, chunks_.size(), context()))
    planChunks(chunks);
  ChunkState &state =
      advanceChunk(chunks_, c, ChunkStage::DispatchStarted, context());
  NcclCommunicator &tokens = ctx_.tokens();
  tokens.after(ctx_.compute());
  state.dispatch =
      tokens.startDeviceAllToAllV(send_.row(exchange_.chunks[c].sendBegin),
                                  recv_.row(gathers_.chunkRowBegin[c]),
                                  chunkSizes(c, true), DataType::Byte);
}

void GpuFsepMoELayer::finishDispatch(int c) {
  ChunkState &state =
      advanceChunk(chunks_, c, ChunkStage::Dispatched, context());
  cudaStream_t compute = ctx_.compute();
  state.dispatch->waitOn(compute);
  std::int64_t begin = gathers_.chunkRowBegin[c];
  gatherRows(recv_.data(), expertIn_.row(begin), ctx_.precision(),
             config_.shape.hidden, expertFromRecv_.data() + begin,
             gathers_.chunkRowBegin[c + 1] - begin, 1, compute);
}

void GpuFsepMoELayer::computeExperts(int c) {
  expectStage(stage_, LayerStage::Restored, "expert compute", context());
  advanceChunk(chunks_, c, ChunkStage::Computed, context());
  const ExpertShape &shape = config_.shape;
  std::int64_t hidden = shape.hidden, ffn = shape.ffn;
  cudaStream_t compute = ctx_.compute();
  std::vector<GemmProblem> up, down;
  for (int s = 0; s < config_.slotsPerRank; ++s) {
    std::int64_t b = blockBegin(c, s), rows = blockRows(c, s);
    if (rows == 0)
      continue;
    up.push_back({expertIn_.row(b), slotWeight(s, shape.w1Offset()),
                  gateProj_.row(b), rows, ffn, hidden});
    up.push_back({expertIn_.row(b), slotWeight(s, shape.w3Offset()),
                  upProj_.row(b), rows, ffn, hidden});
    down.push_back({hidden_.row(b), slotWeight(s, shape.w2Offset()),
                    expertOut_.row(b), rows, hidden, ffn});
  }
  ctx_.expertGemm().run(up, 1.0f, 0.0f, compute);
  std::int64_t begin = gathers_.chunkRowBegin[c];
  gatedActivation(gateProj_.row(begin), upProj_.row(begin), hidden_.row(begin),
                  ctx_.precision(),
                  (gathers_.chunkRowBegin[c + 1] - begin) * ffn,
                  config_.activation, compute);
  ctx_.expertGemm().run(down, 1.0f, 0.0f, compute);
}

void GpuFsepMoELayer::startCombine(int c) {
  ChunkState &state =
      advanceChunk(chunks_, c, ChunkStage::CombineStarted, context());
  cudaStream_t compute = ctx_.compute();
  std::int64_t begin = gathers_.chunkRowBegin[c];
  gatherRows(expertOut_.data(), combineSend_.row(begin), ctx_.precision(),
             config_.shape.hidden, recvFromExpert_.data() + begin,
             gathers_.chunkRowBegin[c + 1] - begin, 1, compute);
  NcclCommunicator &tokens = ctx_.tokens();
  tokens.after(compute);
  state.combine = tokens.startDeviceAllToAllV(
      combineSend_.row(begin), pairOut_.row(exchange_.chunks[c].sendBegin),
      chunkSizes(c, false), DataType::Byte);
}

void GpuFsepMoELayer::finishCombine(int c, void *out) {
  ChunkState &state = advanceChunk(chunks_, c, ChunkStage::Combined, context());
  cudaStream_t compute = ctx_.compute();
  state.combine->waitOn(compute);
  if (!allChunksReached(chunks_, ChunkStage::Combined))
    return;
  combineRows(pairOut_.data(), out, ctx_.precision(), config_.shape.hidden,
              pairRow_.data(), routeWeights_.data(), tokens_, config_.topK,
              /*accumulate=*/false, compute);
  stage_ = LayerStage::ForwardDone;
  backwardDone_ = false;
}

//===----------------------------------------------------------------------===//
// Backward phases
//===----------------------------------------------------------------------===//

void GpuFsepMoELayer::startCombineBackward(int c, const void *dOut) {
  if (stage_ != LayerStage::ForwardDone)
    fail(context(), "backward called without a completed forward");
  ChunkState &state = advanceChunk(chunks_, c, ChunkStage::GradSent, context());
  cudaStream_t compute = ctx_.compute();
  bool first =
      std::count_if(chunks_.begin(), chunks_.end(), [](const ChunkState &k) {
        return k.stage >= ChunkStage::GradSent;
      }) == 1;
  if (first) {
    // Every pair's row gradient and d(weight), for all chunks at once.
    combineRowsBackward(pairOut_.data(), dOut, dSend_.data(), dWeights_.data(),
                        ctx_.precision(), config_.shape.hidden, pairRow_.data(),
                        routeWeights_.data(), tokens_, config_.topK, compute);
    zeroAsync(slotGrads_.data(), slotGrads_.bytes(), compute);
  }
  NcclCommunicator &tokens = ctx_.tokens();
  tokens.after(compute);
  state.gradIn =
      tokens.startDeviceAllToAllV(dSend_.row(exchange_.chunks[c].sendBegin),
                                  dRecv_.row(gathers_.chunkRowBegin[c]),
                                  chunkSizes(c, true), DataType::Byte);
}

void GpuFsepMoELayer::finishCombineBackward(int c) {
  ChunkState &state =
      advanceChunk(chunks_, c, ChunkStage::GradArrived, context());
  cudaStream_t compute = ctx_.compute();
  state.gradIn->waitOn(compute);
  std::int64_t begin = gathers_.chunkRowBegin[c];
  gatherRows(dRecv_.data(), dExpertOut_.row(begin), ctx_.precision(),
             config_.shape.hidden, expertFromRecv_.data() + begin,
             gathers_.chunkRowBegin[c + 1] - begin, 1, compute);
}

void GpuFsepMoELayer::computeExpertsBackward(int c) {
  advanceChunk(chunks_, c, ChunkStage::GradComputed, context());
  const ExpertShape &shape = config_.shape;
  std::int64_t hidden = shape.hidden, ffn = shape.ffn;
  cudaStream_t compute = ctx_.compute();
  std::vector<GemmProblem> dHidden, dInputGate, dInputUp, dWeights;
  for (int s = 0; s < config_.slotsPerRank; ++s) {
    std::int64_t b = blockBegin(c, s), rows = blockRows(c, s);
    if (rows == 0)
      continue;
    // dHidden = dY w2^T; dX = dGate w1^T + dUp w3^T.
    dHidden.push_back({dExpertOut_.row(b), slotWeight(s, shape.w2Offset()),
                       dHidden_.row(b), rows, ffn, hidden, false, true});
    dInputGate.push_back({dGateProj_.row(b), slotWeight(s, shape.w1Offset()),
                          dExpertIn_.row(b), rows, hidden, ffn, false, true});
    dInputUp.push_back({dUpProj_.row(b), slotWeight(s, shape.w3Offset()),
                        dExpertIn_.row(b), rows, hidden, ffn, false, true});
    // dw1 += X^T dGate, dw3 += X^T dUp, dw2 += hidden^T dY.
    dWeights.push_back({expertIn_.row(b), dGateProj_.row(b),
                        slotGrad(s, shape.w1Offset()), hidden, ffn, rows, true,
                        false});
    dWeights.push_back({expertIn_.row(b), dUpProj_.row(b),
                        slotGrad(s, shape.w3Offset()), hidden, ffn, rows, true,
                        false});
    dWeights.push_back({hidden_.row(b), dExpertOut_.row(b),
                        slotGrad(s, shape.w2Offset()), ffn, hidden, rows, true,
                        false});
  }
  GroupedGemm &gemm = ctx_.expertGemm();
  gemm.run(dHidden, 1.0f, 0.0f, compute);
  std::int64_t begin = gathers_.chunkRowBegin[c];
  gatedActivationBackward(gateProj_.row(begin), upProj_.row(begin),
                          dHidden_.row(begin), dGateProj_.row(begin),
                          dUpProj_.row(begin), ctx_.precision(),
                          (gathers_.chunkRowBegin[c + 1] - begin) * ffn,
                          config_.activation, compute);
  gemm.run(dInputGate, 1.0f, 0.0f, compute);
  gemm.run(dInputUp, 1.0f, 1.0f, compute);
  ctx_.weightGradGemm().run(dWeights, 1.0f, 1.0f, compute);
}

void GpuFsepMoELayer::startDispatchBackward(int c) {
  ChunkState &state =
      advanceChunk(chunks_, c, ChunkStage::GradReturnStarted, context());
  cudaStream_t compute = ctx_.compute();
  std::int64_t begin = gathers_.chunkRowBegin[c];
  gatherRows(dExpertIn_.data(), dReturn_.row(begin), ctx_.precision(),
             config_.shape.hidden, recvFromExpert_.data() + begin,
             gathers_.chunkRowBegin[c + 1] - begin, 1, compute);
  NcclCommunicator &tokens = ctx_.tokens();
  tokens.after(compute);
  state.gradOut = tokens.startDeviceAllToAllV(
      dReturn_.row(begin), dPair_.row(exchange_.chunks[c].sendBegin),
      chunkSizes(c, false), DataType::Byte);
}

void GpuFsepMoELayer::finishDispatchBackward(int c, void *dx) {
  ChunkState &state =
      advanceChunk(chunks_, c, ChunkStage::GradReturned, context());
  cudaStream_t compute = ctx_.compute();
  state.gradOut->waitOn(compute);
  if (!allChunksReached(chunks_, ChunkStage::GradReturned))
    return;
  // Each token's input gradient: the sum of its pairs' returned rows.
  combineRows(dPair_.data(), dx, ctx_.precision(), config_.shape.hidden,
              pairRow_.data(), ones_.data(), tokens_, config_.topK,
              /*accumulate=*/true, compute);
}

void GpuFsepMoELayer::startGradReduce() {
  requireAllChunks(chunks_, ChunkStage::GradComputed, "the gradient all-to-all",
                   context());
  if (gradReduceStarted_)
    fail(context(), "the gradient all-to-all was started twice");
  const Layout &layout = plan_.layout;
  NcclCommunicator &params = ctx_.params();
  params.after(ctx_.compute());
  // Slice `owner` of each restored expert's gradient goes to `owner`:
  // the send buffer is [owner][used slot][shard].
  std::int64_t used = layout.usedSlots(rank_);
  for (int slot = 0, index = 0; slot < config_.slotsPerRank; ++slot) {
    if (layout.expertAt(rank_, slot) == Layout::kEmpty)
      continue;
    check(cudaMemcpy2DAsync(gradSend_.data() + index * shard_,
                            used * shard_ * sizeof(float), slotGrad(slot, 0),
                            shard_ * sizeof(float), shard_ * sizeof(float),
                            ranks_, cudaMemcpyDeviceToDevice, params.stream()),
          "cudaMemcpy2DAsync of gradient slices");
    ++index;
  }
  gradReduce_ = params.startDeviceAllToAllV(
      gradSend_.data(), gradRecv_.data(),
      restoreSizes(layout, rank_, shard_).reversed(), DataType::Float32);
  gradReduceStarted_ = true;
}

void GpuFsepMoELayer::finishGradReduce() {
  if (!gradReduceStarted_)
    fail(context(), "the gradient all-to-all's wait ran before it started");
  cudaStream_t compute = ctx_.compute();
  gradReduce_->waitOn(compute);
  // Owners sum the replicas' slices in source-rank order, as on the CPU.
  const Layout &layout = plan_.layout;
  const float *in = gradRecv_.data();
  for (int source = 0; source < ranks_; ++source)
    for (int slot = 0; slot < config_.slotsPerRank; ++slot) {
      int expert = layout.expertAt(source, slot);
      if (expert == Layout::kEmpty)
        continue;
      sumReplicas(in, 1, shard_, grads_.data() + expert * shard_,
                  /*accumulate=*/true, compute);
      in += shard_;
    }
  gradReduceStarted_ = false;
}

void GpuFsepMoELayer::routerBackward(void *dx) {
  requireAllChunks(chunks_, ChunkStage::GradSent, "the router gradient",
                   context());
  std::int64_t hidden = config_.shape.hidden, experts = config_.numExperts;
  cudaStream_t compute = ctx_.compute();
  RouterLossGradientsOnDevice losses;
  // The aux loss's d(loss)/d(p) per group of tokens (cpu::routerBackward's).
  auto [loads, loadTokens] = auxLoads();
  const std::int64_t sequence = auxSequence();
  if (dAux_ != 0.0f && tokens_ > 0 && (sequence > 0 || loadTokens > 0)) {
    try {
      auxGradientHost_ = cpu::auxProbabilityGradients(
          dAux_, indices_, loads, loadTokens, tokens_, config_.numExperts,
          config_.topK, sequence);
    } catch (const RuntimeError &error) {
      fail(context(), error.message());
    }
    uploadAsync(auxGradient_, auxGradientHost_, compute);
    losses.auxGradient = auxGradient_.data();
    losses.span = sequence > 0 ? sequence : tokens_;
  }
  if (dZ_ != 0.0f && tokens_ > 0) {
    losses.dZ = 2.0f * dZ_ / static_cast<float>(tokens_);
    losses.logits = logits_.data();
    losses.logSumExp = logSumExp_.data();
  }
  routerBackwardLogits(scores_.data(), indicesDevice_.data(),
                       routeWeights_.data(), dWeights_.data(), tokens_,
                       config_.numExperts, config_.topK, config_.routing,
                       losses, dLogits_.data(), compute);
  // dx += dLogits gate^T; dGate = x^T dLogits, all-reduced.
  GemmProblem dInput{dLogits_.data(), gate_.data(), dxRouter_.data(),
                     tokens_,         hidden,       experts,
                     false,           true};
  GemmProblem dGate{xFloat_.data(), dLogits_.data(), dGate_.data(), hidden,
                    experts,        tokens_,         true,          false};
  ctx_.routerGemm().run({&dInput, 1}, 1.0f, 0.0f, compute);
  accumulate(dxRouter_.data(), dx, ctx_.precision(), tokens_ * hidden, compute);
  ctx_.routerGemm().run({&dGate, 1}, 1.0f, 0.0f, compute);
  check(cudaStreamSynchronize(compute), "cudaStreamSynchronize");
  ctx_.tokens().allReduceSum(dGate_.data(), hidden * experts,
                             DataType::Float32);
  sumReplicas(dGate_.data(), 1, hidden * experts, gateGrad_.data(),
              /*accumulate=*/true, compute);
  backwardDone_ = true;
}
