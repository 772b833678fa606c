//===- DenseKernels.cpp - CPU kernels of the dense transformer ops --------===//

#include "laer/runtime/cpu/DenseKernels.h"
#include "VectorMath.h"
#include "laer/runtime/Error.h"
#include "laer/runtime/cpu/CausalAttention.h"
#include "laer/runtime/cpu/Kernels.h"

#include <algorithm>
#include <cblas.h>
#include <cmath>
#include <type_traits>

using namespace laer::rt;

namespace laer::rt::cpu {

template <>
void gemmT<float>(bool transA, bool transB, std::int64_t m, std::int64_t n,
                  std::int64_t k, float alpha, const float *a, const float *b,
                  float beta, float *c) {
  gemm(transA, transB, m, n, k, alpha, a, b, beta, c);
}

template <>
void gemmStrided<float>(bool transA, bool transB, std::int64_t m,
                        std::int64_t n, std::int64_t k, float alpha,
                        const float *a, std::int64_t lda, const float *b,
                        std::int64_t ldb, float beta, float *c,
                        std::int64_t ldc) {
  cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans,
              transB ? CblasTrans : CblasNoTrans, static_cast<int>(m),
              static_cast<int>(n), static_cast<int>(k), alpha, a,
              static_cast<int>(lda), b, static_cast<int>(ldb), beta, c,
              static_cast<int>(ldc));
}

template <>
void gemmStrided<double>(bool transA, bool transB, std::int64_t m,
                         std::int64_t n, std::int64_t k, double alpha,
                         const double *a, std::int64_t lda, const double *b,
                         std::int64_t ldb, double beta, double *c,
                         std::int64_t ldc) {
  cblas_dgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans,
              transB ? CblasTrans : CblasNoTrans, static_cast<int>(m),
              static_cast<int>(n), static_cast<int>(k), alpha, a,
              static_cast<int>(lda), b, static_cast<int>(ldb), beta, c,
              static_cast<int>(ldc));
}

template <>
void gemmT<double>(bool transA, bool transB, std::int64_t m, std::int64_t n,
                   std::int64_t k, double alpha, const double *a,
                   const double *b, double beta, double *c) {
  if (m == 0 || n == 0)
    return;
  if (k == 0) {
    for (std::int64_t i = 0; i < m * n; ++i)
      c[i] = beta == 0.0 ? 0.0 : beta * c[i];
    return;
  }
  gemmStrided<double>(transA, transB, m, n, k, alpha, a, transA ? m : k, b,
                      transB ? k : n, beta, c, n);
}

template <typename T>
void embeddingForward(std::span<const T> table,
                      std::span<const std::int32_t> ids, std::int64_t vocab,
                      std::int64_t hidden, std::span<T> output) {
  for (std::size_t t = 0; t < ids.size(); ++t) {
    if (ids[t] < 0 || ids[t] >= vocab)
      fail({}, "embedding: token ", t, " has id ", ids[t],
           ", outside the vocabulary [0, ", vocab, ")");
    std::copy_n(table.data() + ids[t] * hidden, hidden,
                output.data() + t * hidden);
  }
}

template <typename T>
void embeddingBackward(std::span<const std::int32_t> ids,
                       std::span<const T> dOutput, std::int64_t vocab,
                       std::int64_t hidden, std::span<T> dTable) {
  for (std::size_t t = 0; t < ids.size(); ++t) {
    if (ids[t] < 0 || ids[t] >= vocab)
      fail({}, "embedding: token ", t, " has id ", ids[t],
           ", outside the vocabulary [0, ", vocab, ")");
    for (std::int64_t h = 0; h < hidden; ++h)
      dTable[ids[t] * hidden + h] += dOutput[t * hidden + h];
  }
}

template <typename T>
void rmsNormForward(std::span<const T> input, std::span<const T> weight,
                    std::int64_t tokens, std::int64_t hidden, double epsilon,
                    std::span<T> output, std::span<T> invRms) {
  for (std::int64_t t = 0; t < tokens; ++t) {
    const T *x = input.data() + t * hidden;
    double squares = 0;
    for (std::int64_t h = 0; h < hidden; ++h)
      squares += double(x[h]) * x[h];
    T r = static_cast<T>(1.0 / std::sqrt(squares / hidden + epsilon));
    invRms[t] = r;
    for (std::int64_t h = 0; h < hidden; ++h)
      output[t * hidden + h] = x[h] * r * weight[h];
  }
}

