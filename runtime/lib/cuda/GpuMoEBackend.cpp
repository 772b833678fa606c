//===- GpuMoEBackend.cpp - a model's MoE layers on this rank's GPU --------===//
//
// The `cuda` MoE backend: every layer of TrainingState::moe gets a
// GpuFsepMoELayer with the same configuration and state, on the GPU whose
// index is the rank's index on its machine (NCCL wants one GPU per rank).
// The model's dense part stays on the host, so each layer's input crosses
// to the device once per forward (and is kept there for its backward) and
// its output, gradient and input gradient cross once each. When the hook
// knows a layer's layout ahead (between re-plans), the layer's restore
// starts as soon as the previous layer's output is back on the host, so
// it travels while the host computes the layer's attention. With a
// tracer attached to the layers' phase times (--trace), each layer's
// forward and backward is one span: a call returns once the device is
// done, so the span is its wall time.
//
//===----------------------------------------------------------------------===//

#include "laer/runtime/DeviceInfo.h"
#include "laer/runtime/Error.h"
#include "laer/runtime/cuda/GpuFsepMoELayer.h"
#include "laer/runtime/io/Trace.h"
#include "laer/runtime/model/MoEBackend.h"
#include "laer/runtime/model/TrainingState.h"

#include <algorithm>
#include <chrono>
#include <cstring>

using namespace laer::rt;
using namespace laer::rt::cuda;

namespace {

/// The GPU of this rank: its index on its machine, after checking that
/// every rank of the machine has one; or the only GPU it sees (a launcher
/// that gives each rank its own, CUDA_VISIBLE_DEVICES). Makes it the
/// current device.
int chooseDevice(const TrainingState &state, const MoEBackendOptions &options) {
  ErrorContext where{state.comm.rank(), -1, -1};
  if (!deviceAvailable()) {
    std::string why = describeDevices();
    while (!why.empty() && why.back() == '\n')
      why.pop_back();
    fail(where, "--device cuda: ", why);
  }
  int count = 0;
  check(cudaGetDeviceCount(&count), "cudaGetDeviceCount");
  int device = count == 1 ? 0 : options.localRank;
  if (count > 1 && (options.localRank < 0 || options.localRanks > count))
    fail(where, "--device cuda: this machine runs ", options.localRanks,
         " ranks but this rank sees ", count,
         " GPUs; NCCL needs a GPU of its own for every rank, so start at "
         "most ",
         count, " ranks per machine (or give each rank one GPU)");
  check(cudaSetDevice(device), "cudaSetDevice");
  // Two ranks on one GPU would only fail inside NCCL's set-up: compare the
  // GPUs' UUIDs first and say which ranks share one.
  cudaDeviceProp properties{};
  check(cudaGetDeviceProperties(&properties, device),
        "cudaGetDeviceProperties");
  constexpr int kUuidBytes = sizeof(properties.uuid.bytes);
  Communicator &comm = state.comm;
  std::vector<char> uuids(static_cast<std::size_t>(kUuidBytes) * comm.size());
  comm.allGather(properties.uuid.bytes, uuids.data(), kUuidBytes,
                 DataType::Byte);
  const char *mine = uuids.data() + kUuidBytes * comm.rank();
  for (int other = 0; other < comm.size(); ++other)
    if (other != comm.rank() &&
        std::memcmp(uuids.data() + kUuidBytes * other, mine, kUuidBytes) == 0)
      fail(where, "--device cuda: ranks ", std::min(other, comm.rank()),
           " and ", std::max(other, comm.rank()), " share GPU ", device, " (",
           properties.name, "); NCCL needs a GPU of its own for every rank");
  return device;
}

Precision precisionOf(const MoEBackendOptions &options) {
  return options.precision == "fp32" ? Precision::Float32 : Precision::BFloat16;
}

template <typename T> void growTo(DeviceBuffer<T> &buffer, std::size_t n) {
  if (buffer.size() < n)
    buffer = DeviceBuffer<T>(n);
}

class GpuMoEBackend : public MoEBackend {
public:
  GpuMoEBackend(TrainingState &state, const MoEBackendOptions &options)
      : state_(state), device_(chooseDevice(state, options)),
        tokens_(state.comm, device_), params_(state.comm, device_),
        context_(state.comm, tokens_, params_, precisionOf(options)) {
    for (auto &cpu : state.moe)
      layers_.push_back(std::make_unique<GpuFsepMoELayer>(
          context_, cpu->config(), cpu->layerIndex()));
    inputs_.resize(layers_.size());
    prefetchedStep_.assign(layers_.size(), -1);
    forwardStep_.assign(layers_.size(), -1);
    loadState();
  }

