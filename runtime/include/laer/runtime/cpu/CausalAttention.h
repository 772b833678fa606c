//===- CausalAttention.h - attention core and rotary tables ---*- C++ -*-===//
//
// What every attention kernel shares once its projections are done: causal
// softmax attention of per-head queries, keys and values within each
// sequence, and the rotary position embedding (default or YaRN frequencies;
// pairs of halves as Llama rotates, or of adjacent elements as DeepSeek).
//
//===----------------------------------------------------------------------===//

#ifndef LAER_RUNTIME_CPU_CAUSALATTENTION_H
#define LAER_RUNTIME_CPU_CAUSALATTENTION_H

#include <cstdint>
#include <span>
#include <vector>

namespace laer::rt::cpu {

/// q [T, heads * qkDim], k [T, kvHeads * qkDim], v [T, kvHeads * vDim];
/// query head h reads key/value head h / (heads / kvHeads).
struct CausalAttentionShape {
  std::int64_t tokens = 0, sequenceLength = 1, heads = 1, kvHeads = 1,
               qkDim = 0, vDim = 0;
  double scale = 1.0;
};

/// probs [heads, T, S] (row t holds its sequence's first t % S + 1 keys);
/// context [T, heads * vDim]; both overwritten.
template <typename T>
void causalAttentionForward(const CausalAttentionShape &shape,
                            std::span<const T> q, std::span<const T> k,
                            std::span<const T> v, std::span<T> probs,
                            std::span<T> context);
/// dq, dk, dv overwritten, from the forward's q, k, v and probs.
template <typename T>
void causalAttentionBackward(const CausalAttentionShape &shape,
                             std::span<const T> q, std::span<const T> k,
                             std::span<const T> v, std::span<const T> probs,
                             std::span<const T> dContext, std::span<T> dq,
                             std::span<T> dk, std::span<T> dv);

/// YaRN's frequency blend (HF `_compute_yarn_parameters`, truncated
/// correction range).
struct YarnScaling {
  double factor = 1.0;
  std::int64_t originalMaxPosition = 1;
  double betaFast = 32.0, betaSlow = 1.0;
  /// Scales the rotated elements (HF's attention_factor, DeepSeek's mscale
  /// ratio).
  double attentionFactor = 1.0;
};

/// Which elements rotate together: (i, i + dim/2) or (2i, 2i + 1).
enum class RotaryPairs { Halves, Adjacent };

/// The frequencies of a rotary embedding over `dim` elements.
class RotaryTable {
public:
  RotaryTable(std::int64_t dim, double theta, RotaryPairs pairs);
  RotaryTable(std::int64_t dim, double theta, RotaryPairs pairs,
              const YarnScaling &yarn);

  const std::vector<double> &inverseFrequencies() const { return invFreq; }

  /// Rotates `count` blocks of `dim` elements of every row of `data`
  /// [rows, width]: block j starts at offset + j * stride. The row's
  /// position is row % sequenceLength. `inverse` applies the transpose (the
  /// backward of the rotation).
  template <typename T>
  void rotate(std::span<T> data, std::int64_t width, std::int64_t offset,
              std::int64_t stride, std::int64_t count,
              std::int64_t sequenceLength, bool inverse) const;

private:
  std::int64_t dim;
  RotaryPairs pairs;
  double scale = 1.0;
  std::vector<double> invFreq;
};

} // namespace laer::rt::cpu

#endif // LAER_RUNTIME_CPU_CAUSALATTENTION_H
