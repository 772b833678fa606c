//===- TrainingState.h - what a training run saves and resumes --*- C++ -*-===//
//
// The trainable state of a MoE model on one rank: the replicated dense
// parameters in one flat buffer with their gradients and AdamW moments, and
// the FSEP MoE layers (expert shards, gate, moments, planner load history).
// Both the hand-wired MoELanguageModel and compiled training programs keep
// their state here, so they share one sharded checkpoint format. The MoE
// layers compute on a backend (the CPU layers themselves, or a GPU per
// rank); one that keeps a copy of the layers' state elsewhere is synced
// here, before every save or gather and after every load.
//
//===----------------------------------------------------------------------===//

#ifndef LAER_RUNTIME_MODEL_TRAININGSTATE_H
#define LAER_RUNTIME_MODEL_TRAININGSTATE_H

#include "laer/runtime/fsep/FsepMoELayer.h"
#include "laer/runtime/io/Safetensors.h"
#include "laer/runtime/model/MoEBackend.h"

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace laer::rt {

/// A parameter's name in the files a model is loaded from and exported to
/// (the model IR's `#moe.parameter`): `transposed` when the file keeps the
/// transpose of the runtime's matrix (nn.Linear's [out, in]); the name of
/// a per-expert tensor has a '*' for the expert's number.
struct TensorName {
  std::string name;
  bool transposed = false;
  bool empty() const { return name.empty(); }
};

/// One dense parameter: where it lives in TrainingState::dense.
struct DenseTensor {
  TensorName name;
  std::vector<std::int64_t> shape; // 1 or 2 dims, the runtime's layout
  std::size_t offset = 0, size = 0;
};

/// The names of a MoE layer's tensors (empty: unnamed).
struct MoETensorNames {
  TensorName gate, w1, w3, w2, selectionBias;
};

struct TrainingState {
  /// `identity` names the model (shapes, sizes); a checkpoint loads only
  /// into a state with the same identity.
  /// The MoE layers compute on the CPU until placeMoELayers says otherwise.
  TrainingState(Communicator &comm, Metadata identity);

  /// Adds a dense parameter of `shape` at the end of `dense` (call
  /// allocateDense once all are added); returns its offset. An empty name
  /// becomes `param<i>` (i: its number).
  std::size_t addDense(std::vector<std::int64_t> shape, TensorName name);
  /// Sizes the dense buffers (parameters, gradient, moments) to hold every
  /// tensor added.
  void allocateDense();
  /// The elements of every dense tensor added.
  std::size_t denseSize() const;
  /// Initialises dense[offset, offset + size): to one for a norm weight
  /// (`fanIn` 0), else uniform in +-1/sqrt(fanIn) from the seed by buffer
  /// index, so every rank and every model with the same layout agrees.
  void initializeDense(std::size_t offset, std::size_t size, std::int64_t fanIn,
                       std::uint64_t seed);
  /// Appends MoE layer `moe.size()`, its weights initialised from the seed.
  FsepMoELayer &addMoELayer(const MoELayerConfig &config, std::uint64_t seed);
  /// Makes the MoE layers (all added by now) compute where `options` say.
  void placeMoELayers(const MoEBackendOptions &options);
  /// Where the MoE layers compute.
  MoEBackend &moeBackend() { return *moeBackend_; }
  /// Zeroes every gradient (dense and experts).
  void zeroGrads();
  /// The L2 norm of the step's gradients times `scale` over every
  /// parameter: dense ones (the mean over ranks, replicated) and each MoE
  /// layer's expert shards and gate times moeGradScale (collective).
  double gradientNorm(float scale);
  /// AdamW step `adamStep` (1 for the first) on every parameter with its
  /// gradient times `scale` (clipping, the mean over micro-batches); MoE
  /// gradients also times moeGradScale. Leaves the scaled gradients.
  void optimizerStep(const AdamWConfig &adamw, long adamStep, float scale);

  /// Every parameter, full: dense ones, then each layer's experts and gate
  /// (collective).
  std::vector<float> gatherParameters();

  /// Writes this rank's part of the state after `step` into `directory`
  /// (collective): `rank<r>.safetensors` with the rank's expert shards and
  /// their AdamW moments, rank 0 also the replicated dense and gate
  /// parameters with theirs, and `index.json`. Written under a temporary
  /// name and renamed when every rank is done, so a crash never leaves a
  /// half-written checkpoint.
  void save(const std::string &directory, long step);
  /// Loads a checkpoint written by `save` for the same identity; returns
  /// the step it was written after. Written by another number of ranks,
  /// the expert shards and their moments are re-cut for this run (the
  /// planner's per-rank load history is dropped).
  long load(const std::string &directory);

  Communicator &comm;
  Metadata identity;
  /// What the MoE layers' gradients are multiplied by to be the mean over
  /// ranks: 1 / N where they are sums over ranks (compiled programs).
  float moeGradScale = 1.0f;
  /// load() accepts a checkpoint whose run settings (identity keys
  /// "run.*": batch, sequence, data order, seed) differ.
  bool allowChangedRun = false;
  /// The dense parameters, in the order of `dense`.
  std::vector<DenseTensor> denseTensors;
  std::vector<float> dense, denseGrad, denseM, denseV;
  /// Per MoE layer: its tensors' names.
  std::vector<MoETensorNames> moeNames;
  std::vector<std::unique_ptr<FsepMoELayer>> moe;
  /// The expert layout each MoE layer keeps until the planner's next
  /// re-plan (layer -> slots, see ReplanningHook), so a resumed run keeps
  /// it too. Restored with the same number of ranks only.
  std::map<int, std::vector<int>> keptLayouts;

private:
  std::unique_ptr<MoEBackend> moeBackend_;
};

struct StepResult {
  double loss = 0; // mean over every token of every rank
  /// Per MoE layer: max over mean expert rows per rank of this step.
  std::vector<double> maxOverMean;
};

/// A model the training loop can drive: forward and backward of a
/// micro-batch, adding to the gradients of the state checkpoints save; the
/// loop applies the optimizer (after clipping, once per accumulation).
class Trainable {
public:
  virtual ~Trainable() = default;
  /// Forward and backward of this rank's `ids`/`targets` at step `step`:
  /// adds the gradients (dense ones as the mean over ranks) to the
  /// state's, returns the loss (the mean over every rank's tokens).
  virtual StepResult accumulateGradients(std::span<const std::int32_t> ids,
                                         std::span<const std::int32_t> targets,
                                         long step, RelayoutHook &hook) = 0;
  virtual TrainingState &state() = 0;

  /// One whole step: zeroed gradients, one batch, AdamW.
  StepResult trainStep(std::span<const std::int32_t> ids,
                       std::span<const std::int32_t> targets, long step,
                       RelayoutHook &hook, const AdamWConfig &adamw) {
    state().zeroGrads();
    StepResult result = accumulateGradients(ids, targets, step, hook);
    state().optimizerStep(adamw, step + 1, 1.0f);
    return result;
  }
};

} // namespace laer::rt

#endif // LAER_RUNTIME_MODEL_TRAININGSTATE_H