template <typename T>
void rmsNormBackward(std::span<const T> input, std::span<const T> weight,
                     std::span<const T> invRms, std::span<const T> dOutput,
                     std::int64_t tokens, std::int64_t hidden,
                     std::span<T> dInput, std::span<T> dWeight) {
  for (std::int64_t t = 0; t < tokens; ++t) {
    const T *x = input.data() + t * hidden;
    const T *dy = dOutput.data() + t * hidden;
    T r = invRms[t];
    T dot = 0;
    for (std::int64_t h = 0; h < hidden; ++h) {
      dot += x[h] * weight[h] * dy[h];
      dWeight[h] += x[h] * r * dy[h];
    }
    T correction = r * r * r * dot / static_cast<T>(hidden);
    for (std::int64_t h = 0; h < hidden; ++h)
      dInput[t * hidden + h] = r * weight[h] * dy[h] - x[h] * correction;
  }
}

namespace {

/// The sizes of an attention call, after checkAttention.
struct AttentionLayout {
  std::int64_t T, H, d, qw, kvw, S;
  bool bias = false, norm = false;
  /// With QK-norm: the length of the rows RMSNorm normalizes in q and k
  /// (the head size, or the whole width) and how many rows there are.
  std::int64_t qRow = 0, kRow = 0, qRows = 0, kRows = 0;
};

void checkSize(const char *operand, std::size_t size, std::int64_t expected,
               const char *what) {
  if (static_cast<std::int64_t>(size) != expected)
    fail({}, "attention: ", operand, " has ", size, " elements, expected ",
         expected, " (", what, ")");
}

/// The row length of a QK-norm weight of `size` elements: the head size
/// (per head) or the projection's whole width.
std::int64_t normRow(const char *operand, std::size_t size, std::int64_t d,
                     std::int64_t width, const char *widthName) {
  auto n = static_cast<std::int64_t>(size);
  if (n == d || n == width)
    return n;
  if (d == width)
    fail({}, "attention: ", operand, " has ", size, " elements, expected ", d,
         " (head size = ", widthName, ")");
  fail({}, "attention: ", operand, " has ", size, " elements, expected ", d,
       " (head size: per-head QK-norm) or ", width, " (", widthName,
       ": whole-projection QK-norm)");
}

template <typename T>
AttentionLayout checkAttention(const AttentionShape &shape,
                               std::span<const T> input,
                               const AttentionParams<T> &params) {
  if (shape.heads < 1 || shape.kvHeads < 1 || shape.heads % shape.kvHeads ||
      shape.tokens < 0 || shape.hidden < 1 || shape.headDim < 0 ||
      (shape.headDim == 0 && shape.hidden % shape.heads) ||
      shape.sequenceLength < 1 || shape.tokens % shape.sequenceLength)
    fail({}, "attention: inconsistent shape (tokens ", shape.tokens,
         ", hidden ", shape.hidden, ", heads ", shape.heads, ", kv_heads ",
         shape.kvHeads, ", head_dim ", shape.headDim, ", sequence length ",
         shape.sequenceLength,
         "); kv_heads must divide heads, the sequence length the tokens, and "
         "heads the hidden size unless head_dim is set");
  if (shape.headSize() % 2)
    fail({}, "attention: head size ", shape.headSize(),
         " is odd; the rotary embedding rotates the two halves of each head, "
         "so it must be even");
  AttentionLayout l;
  l.T = shape.tokens;
  l.H = shape.hidden;
  l.d = shape.headSize();
  l.qw = shape.qWidth();
  l.kvw = shape.kvWidth();
  l.S = shape.sequenceLength;
  checkSize("input", input.size(), l.T * l.H, "tokens x hidden");
  checkSize("wq", params.wq.size(), l.H * l.qw, "hidden x q width");
  checkSize("wk", params.wk.size(), l.H * l.kvw, "hidden x kv width");
  checkSize("wv", params.wv.size(), l.H * l.kvw, "hidden x kv width");
  checkSize("wo", params.wo.size(), l.qw * l.H, "q width x hidden");

  l.bias = !params.bq.empty() || !params.bk.empty() || !params.bv.empty();
  if (l.bias) {
    if (params.bq.empty() || params.bk.empty() || params.bv.empty())
      fail({}, "attention: bq, bk and bv have ", params.bq.size(), ", ",
           params.bk.size(), " and ", params.bv.size(),
           " elements; the q/k/v biases are all given or all absent");
    checkSize("bq", params.bq.size(), l.qw, "q width");
    checkSize("bk", params.bk.size(), l.kvw, "kv width");
    checkSize("bv", params.bv.size(), l.kvw, "kv width");
  }

  l.norm = !params.qNorm.empty() || !params.kNorm.empty();
  if (l.norm) {
    if (params.qNorm.empty() || params.kNorm.empty())
      fail({}, "attention: qNorm has ", params.qNorm.size(),
           " elements and kNorm ", params.kNorm.size(),
           "; the QK-norm needs both weights or neither");
    l.qRow = normRow("qNorm", params.qNorm.size(), l.d, l.qw, "q width");
    l.kRow = normRow("kNorm", params.kNorm.size(), l.d, l.kvw, "kv width");
    l.qRows = l.T * (l.qw / l.qRow);
    l.kRows = l.T * (l.kvw / l.kRow);
    if (!(shape.qkNormEpsilon >= 0))
      fail({}, "attention: QK-norm epsilon ", shape.qkNormEpsilon,
           " is negative");
  }
  return l;
}

/// `data` [rows, width] += bias [width] on every row.
template <typename T>
void addBias(std::vector<T> &data, std::span<const T> bias,
             std::int64_t width) {
  for (std::size_t i = 0; i < data.size(); ++i)
    data[i] += bias[i % width];
}

/// dBias [width] += the column sums of `d` [rows, width].
template <typename T>
void addBiasGrad(const std::vector<T> &d, std::span<T> dBias,
                 std::int64_t width) {
  for (std::size_t i = 0; i < d.size(); ++i)
    dBias[i % width] += d[i];
}

template <typename T>
void checkGrad(const char *param, std::span<const T> value, std::span<T> grad) {
  if (grad.size() != value.size())
    fail({}, "attention: the gradient of ", param, " has ", grad.size(),
         " elements, expected ", value.size(),
         value.empty() ? " (the parameter is absent)" : " (as the parameter)");
}

/// The core's shape: every head of size d, scaled by 1 / sqrt(d).
CausalAttentionShape coreShape(const AttentionShape &shape,
                               const AttentionLayout &l) {
  return {l.T,
          l.S,
          shape.heads,
          shape.kvHeads,
          l.d,
          l.d,
          1.0 / std::sqrt(double(l.d))};
}

} // namespace

