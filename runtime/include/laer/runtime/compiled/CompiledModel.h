//===- CompiledModel.h - a training program built by laer-compile -*- C++
//-*-===//
//
// The runtime side of a compiled training program. laer-compile lowers a
// model IR to two entry points:
//   laer_model_declare(ctx)  names every dense parameter (shape, init) and
//                            every MoE layer (experts, sizes, routing) by
//                            calling the laerrt_declare_* functions;
//   laer_train_step(ctx, ids, targets) -> local loss
//                            forward, backward and the AdamW update, with
//                            every dense, MoE and collective op a call of
//                            the laerrt_* C ABI (compiled/ABI.h) on memrefs.
// CompiledModel is the `ctx` of those calls: it owns the parameters
// (TrainingState: dense ones replicated, experts FSEP-sharded) and what the
// current step needs (step number, relayout hook, AdamW settings).
//
//===----------------------------------------------------------------------===//

#ifndef LAER_RUNTIME_COMPILED_COMPILEDMODEL_H
#define LAER_RUNTIME_COMPILED_COMPILEDMODEL_H

#include "laer/runtime/compiled/MemRef.h"
#include "laer/runtime/model/TrainingState.h"

#include <string>
#include <vector>

namespace laer::rt {

/// The two functions of a compiled program (C ABI).
struct CompiledProgram {
  void (*declare)(void *ctx) = nullptr;
  float (*step)(void *ctx, MemRef<std::int32_t, 1> *ids,
                MemRef<std::int32_t, 1> *targets) = nullptr;
};

struct CompiledModelOptions {
  std::uint64_t seed = 1;
  /// Experts each rank computes; 0 picks ceil(E / N) + 1.
  int slotsPerRank = 0;
  int historyWindow = 2;
  /// Where the MoE layers compute. Only a program lowered without
  /// --ranks (its MoE layers are whole laerrt_moe_* calls) runs them off
  /// the CPU: an FSEP-scheduled one calls the CPU layers' phases.
  MoEBackendOptions backend;
};

class CompiledModel : public Trainable {
public:
  /// Runs the program's declarations and initialises the parameters
  /// (deterministically from the seed, the same on every rank count).
  CompiledModel(Communicator &comm, CompiledProgram program,
                const CompiledModelOptions &options);

  StepResult accumulateGradients(std::span<const std::int32_t> ids,
                                 std::span<const std::int32_t> targets,
                                 long step, RelayoutHook &hook) override;
  TrainingState &state() override { return state_; }

  std::int64_t vocab() const { return vocab_; }
  std::int64_t sequence() const { return sequence_; }

  // Called by the laerrt_* ABI.
  void declareModel(std::int64_t vocab, std::int64_t sequence);
  void declareDense(std::int64_t index, std::vector<std::int64_t> shape,
                    std::int64_t fanIn);
  /// `ranks` > 0: the program was scheduled for that many ranks (and
  /// `config.slotsPerRank` slots); 0: any (slots from the options).
  void declareMoE(std::int64_t layer, const MoELayerConfig &config, int ranks);
  /// The names of a dense parameter and of MoE layer `layer`'s tensors
  /// (`part`: 0 gate, 1 w1, 2 w3, 3 w2, 4 selection bias), from the IR's
  /// #moe.parameter.
  void nameDense(std::int64_t index, TensorName name);
  void nameMoE(std::int64_t layer, std::int64_t part, TensorName name);
  /// Dense parameter `index` as a flat span; fails naming the index.
  std::span<float> denseParameter(std::int64_t index);
  std::span<float> denseMoment(std::int64_t index, bool second);
  /// Where the state keeps parameter `index`'s gradient of the last step.
  std::span<float> denseGradient(std::int64_t index);
  /// MoE layer `layer`'s configuration; fails naming a bad index.
  const MoELayerConfig &moeConfig(std::int64_t layer);
  /// The CPU layer the fsep ops of an FSEP-scheduled program drive.
  FsepMoELayer &moeLayer(std::int64_t layer);
  /// Where the laerrt_moe_* calls run the MoE layers.
  MoEBackend &moeBackend() { return state_.moeBackend(); }
  Communicator &comm() { return state_.comm; }
  long step() const { return step_; }
  RelayoutHook &hook();
  ErrorContext where(int layer = -1) const {
    return {state_.comm.rank(), layer, step_};
  }

private:
  struct DenseDecl {
    std::vector<std::int64_t> shape;
    std::int64_t fanIn = 0; // 0: ones (a norm weight), -1: zeros (a bias)
    TensorName name;
  };
  /// Dense parameter `index`'s part of `buffer` (one of the state's dense
  /// buffers); fails naming a bad index.
  std::span<float> denseSlice(std::vector<float> &buffer, std::int64_t index);
  void checkName(const TensorName &name, bool matrix,
                 const std::string &what) const;

  CompiledModelOptions options_;
  CompiledProgram program_;
  TrainingState state_;
  std::vector<DenseDecl> dense_;
  std::vector<MoELayerConfig> moeConfigs_;
  std::vector<int> moeRanks_; // 0: any number of ranks
  std::vector<MoETensorNames> moeNames_;
  std::int64_t vocab_ = 0, sequence_ = 0;
  long step_ = -1;
  RelayoutHook *hook_ = nullptr;
};

} // namespace laer::rt

#endif // LAER_RUNTIME_COMPILED_COMPILEDMODEL_H
