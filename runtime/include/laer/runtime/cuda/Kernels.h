//===- Kernels.h - GPU kernels of an FSEP MoE layer -------------*- C++ -*-===//
//
// The element-wise and data-movement parts of an MoE layer step on the
// GPU; the GEMMs are GroupedGemm's (cuBLASLt). Buffers are device
// pointers, every call is queued on `stream` and returns at once.
// Activations and weights are float32 or bfloat16 (`Precision`); every
// reduction accumulates in float32, and router scores, combine weights,
// gradient shards and optimizer state stay float32. Each kernel matches the
// CPU kernel of the same job (test/unit/cuda compares them).
//
//===----------------------------------------------------------------------===//

#ifndef LAER_RUNTIME_CUDA_KERNELS_H
#define LAER_RUNTIME_CUDA_KERNELS_H

#include "laer/runtime/AdamW.h"
#include "laer/runtime/MoEFunctions.h"
#include "laer/runtime/cuda/CudaRuntime.h"

#include <cstdint>

namespace laer::rt::cuda {

enum class Precision { Float32, BFloat16 };
std::size_t bytesOf(Precision precision);

/// Group-limited routing on the device keeps the chosen groups in a
/// 64-bit mask.
constexpr int kMaxRouterGroups = 64;

/// Router scores and top-k from `logits` [T, E] (x * gate), as
/// cpu::routerForward: `scores` [T, E] softmax or sigmoid, `logSumExp` [T]
/// of the logits (the z-loss), `indices` / `weights` [T, k] best first
/// (ties to the lower expert) by score plus `bias` [E] (a device pointer,
/// exactly when routing.selectionBias) among the best groups; weights the
/// unbiased scores, renormalised when asked, times routing.scale.
void routerTopK(const float *logits, std::int64_t tokens, int experts, int topK,
                const RoutingConfig &routing, const float *bias, float *scores,
                float *logSumExp, std::int32_t *indices, float *weights,
                cudaStream_t stream);

/// What the router losses add to the logits' gradient (device pointers):
/// `auxGradient` [T / span][E], d(aux)/d(p) of each group of `span` tokens
/// (cpu::auxProbabilityGradient; nullptr: none); `dZ` = 2 d(loss)/d(z) / T
/// with the forward's `logits` and `logSumExp` (0: none).
struct RouterLossGradientsOnDevice {
  const float *auxGradient = nullptr;
  std::int64_t span = 1;
  float dZ = 0.0f;
  const float *logits = nullptr;
  const float *logSumExp = nullptr;
};

/// Gradient of routerTopK's weights and of the router losses with respect
/// to the logits: from dWeights [T, k] and what the forward wrote, dLogits
/// [T, E] (overwritten). The router's GEMM gradients (dx += dLogits gate^T,
/// dGate += x^T dLogits) are GroupedGemm's.
void routerBackwardLogits(const float *scores, const std::int32_t *indices,
                          const float *weights, const float *dWeights,
                          std::int64_t tokens, int experts, int topK,
                          const RoutingConfig &routing,
                          const RouterLossGradientsOnDevice &losses,
                          float *dLogits, cudaStream_t stream);

/// The aux loss's reduction of the scores [T, E]: `sums` [T / span][E]
/// (double), each group of `span` tokens' sum of their routing
/// probabilities (softmax scores, or sigmoid scores over their sum), with
/// `divisors` [T] as scratch.
void routerProbabilitySums(const float *scores, std::int64_t tokens,
                           int experts, ScoreFunction score, std::int64_t span,
                           float *divisors, double *sums, cudaStream_t stream);

/// `*result` = sum of x[i]^2 (device double), deterministic; `partials`
/// holds kSumOfSquaresBlocks doubles.
constexpr int kSumOfSquaresBlocks = 256;
void sumOfSquares(const float *x, std::int64_t n, double *partials,
                  double *result, cudaStream_t stream);

/// Stable sort of dispatch rows by destination, on the device: row i goes
/// to bucket keys[i] in [0, buckets) (an (expert, replica) slot, or a
/// rank). Rows keep their order within a bucket, as the CPU layer packs
/// them. Scratch memory is allocated once for `maxRows` and `maxBuckets`.
class RowPermutation {
public:
  RowPermutation(std::int64_t maxRows, int maxBuckets);

