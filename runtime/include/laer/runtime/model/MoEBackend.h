//===- MoEBackend.h - where a model's MoE layers compute --------*- C++ -*-===//
//
// A model's dense part runs on the host; its FSEP MoE layers run on a
// backend: the CPU layers themselves (`cpu`), or one GPU per rank (`cuda`:
// NCCL all-to-alls, cuBLASLt expert GEMMs, see cuda/GpuFsepMoELayer.h).
// Whatever the backend, the layers' training state of record is
// TrainingState::moe (expert shards, gate, AdamW moments, load history):
// checkpoints read and write it there. A backend that computes elsewhere
// holds a copy, which TrainingState moves with storeState() / loadState()
// (the selection bias included).
//
//===----------------------------------------------------------------------===//

#ifndef LAER_RUNTIME_MODEL_MOEBACKEND_H
#define LAER_RUNTIME_MODEL_MOEBACKEND_H

#include "laer/runtime/AdamW.h"
#include "laer/runtime/cpu/Kernels.h"
#include "laer/runtime/fsep/Plan.h"
#include "laer/runtime/fsep/RelayoutHook.h"

#include <memory>
#include <span>
#include <string>
#include <vector>

namespace laer::rt {

struct TrainingState;

class MoEBackend {
public:
  virtual ~MoEBackend() = default;
  /// For banners: "cpu", "cuda bf16 on NVIDIA H100 (GPU 0)".
  virtual std::string describe() const = 0;

  /// Layer `layer`'s forward on this rank's tokens `x` [T, H] (fp32, host).
  virtual std::vector<float> forward(int layer, std::span<const float> x,
                                     long step, RelayoutHook &hook) = 0;
  /// Its backward for the last forward: returns d(x) and accumulates the
  /// layer's expert-shard and gate gradients.
  virtual std::vector<float> backward(int layer,
                                      std::span<const float> dOut) = 0;
  /// Zeroes every layer's gradients.
  virtual void zeroGrads() = 0;
  /// Layer `layer`'s optimizer step: its gradients times `gradScale` (1/N
  /// turns a sum over data-parallel ranks into their mean), then AdamW.
  virtual void update(int layer, float gradScale, const AdamWConfig &config,
                      long step) = 0;
  /// The squared L2 norm of layer `layer`'s gradients over every rank
  /// (collective): each rank's expert shards, and the gate (replicated)
  /// once.
  virtual double gradSquaredNorm(int layer) = 0;
  virtual const Plan &lastPlan(int layer) const = 0;
  /// Layer `layer`'s router losses of its last forward (its config's
  /// aux and z losses), and their gradients for its next backward.
  virtual cpu::RouterLosses routerLosses(int layer) = 0;
  virtual void setAuxLossGradient(int layer, float dAux) = 0;
  virtual void setZLossGradient(int layer, float dZ) = 0;
  /// Restores started before their layer's router, because the hook knew
  /// the layout ahead (RelayoutHook::layoutAhead), so far.
  virtual long restoresAhead() const { return 0; }

  /// Copies the backend's layer state into TrainingState::moe (before a
  /// checkpoint is written or the parameters gathered).
  virtual void storeState() {}
  /// Takes the layer state from TrainingState::moe (after a checkpoint was
  /// loaded).
  virtual void loadState() {}
};

/// Where and how the MoE layers run (training options --device and
/// --precision).
struct MoEBackendOptions {
  std::string device = "cpu"; // cpu | cuda
  std::string precision = ""; // fp32 | bf16; "" picks the device's
  /// This rank's index among the ranks of its machine, and their count:
  /// rank i of a machine uses its GPU i.
  int localRank = 0, localRanks = 1;
};

/// The backend `options` names for the layers in `state.moe` (which must
/// all exist). Fails with a message naming the rank when the device is
/// unknown, the precision does not suit it, the runtime was built without
/// CUDA, or this rank has no GPU of its own.
std::unique_ptr<MoEBackend> makeMoEBackend(TrainingState &state,
                                           const MoEBackendOptions &options);

/// The CUDA backend; defined by the CUDA half of the runtime, or failing
/// with the reason when the runtime was built without it.
std::unique_ptr<MoEBackend> makeGpuMoEBackend(TrainingState &state,
                                              const MoEBackendOptions &options);

} // namespace laer::rt

#endif // LAER_RUNTIME_MODEL_MOEBACKEND_H