template <typename T>
void attentionForward(std::span<const T> input,
                      const AttentionParams<T> &params,
                      const AttentionShape &shape, std::span<T> output,
                      AttentionSaved<T> &saved) {
  AttentionLayout l = checkAttention(shape, input, params);
  checkSize("output", output.size(), l.T * l.H, "tokens x hidden");
  std::int64_t T_ = l.T, H = l.H, d = l.d, qw = l.qw, kvw = l.kvw, S = l.S;
  saved.q.assign(T_ * qw, 0);
  saved.k.assign(T_ * kvw, 0);
  saved.v.assign(T_ * kvw, 0);
  gemmT<T>(false, false, T_, qw, H, 1, input.data(), params.wq.data(), 0,
           saved.q.data());
  gemmT<T>(false, false, T_, kvw, H, 1, input.data(), params.wk.data(), 0,
           saved.k.data());
  gemmT<T>(false, false, T_, kvw, H, 1, input.data(), params.wv.data(), 0,
           saved.v.data());
  if (l.bias) {
    addBias<T>(saved.q, params.bq, qw);
    addBias<T>(saved.k, params.bk, kvw);
    addBias<T>(saved.v, params.bv, kvw);
  }
  if (l.norm) {
    saved.qPreNorm = saved.q;
    saved.kPreNorm = saved.k;
    saved.qInvRms.assign(l.qRows, 0);
    saved.kInvRms.assign(l.kRows, 0);
    rmsNormForward<T>(saved.qPreNorm, params.qNorm, l.qRows, l.qRow,
                      shape.qkNormEpsilon, saved.q, saved.qInvRms);
    rmsNormForward<T>(saved.kPreNorm, params.kNorm, l.kRows, l.kRow,
                      shape.qkNormEpsilon, saved.k, saved.kInvRms);
  } else {
    saved.qPreNorm.clear();
    saved.kPreNorm.clear();
    saved.qInvRms.clear();
    saved.kInvRms.clear();
  }
  RotaryTable rotary(d, shape.ropeTheta, RotaryPairs::Halves);
  rotary.rotate<T>(saved.q, qw, 0, d, shape.heads, S, false);
  rotary.rotate<T>(saved.k, kvw, 0, d, shape.kvHeads, S, false);

  saved.probs.assign(shape.heads * T_ * S, 0);
  saved.context.assign(T_ * qw, 0);
  causalAttentionForward<T>(coreShape(shape, l), saved.q, saved.k, saved.v,
                            saved.probs, saved.context);
  gemmT<T>(false, false, T_, H, qw, 1, saved.context.data(), params.wo.data(),
           0, output.data());
}

