//===- MoELanguageModel.h - a MoE transformer LM on the runtime -*- C++ -*-===//
//
// The model `examples/tiny_moe_lm.mlir` describes, wired by hand on the
// runtime's kernels: embedding, per layer RMSNorm -> attention -> residual
// -> RMSNorm -> FSEP MoE layer (+ a shared expert) -> residual, final
// RMSNorm, LM head,
// cross-entropy. Dense parameters are replicated (gradients all-reduced),
// expert parameters FSEP-sharded. The dense part runs on the host; the MoE
// layers on the backend the options name (CPU ranks, or a GPU per rank). It is
// the reference the compiled training binary is checked against, and the
// runtime's own end-to-end training run.
//
//===----------------------------------------------------------------------===//

#ifndef LAER_RUNTIME_MODEL_MOELANGUAGEMODEL_H
#define LAER_RUNTIME_MODEL_MOELANGUAGEMODEL_H

#include "laer/runtime/cpu/DenseKernels.h"
#include "laer/runtime/fsep/FsepMoELayer.h"
#include "laer/runtime/model/TrainingState.h"

#include <memory>
#include <string>
#include <vector>

namespace laer::rt {

struct LanguageModelConfig {
  std::int64_t vocab = 256;
  std::int64_t hidden = 64;
  std::int64_t ffn = 128;
  int experts = 8;
  int topK = 2;
  int layers = 2;
  int heads = 4;
  int kvHeads = 2;
  int sequence = 32;
  double ropeTheta = 10000.0;
  /// Experts each rank computes; 0 picks ceil(E / N).
  int slotsPerRank = 0;
  int historyWindow = 0;
  /// Chunks each layer's token exchange is split into, so chunk c + 1
  /// travels while chunk c's experts compute.
  int tokenChunks = 1;
  /// Width of the shared expert of every layer; 0: none.
  std::int64_t sharedFfn = 0;
};

class MoELanguageModel : public Trainable {
public:
  MoELanguageModel(Communicator &comm, const LanguageModelConfig &config,
                   std::uint64_t seed, const MoEBackendOptions &backend = {});

  /// Forward, backward and AdamW on this rank's `ids`/`targets` (whole
  /// sequences of `config.sequence` tokens).
  StepResult accumulateGradients(std::span<const std::int32_t> ids,
                                 std::span<const std::int32_t> targets,
                                 long step, RelayoutHook &hook) override;

  /// Parameters, moments and MoE layers; saves and loads checkpoints.
  TrainingState &state() override { return state_; }
  std::vector<float> gatherParameters() { return state_.gatherParameters(); }
  void saveCheckpoint(const std::string &directory, long step) {
    state_.save(directory, step);
  }
  long loadCheckpoint(const std::string &directory) {
    return state_.load(directory);
  }
  const LanguageModelConfig &config() const { return config_; }
  /// Where the MoE layers compute.
  MoEBackend &moeBackend() { return state_.moeBackend(); }

private:
  struct LayerOffsets {
    std::size_t norm1, wq, wk, wv, wo, norm2;
    std::size_t shared1 = 0, shared3 = 0, shared2 = 0; // with sharedFfn
  };
  std::span<float> param(std::size_t offset, std::size_t size) {
    return std::span<float>(state_.dense).subspan(offset, size);
  }
  /// This batch's gradient of dense parameter `offset`.
  std::span<float> grad(std::size_t offset, std::size_t size) {
    return std::span<float>(batchGrad_).subspan(offset, size);
  }

  Communicator &comm_;
  LanguageModelConfig config_;
  cpu::AttentionShape attention_;
  std::size_t embed_ = 0, finalNorm_ = 0, head_ = 0;
  std::vector<LayerOffsets> layers_;
  TrainingState state_;
  std::vector<float> batchGrad_;
};

} // namespace laer::rt

#endif // LAER_RUNTIME_MODEL_MOELANGUAGEMODEL_H