  std::string describe() const override {
    cudaDeviceProp properties{};
    check(cudaGetDeviceProperties(&properties, device_),
          "cudaGetDeviceProperties");
    return std::string("cuda ") +
           (context_.precision() == Precision::Float32 ? "fp32" : "bf16") +
           " on GPU " + std::to_string(device_) + " (" + properties.name + ")";
  }

  std::vector<float> forward(int layer, std::span<const float> x, long step,
                             RelayoutHook &hook) override {
    GpuFsepMoELayer &gpu = at(layer, step);
    std::int64_t tokens = rowsOf(x.size(), gpu, step, "forward input");
    Precision precision = context_.precision();
    std::int64_t hidden = gpu.config().shape.hidden;
    inputs_[layer].reserve(tokens, hidden, precision);
    output_.reserve(tokens, hidden, precision);
    auto start = std::chrono::steady_clock::now();
    prefetch(layer, step, hook);
    toDevice(x, inputs_[layer].data());
    gpu.forward(inputs_[layer].data(), output_.data(), tokens, step, hook);
    std::vector<float> out = toHost(output_.data(), x.size());
    forwardStep_[layer] = step;
    trace(layer, "GPU forward", start, step);
    if (layer + 1 < static_cast<int>(layers_.size()))
      prefetch(layer + 1, step, hook);
    return out;
  }

  std::vector<float> backward(int layer, std::span<const float> dOut) override {
    GpuFsepMoELayer &gpu = at(layer, -1);
    std::int64_t tokens = rowsOf(dOut.size(), gpu, -1, "output gradient");
    if (tokens != gpu.tokens())
      fail({state_.comm.rank(), layer, -1}, "MoE backward got ", tokens,
           " token rows; the layer's last forward had ", gpu.tokens());
    Precision precision = context_.precision();
    std::int64_t hidden = gpu.config().shape.hidden;
    dOut_.reserve(tokens, hidden, precision);
    dx_.reserve(tokens, hidden, precision);
    auto start = std::chrono::steady_clock::now();
    toDevice(dOut, dOut_.data());
    gpu.backward(dOut_.data(), dx_.data());
    std::vector<float> dx = toHost(dx_.data(), dOut.size());
    trace(layer, "GPU backward", start, forwardStep_[layer]);
    return dx;
  }

  void zeroGrads() override {
    for (auto &layer : layers_)
      layer->zeroGrads();
  }
  void update(int layer, float gradScale, const AdamWConfig &config,
              long step) override {
    GpuFsepMoELayer &gpu = at(layer, step - 1);
    if (gradScale != 1.0f)
      gpu.scaleGrads(gradScale);
    gpu.applyAdamW(config, step);
  }
  double gradSquaredNorm(int layer) override {
    return at(layer, -1).gradSquaredNorm();
  }
  const Plan &lastPlan(int layer) const override {
    return layers_.at(layer)->lastPlan();
  }
  cpu::RouterLosses routerLosses(int layer) override {
    return at(layer, -1).routerLosses();
  }
  void setAuxLossGradient(int layer, float dAux) override {
    at(layer, -1).setAuxLossGradient(dAux);
  }
  void setZLossGradient(int layer, float dZ) override {
    at(layer, -1).setZLossGradient(dZ);
  }
  long restoresAhead() const override { return restoresAhead_; }

  void storeState() override {
    for (std::size_t l = 0; l < layers_.size(); ++l) {
      const GpuFsepMoELayer &gpu = *layers_[l];
      FsepMoELayer &cpu = *state_.moe[l];
      copyInto(gpu.shardParams(), cpu.experts().allParams());
      copyInto(gpu.shardFirstMoments(), cpu.experts().firstMoments());
      copyInto(gpu.shardSecondMoments(), cpu.experts().secondMoments());
      copyInto(gpu.gate(), cpu.gate());
      copyInto(gpu.gateFirstMoments(), cpu.gateFirstMoment());
      copyInto(gpu.gateSecondMoments(), cpu.gateSecondMoment());
      cpu.setLoadHistory(gpu.loadHistory());
      copyInto(gpu.selectionBias(), cpu.selectionBias());
    }
  }

