//===- MoEBackend.cpp - the CPU backend and the backend choice ------------===//

#include "laer/runtime/model/MoEBackend.h"

#include "laer/runtime/Error.h"
#include "laer/runtime/model/TrainingState.h"

using namespace laer::rt;

namespace {

/// The CPU layers of TrainingState::moe compute themselves: nothing to copy.
class CpuMoEBackend : public MoEBackend {
public:
  explicit CpuMoEBackend(TrainingState &state) : state_(state) {}

  std::string describe() const override { return "cpu"; }
  std::vector<float> forward(int layer, std::span<const float> x, long step,
                             RelayoutHook &hook) override {
    return state_.moe.at(layer)->forward(x, step, hook);
  }
  std::vector<float> backward(int layer, std::span<const float> dOut) override {
    return state_.moe.at(layer)->backward(dOut);
  }
  void zeroGrads() override {
    for (auto &layer : state_.moe)
      layer->zeroGrads();
  }
  void update(int layer, float gradScale, const AdamWConfig &config,
              long step) override {
    FsepMoELayer &moe = *state_.moe.at(layer);
    if (gradScale != 1.0f)
      moe.scaleGrads(gradScale);
    moe.applyAdamW(config, step);
  }
  double gradSquaredNorm(int layer) override {
    return state_.moe.at(layer)->gradSquaredNorm();
  }
  const Plan &lastPlan(int layer) const override {
    return state_.moe.at(layer)->lastPlan();
  }
  cpu::RouterLosses routerLosses(int layer) override {
    return state_.moe.at(layer)->routerLosses();
  }
  void setAuxLossGradient(int layer, float dAux) override {
    state_.moe.at(layer)->setAuxLossGradient(dAux);
  }
  void setZLossGradient(int layer, float dZ) override {
    state_.moe.at(layer)->setZLossGradient(dZ);
  }

private:
  TrainingState &state_;
};

} // namespace

std::unique_ptr<MoEBackend>
laer::rt::makeMoEBackend(TrainingState &state,
                         const MoEBackendOptions &options) {
  ErrorContext where{state.comm.rank(), -1, -1};
  if (options.device == "cpu") {
    if (!options.precision.empty() && options.precision != "fp32")
      fail(where, "--precision ", options.precision,
           ": MoE layers on CPU ranks compute in fp32 only");
    return std::make_unique<CpuMoEBackend>(state);
  }
  if (options.device == "cuda") {
    if (!options.precision.empty() && options.precision != "fp32" &&
        options.precision != "bf16")
      fail(where, "--precision must be fp32 or bf16, got '", options.precision,
           "'");
    return makeGpuMoEBackend(state, options);
  }
  fail(where, "--device must be cpu or cuda, got '", options.device, "'");
}
