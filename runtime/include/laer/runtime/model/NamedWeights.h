//===- NamedWeights.h - a model's weights in its own files ------*- C++ -*-===//
//
// Loads a training state from, and exports it to, checkpoints in the
// layout of the model's own family (Hugging Face safetensors, one file or
// shards with an index): every tensor under the name the model IR gives it
// (#moe.parameter), transposed where the files keep nn.Linear's [out, in],
// one tensor per expert and weight. Both are collective and keep FSEP's
// sharding: dense parameters, gates and selection biases are read whole by
// every rank (they are replicated), but each rank reads and writes only the
// byte ranges of the experts' weights it owns; no rank ever holds a whole
// expert layer.
//
//===----------------------------------------------------------------------===//

#ifndef LAER_RUNTIME_MODEL_NAMEDWEIGHTS_H
#define LAER_RUNTIME_MODEL_NAMEDWEIGHTS_H

#include "laer/runtime/io/SafetensorsFiles.h"
#include "laer/runtime/model/TrainingState.h"

namespace laer::rt {

/// Replaces every parameter of `state` with the tensor of its name in the
/// checkpoint at `path` (a .safetensors file, or a folder with
/// model.safetensors or model.safetensors.index.json). Fails naming the
/// rank, layer and tensor when one is missing, has another shape, or a
/// file is truncated or malformed. Optimizer moments are left as they are.
/// What one rank's load read.
struct LoadStats {
  std::uint64_t bytes = 0;
  double seconds = 0;
};
LoadStats loadNamedWeights(TrainingState &state, const std::string &path);

struct NamedExportOptions {
  FileDType dtype = FileDType::F32;
  /// The gradients of the last step instead of the parameters (to compare
  /// with another implementation); the selection biases have none.
  bool gradients = false;
  /// The largest file; more data goes to more files and an index.
  std::uint64_t maxFileBytes = 5'000'000'000ull;
};

/// Writes every parameter of `state` under its name into `directory`:
/// `model.safetensors`, or `model-0000i-of-0000n.safetensors` files and
/// `model.safetensors.index.json`.
void exportNamedWeights(TrainingState &state, const std::string &directory,
                        const NamedExportOptions &options);

} // namespace laer::rt

#endif // LAER_RUNTIME_MODEL_NAMEDWEIGHTS_H
