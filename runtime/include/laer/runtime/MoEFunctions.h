//===- MoEFunctions.h - router scores and expert activations ----*- C++ -*-===//
//
// The element-wise functions of an MoE layer, shared by the CPU and CUDA
// kernels (the numbering matches the moe dialect's enums, which the
// compiled ABI passes as integers).
//
//===----------------------------------------------------------------------===//

#ifndef LAER_RUNTIME_MOEFUNCTIONS_H
#define LAER_RUNTIME_MOEFUNCTIONS_H

#include <cstdint>

namespace laer::rt {

enum class ScoreFunction { Softmax, Sigmoid };
enum class Activation { Silu, Gelu, Relu };
/// How group-limited routing ranks the groups: the best score of the group
/// (DeepSeek-V2) or the sum of its two best (DeepSeek-V3).
enum class GroupScore { Max, TopTwoSum };
/// The auxiliary load-balancing loss of a layer: none, over this rank's
/// tokens, with the expert loads counted over every rank's tokens, or each
/// sequence's loss averaged over the sequences (DeepSeek's seq_aux).
enum class AuxLoss { None, MicroBatch, GlobalBatch, Sequence };

/// How a router turns a token's logits x * gate into its k experts and
/// their weights (beside E and k): the variants of the HF MoE families.
struct RoutingConfig {
  ScoreFunction score = ScoreFunction::Softmax;
  /// Divide the k chosen scores by their sum.
  bool renormalize = true;
  /// Multiplies every weight, after the renormalisation
  /// (DeepSeek's routed_scaling_factor).
  double scale = 1.0;
  /// Group-limited top-k: the E experts form `groups` equal groups and only
  /// those of the `topGroups` best groups may be chosen (1, 1: plain top-k).
  int groups = 1;
  int topGroups = 1;
  GroupScore groupScore = GroupScore::Max;
  /// A per-expert bias [E] is added to the scores for the choice only; the
  /// weights stay the unbiased scores (DeepSeek-V3's aux-loss-free
  /// balancing).
  bool selectionBias = false;
};

/// The router losses a layer returns beside its output.
struct RouterLossConfig {
  AuxLoss aux = AuxLoss::None;
  bool z = false;
  /// Tokens per sequence, for AuxLoss::Sequence (the model's).
  std::int64_t sequenceLength = 0;
};

} // namespace laer::rt

#endif // LAER_RUNTIME_MOEFUNCTIONS_H
