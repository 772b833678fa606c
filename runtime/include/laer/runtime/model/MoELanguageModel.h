//===- MoELanguageModel.h - a MoE transformer LM on the runtime -*- C++ -*-===//
//
// The model `examples/make_model_ir.py` describes, wired by hand on the
// runtime's kernels: embedding, per layer RMSNorm -> attention -> residual
// -> RMSNorm -> FSEP MoE layer -> residual, final RMSNorm, LM head,
// cross-entropy. Dense parameters are replicated (gradients all-reduced),
// expert parameters FSEP-sharded. It is the reference the compiled training
// binary is checked against, and the runtime's own end-to-end training run.
//
//===----------------------------------------------------------------------===//

#ifndef LAER_RUNTIME_MODEL_MOELANGUAGEMODEL_H
#define LAER_RUNTIME_MODEL_MOELANGUAGEMODEL_H

#include "laer/runtime/FsepMoELayer.h"
#include "laer/runtime/cpu/DenseKernels.h"

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
};

struct StepResult {
  double loss = 0; // mean over every token of every rank
  /// Per MoE layer: max over mean expert rows per rank of this step.
  std::vector<double> maxOverMean;
};

class MoELanguageModel {
public:
  MoELanguageModel(Communicator &comm, const LanguageModelConfig &config,
                   std::uint64_t seed);

  /// Forward, backward and AdamW on this rank's `ids`/`targets` (whole
  /// sequences of `config.sequence` tokens).
  StepResult trainStep(std::span<const std::int32_t> ids,
                       std::span<const std::int32_t> targets, long step,
                       RelayoutHook &hook, const AdamWConfig &adamw);

  /// Every parameter, full: dense ones, then each layer's experts
  /// (collective).
  std::vector<float> gatherParameters();

  /// Writes this rank's part of the training state after `step` into
  /// `directory` (collective): `rank<r>.safetensors` with the rank's expert
  /// shards and their AdamW moments, rank 0 also the replicated dense and
  /// gate parameters with theirs, and `index.json`. The directory is
  /// written under a temporary name and renamed when every rank is done, so
  /// a crash never leaves a half-written checkpoint.
  void saveCheckpoint(const std::string &directory, long step);
  /// Loads a checkpoint written by `saveCheckpoint` for the same model
  /// configuration; returns the step it was written after. Written by
  /// another number of ranks, the expert shards and their moments are
  /// re-cut for this run (the planner's per-rank load history is dropped).
  long loadCheckpoint(const std::string &directory);
  const LanguageModelConfig &config() const { return config_; }
  std::vector<std::unique_ptr<FsepMoELayer>> &moeLayers() { return moe_; }

private:
  struct LayerOffsets {
    std::size_t norm1, wq, wk, wv, wo, norm2;
  };
  std::span<float> param(std::size_t offset, std::size_t size) {
    return std::span<float>(dense_).subspan(offset, size);
  }
  std::span<float> grad(std::size_t offset, std::size_t size) {
    return std::span<float>(denseGrad_).subspan(offset, size);
  }

  Communicator &comm_;
  LanguageModelConfig config_;
  cpu::AttentionShape attention_;
  std::vector<float> dense_, denseGrad_, denseM_, denseV_;
  std::size_t embed_ = 0, finalNorm_ = 0, head_ = 0;
  std::vector<LayerOffsets> layers_;
  std::vector<std::unique_ptr<FsepMoELayer>> moe_;
};

} // namespace laer::rt

#endif // LAER_RUNTIME_MODEL_MOELANGUAGEMODEL_H