template <typename T>
void attentionBackward(std::span<const T> input,
                       const AttentionParams<T> &params,
                       const AttentionShape &shape,
                       const AttentionSaved<T> &saved,
                       std::span<const T> dOutput, std::span<T> dInput,
                       const AttentionGrads<T> &grads) {
  AttentionLayout l = checkAttention(shape, input, params);
  std::int64_t T_ = l.T, H = l.H, d = l.d, qw = l.qw, kvw = l.kvw, S = l.S;
  checkSize("dOutput", dOutput.size(), T_ * H, "tokens x hidden");
  checkSize("dInput", dInput.size(), T_ * H, "tokens x hidden");
  checkGrad<T>("wq", params.wq, grads.wq);
  checkGrad<T>("wk", params.wk, grads.wk);
  checkGrad<T>("wv", params.wv, grads.wv);
  checkGrad<T>("wo", params.wo, grads.wo);
  checkGrad<T>("bq", params.bq, grads.bq);
  checkGrad<T>("bk", params.bk, grads.bk);
  checkGrad<T>("bv", params.bv, grads.bv);
  checkGrad<T>("qNorm", params.qNorm, grads.qNorm);
  checkGrad<T>("kNorm", params.kNorm, grads.kNorm);
  auto checkSaved = [](const char *what, std::size_t size,
                       std::int64_t expected) {
    if (static_cast<std::int64_t>(size) != expected)
      fail({}, "attention: saved.", what, " has ", size, " elements, expected ",
           expected,
           "; backward needs what attentionForward saved for the same "
           "shape and parameters");
  };
  checkSaved("q", saved.q.size(), T_ * qw);
  checkSaved("k", saved.k.size(), T_ * kvw);
  checkSaved("v", saved.v.size(), T_ * kvw);
  checkSaved("probs", saved.probs.size(), shape.heads * T_ * S);
  checkSaved("context", saved.context.size(), T_ * qw);
  checkSaved("qPreNorm", saved.qPreNorm.size(), l.norm ? T_ * qw : 0);
  checkSaved("kPreNorm", saved.kPreNorm.size(), l.norm ? T_ * kvw : 0);
  checkSaved("qInvRms", saved.qInvRms.size(), l.qRows);
  checkSaved("kInvRms", saved.kInvRms.size(), l.kRows);
  std::vector<T> dContext(T_ * qw);
  gemmT<T>(false, true, T_, qw, H, 1, dOutput.data(), params.wo.data(), 0,
           dContext.data());
  gemmT<T>(true, false, qw, H, T_, 1, saved.context.data(), dOutput.data(), 1,
           grads.wo.data());

  std::vector<T> dq(T_ * qw), dk(T_ * kvw), dv(T_ * kvw);
  causalAttentionBackward<T>(coreShape(shape, l), saved.q, saved.k, saved.v,
                             saved.probs, dContext, dq, dk, dv);
  RotaryTable rotary(d, shape.ropeTheta, RotaryPairs::Halves);
  rotary.rotate<T>(dq, qw, 0, d, shape.heads, S, true);
  rotary.rotate<T>(dk, kvw, 0, d, shape.kvHeads, S, true);
  if (l.norm) {
    // dq, dk: of the normed q and k; make them of the pre-norm ones.
    std::vector<T> dqPre(T_ * qw), dkPre(T_ * kvw);
    rmsNormBackward<T>(saved.qPreNorm, params.qNorm, saved.qInvRms, dq, l.qRows,
                       l.qRow, dqPre, grads.qNorm);
    rmsNormBackward<T>(saved.kPreNorm, params.kNorm, saved.kInvRms, dk, l.kRows,
                       l.kRow, dkPre, grads.kNorm);
    dq.swap(dqPre);
    dk.swap(dkPre);
  }
  if (l.bias) {
    addBiasGrad<T>(dq, grads.bq, qw);
    addBiasGrad<T>(dk, grads.bk, kvw);
    addBiasGrad<T>(dv, grads.bv, kvw);
  }
  gemmT<T>(false, true, T_, H, qw, 1, dq.data(), params.wq.data(), 0,
           dInput.data());
  gemmT<T>(false, true, T_, H, kvw, 1, dk.data(), params.wk.data(), 1,
           dInput.data());
  gemmT<T>(false, true, T_, H, kvw, 1, dv.data(), params.wv.data(), 1,
           dInput.data());
  gemmT<T>(true, false, H, qw, T_, 1, input.data(), dq.data(), 1,
           grads.wq.data());
  gemmT<T>(true, false, H, kvw, T_, 1, input.data(), dk.data(), 1,
           grads.wk.data());
  gemmT<T>(true, false, H, kvw, T_, 1, input.data(), dv.data(), 1,
           grads.wv.data());
}