  void compute(const std::int32_t *keys, std::int64_t rows, int buckets,
               cudaStream_t stream);
  /// Position i of the sorted rows holds source row order()[i].
  const std::int32_t *order() const { return order_.data(); }
  /// Source row r sits at position()[r] (the inverse of order()).
  const std::int32_t *position() const { return position_.data(); }
  /// Rows per bucket and their exclusive prefix sums.
  const std::int64_t *counts() const { return counts_.data(); }
  const std::int64_t *offsets() const { return offsets_.data(); }
  /// Rows of the last compute() whose key was outside [0, buckets)
  /// (synchronises `stream`); such rows are left out of counts().
  std::int64_t invalidRows(int buckets, cudaStream_t stream) const;

private:
  std::int64_t maxRows_;
  int maxBuckets_;
  DeviceBuffer<std::int32_t> iota_, sortedKeys_, order_, position_;
  DeviceBuffer<std::int64_t> counts_, offsets_;
  DeviceBuffer<std::uint8_t> scratch_;
};

/// dst[i, :] = src[sourceRow[i] / divisor, :] for `rows` rows of `width`
/// elements (divisor = k maps (token, choice) rows to token rows).
void gatherRows(const void *src, void *dst, Precision precision,
                std::int64_t width, const std::int32_t *sourceRow,
                std::int64_t rows, int divisor, cudaStream_t stream);

/// out[t, :] = sum_j weights[t, j] * rows[position[t * k + j], :] (added to
/// out when `accumulate`), float32 accumulation.
void combineRows(const void *rows, void *out, Precision precision,
                 std::int64_t width, const std::int32_t *position,
                 const float *weights, std::int64_t tokens, int topK,
                 bool accumulate, cudaStream_t stream);

/// Backward of combineRows: dRows[position[t * k + j], :] = weights[t, j] *
/// dOut[t, :] and dWeights[t, j] = <dOut[t, :], rows[position[t * k + j], :]>.
void combineRowsBackward(const void *rows, const void *dOut, void *dRows,
                         float *dWeights, Precision precision,
                         std::int64_t width, const std::int32_t *position,
                         const float *weights, std::int64_t tokens, int topK,
                         cudaStream_t stream);

/// hidden = act(gateProj) * upProj, element-wise over n elements.
void gatedActivation(const void *gateProj, const void *upProj, void *hidden,
                     Precision precision, std::int64_t n, Activation activation,
                     cudaStream_t stream);
/// dGateProj = dHidden * upProj * act'(gateProj), dUpProj = dHidden *
/// act(gateProj).
void gatedActivationBackward(const void *gateProj, const void *upProj,
                             const void *dHidden, void *dGateProj,
                             void *dUpProj, Precision precision, std::int64_t n,
                             Activation activation, cudaStream_t stream);

/// out[i] = sum_r shards[r * n + i] over `replicas` gradient shards of
/// one expert (added to out when `accumulate`).
void sumReplicas(const float *shards, int replicas, std::int64_t n, float *out,
                 bool accumulate, cudaStream_t stream);

/// dst[i] += src[i] for n elements, dst in `precision` (a float32 partial
/// result added to an activation gradient).
void accumulate(const float *src, void *dst, Precision precision,
                std::int64_t n, cudaStream_t stream);

/// data[i] *= factor (gradients: the sum over data-parallel ranks into
/// their mean).
void scale(float *data, std::int64_t n, float factor, cudaStream_t stream);

/// AdamW on a float32 master shard (laer::rt::adamwStep's arithmetic);
/// when `bf16Weights` is given it receives the updated weights in bfloat16.
void adamw(float *params, const float *grads, float *firstMoment,
           float *secondMoment, std::int64_t n, const AdamWConfig &config,
           long step, void *bf16Weights, cudaStream_t stream);

/// Uniform values in [-scale, scale) from a per-element hash of `seed`:
/// random inputs for benchmarks without a host round trip.
void fillUniform(void *data, Precision precision, std::int64_t n,
                 std::uint64_t seed, float scale, cudaStream_t stream);

/// Element-wise conversion between precisions (round to nearest even).
void convert(const void *src, Precision from, void *dst, Precision to,
             std::int64_t n, cudaStream_t stream);

} // namespace laer::rt::cuda

#endif // LAER_RUNTIME_CUDA_KERNELS_H