  void loadState() override {
    for (std::size_t l = 0; l < layers_.size(); ++l) {
      GpuFsepMoELayer &gpu = *layers_[l];
      FsepMoELayer &cpu = *state_.moe[l];
      gpu.load(cpu.experts().allParams(), cpu.gate());
      gpu.loadMoments(cpu.experts().firstMoments(),
                      cpu.experts().secondMoments(), cpu.gateFirstMoment(),
                      cpu.gateSecondMoment());
      gpu.setLoadHistory(cpu.loadHistory());
      gpu.setSelectionBias(cpu.selectionBias());
    }
  }

private:
  /// Starts `layer`'s restore for `step` now if the hook knows its layout
  /// and it has not started yet.
  void prefetch(int layer, long step, const RelayoutHook &hook) {
    if (prefetchedStep_[layer] == step)
      return;
    if (std::optional<Layout> layout = hook.layoutAhead(layer, step)) {
      layers_[layer]->prefetchRestore(*layout);
      prefetchedStep_[layer] = step;
      ++restoresAhead_;
    }
  }
  /// A span on the trace the CPU layer's phase times are attached to.
  void trace(int layer, const char *what,
             std::chrono::steady_clock::time_point start, long step) {
    if (Tracer *tracer = state_.moe[layer]->times().tracer())
      tracer->record(std::string(what) + " L" + std::to_string(layer), "moe",
                     start, step);
  }
  GpuFsepMoELayer &at(int layer, long step) {
    if (layer < 0 || layer >= static_cast<int>(layers_.size()))
      fail({state_.comm.rank(), layer, step}, "the model has ", layers_.size(),
           " MoE layers");
    return *layers_[layer];
  }
  std::int64_t rowsOf(std::size_t elements, const GpuFsepMoELayer &gpu,
                      long step, const char *what) const {
    auto hidden = static_cast<std::size_t>(gpu.config().shape.hidden);
    if (elements % hidden != 0)
      fail({state_.comm.rank(), gpu.layerIndex(), step}, "MoE ", what, " has ",
           elements, " elements, not whole rows of H = ", hidden);
    return static_cast<std::int64_t>(elements / hidden);
  }
  static void copyInto(const std::vector<float> &from, std::span<float> to) {
    std::copy(from.begin(), from.end(), to.begin());
  }
  /// fp32 host rows into device rows in the context's precision.
  void toDevice(std::span<const float> host, void *device) {
    growTo(staging_, host.size());
    staging_.upload(host);
    convert(staging_.data(), Precision::Float32, device, context_.precision(),
            static_cast<std::int64_t>(host.size()), context_.compute());
  }
  /// Device rows in the context's precision back to fp32 on the host,
  /// once the compute stream has written them.
  std::vector<float> toHost(const void *device, std::size_t elements) {
    growTo(staging_, elements);
    convert(device, context_.precision(), staging_.data(), Precision::Float32,
            static_cast<std::int64_t>(elements), context_.compute());
    check(cudaStreamSynchronize(context_.compute()), "cudaStreamSynchronize");
    return staging_.download(elements);
  }

  TrainingState &state_;
  int device_;
  NcclCommunicator tokens_, params_;
  GpuContext context_;
  std::vector<std::unique_ptr<GpuFsepMoELayer>> layers_;
  /// Each layer's forward input, kept on the device for its backward.
  std::vector<DeviceRows> inputs_;
  DeviceRows output_, dOut_, dx_;
  DeviceBuffer<float> staging_;
  /// The step each layer's restore was last started ahead for, and the
  /// step of its last forward.
  std::vector<long> prefetchedStep_, forwardStep_;
  long restoresAhead_ = 0;
};

} // namespace

std::unique_ptr<MoEBackend>
laer::rt::makeGpuMoEBackend(TrainingState &state,
                            const MoEBackendOptions &options) {
  return std::make_unique<GpuMoEBackend>(state, options);
}