template <typename T>
T crossEntropyForward(std::span<const T> logits,
                      std::span<const std::int32_t> targets,
                      std::int64_t tokens, std::int64_t vocab,
                      std::span<T> probs) {
  double loss = 0;
  for (std::int64_t t = 0; t < tokens; ++t) {
    if (targets[t] < 0 || targets[t] >= vocab)
      fail({}, "cross_entropy: target ", t, " is ", targets[t],
           ", outside the vocabulary [0, ", vocab, ")");
    const T *row = logits.data() + t * vocab;
    T *p = probs.data() + t * vocab;
    T max = *std::max_element(row, row + vocab);
    T sum = 0;
    if constexpr (std::is_same_v<T, float>) {
      detail::expShifted(row, max, p, static_cast<std::size_t>(vocab));
      for (std::int64_t v = 0; v < vocab; ++v)
        sum += p[v];
    } else {
      for (std::int64_t v = 0; v < vocab; ++v)
        sum += p[v] = std::exp(row[v] - max);
    }
    for (std::int64_t v = 0; v < vocab; ++v)
      p[v] /= sum;
    loss -= std::log(double(p[targets[t]]));
  }
  return static_cast<T>(tokens > 0 ? loss / tokens : 0.0);
}

template <typename T>
void crossEntropyBackward(std::span<const T> probs,
                          std::span<const std::int32_t> targets,
                          std::int64_t tokens, std::int64_t vocab, T dLoss,
                          std::span<T> dLogits) {
  T scale = tokens > 0 ? dLoss / static_cast<T>(tokens) : T(0);
  for (std::int64_t t = 0; t < tokens; ++t)
    for (std::int64_t v = 0; v < vocab; ++v)
      dLogits[t * vocab + v] =
          scale * (probs[t * vocab + v] - (v == targets[t] ? T(1) : T(0)));
}

#define LAER_INSTANTIATE(T)                                                    \
  template void embeddingForward<T>(std::span<const T>,                        \
                                    std::span<const std::int32_t>,             \
                                    std::int64_t, std::int64_t, std::span<T>); \
  template void embeddingBackward<T>(std::span<const std::int32_t>,            \
                                     std::span<const T>, std::int64_t,         \
                                     std::int64_t, std::span<T>);              \
  template void rmsNormForward<T>(std::span<const T>, std::span<const T>,      \
                                  std::int64_t, std::int64_t, double,          \
                                  std::span<T>, std::span<T>);                 \
  template void rmsNormBackward<T>(std::span<const T>, std::span<const T>,     \
                                   std::span<const T>, std::span<const T>,     \
                                   std::int64_t, std::int64_t, std::span<T>,   \
                                   std::span<T>);                              \
  template void attentionForward<T>(                                           \
      std::span<const T>, const AttentionParams<T> &, const AttentionShape &,  \
      std::span<T>, AttentionSaved<T> &);                                      \
  template void attentionBackward<T>(                                          \
      std::span<const T>, const AttentionParams<T> &, const AttentionShape &,  \
      const AttentionSaved<T> &, std::span<const T>, std::span<T>,             \
      const AttentionGrads<T> &);                                              \
  template T crossEntropyForward<T>(std::span<const T>,                        \
                                    std::span<const std::int32_t>,             \
                                    std::int64_t, std::int64_t, std::span<T>); \
  template void crossEntropyBackward<T>(                                       \
      std::span<const T>, std::span<const std::int32_t>, std::int64_t,         \
      std::int64_t, T, std::span<T>);

LAER_INSTANTIATE(float)
LAER_INSTANTIATE(double)

} // namespace laer::rt::cpu
