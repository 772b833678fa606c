//===- HFConfigImport.h - Hugging Face config.json to model IR --*- C++ -*-===//
//
// Imports the `config.json` of a Hugging Face MoE language model (Mixtral,
// Qwen2-MoE, Qwen3-MoE, OLMoE) as laer model IR: one `func.func` that takes
// token ids, next-token targets and every parameter, and returns the mean
// cross-entropy. Every field of the config is either mapped onto the IR,
// known to leave the math alone, or refused with a message that names it:
// the importer never guesses. The IR it returns has been parsed and verified
// with laer's dialects. See docs/Importing.md.
//
//===----------------------------------------------------------------------===//

#ifndef LAER_TARGET_HFCONFIGIMPORT_H
#define LAER_TARGET_HFCONFIGIMPORT_H

#include "llvm/ADT/StringRef.h"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace laer {

/// Scale-down and naming options (laer-import's command line).
struct HFImportOptions {
  /// Keep only the first `layers` decoder layers (1 <= layers <=
  /// num_hidden_layers).
  std::optional<int64_t> layers;
  /// Divide hidden_size, head_dim and every FFN width by this; each must
  /// divide exactly and the head size must stay even.
  int64_t hiddenDiv = 1;
  /// Replaces vocab_size.
  std::optional<int64_t> vocab;
  /// The attention's sequence length; default max_position_embeddings.
  std::optional<int64_t> sequenceLength;
  /// Count the aux load-balancing loss's expert loads over every
  /// data-parallel rank's tokens (Megatron's global-batch balancing)
  /// instead of each rank's micro-batch (HF's).
  bool globalBatchAuxLoss = false;
  /// DeepSeek-V3's e_score_correction_bias update rate u (the bias moves by
  /// u * sign(mean load - expert load) after each step); default 0.001.
  std::optional<double> biasUpdateRate;
  /// The function's name; default `<model_type>_lm`.
  std::string functionName;
  /// How the header comment names the config (e.g. its file name); empty:
  /// "config.json".
  std::string sourceName;
};

struct HFImportResult {
  bool ok = false;
  /// The model IR (MLIR text); empty unless `ok`.
  std::string ir;
  /// Why the import failed: one message that names the offending field and
  /// its value (or, for an internal error, MLIR's located diagnostics).
  std::string diagnostics;
  /// Things the user should know that do not stop the import (e.g. an
  /// auxiliary loss coefficient HF would not apply either).
  std::vector<std::string> notes;
};

/// Imports `configJson` (the text of a config.json).
HFImportResult importHFConfig(llvm::StringRef configJson,
                              const HFImportOptions &options);

} // namespace laer

#endif // LAER_TARGET_HFCONFIGIMPORT_H
