//===- DenseKernels.cpp - CPU kernels of the dense transformer ops --------===//

#include "laer/runtime/cpu/DenseKernels.h"
#include "laer/runtime/Error.h"
#include "laer/runtime/cpu/Kernels.h"

#include <algorithm>
#include <cblas.h>
#include <cmath>

using namespace laer::rt;

namespace laer::rt::cpu {

template <>
void gemmT<float>(bool transA, bool transB, std::int64_t m, std::int64_t n,
                  std::int64_t k, float alpha, const float *a, const float *b,
                  float beta, float *c) {
  gemm(transA, transB, m, n, k, alpha, a, b, beta, c);
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
  cblas_dgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans,
              transB ? CblasTrans : CblasNoTrans, static_cast<int>(m),
              static_cast<int>(n), static_cast<int>(k), alpha, a,
              static_cast<int>(transA ? m : k), b,
              static_cast<int>(transB ? k : n), beta, c, static_cast<int>(n));
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

/// Rotates (or, with `inverse`, un-rotates) every head of `data` [T, width]
/// by its token's position within its sequence.
template <typename T>
void rotate(std::span<T> data, std::int64_t width, const AttentionShape &shape,
            bool inverse) {
  std::int64_t d = shape.headSize(), half = d / 2;
  for (std::int64_t t = 0; t < shape.tokens; ++t) {
    double position = double(t % shape.sequenceLength);
    for (std::int64_t i = 0; i < half; ++i) {
      double angle = position * std::pow(shape.ropeTheta, -2.0 * i / d);
      T c = static_cast<T>(std::cos(angle));
      T s = static_cast<T>(inverse ? -std::sin(angle) : std::sin(angle));
      for (std::int64_t head = 0; head < width / d; ++head) {
        T *x = data.data() + t * width + head * d;
        T a = x[i], b = x[i + half];
        x[i] = a * c - b * s;
        x[i + half] = b * c + a * s;
      }
    }
  }
}

void checkAttention(const AttentionShape &shape) {
  if (shape.heads < 1 || shape.kvHeads < 1 || shape.heads % shape.kvHeads ||
      shape.hidden % shape.heads || shape.headSize() % 2 ||
      shape.sequenceLength < 1 || shape.tokens % shape.sequenceLength)
    fail({}, "attention: inconsistent shape (tokens ", shape.tokens,
         ", hidden ", shape.hidden, ", heads ", shape.heads, ", kv_heads ",
         shape.kvHeads, ", sequence length ", shape.sequenceLength,
         "); heads must divide hidden into even head sizes and kv_heads "
         "divide heads");
}

} // namespace

template <typename T>
void attentionForward(std::span<const T> input, std::span<const T> wq,
                      std::span<const T> wk, std::span<const T> wv,
                      std::span<const T> wo, const AttentionShape &shape,
                      std::span<T> output, AttentionSaved<T> &saved) {
  checkAttention(shape);
  std::int64_t T_ = shape.tokens, H = shape.hidden, d = shape.headSize();
  std::int64_t kvw = shape.kvWidth(), S = shape.sequenceLength;
  std::int64_t group = shape.heads / shape.kvHeads;
  saved.q.assign(T_ * H, 0);
  saved.k.assign(T_ * kvw, 0);
  saved.v.assign(T_ * kvw, 0);
  gemmT<T>(false, false, T_, H, H, 1, input.data(), wq.data(), 0,
           saved.q.data());
  gemmT<T>(false, false, T_, kvw, H, 1, input.data(), wk.data(), 0,
           saved.k.data());
  gemmT<T>(false, false, T_, kvw, H, 1, input.data(), wv.data(), 0,
           saved.v.data());
  rotate<T>(saved.q, H, shape, false);
  rotate<T>(saved.k, kvw, shape, false);

  T scale = static_cast<T>(1.0 / std::sqrt(double(d)));
  saved.probs.assign(shape.heads * T_ * S, 0);
  saved.context.assign(T_ * H, 0);
  for (std::int64_t head = 0; head < shape.heads; ++head) {
    std::int64_t kvHead = head / group;
    for (std::int64_t t = 0; t < T_; ++t) {
      std::int64_t start = t - t % S, i = t % S;
      T *p = saved.probs.data() + (head * T_ + t) * S;
      const T *q = saved.q.data() + t * H + head * d;
      T max = -INFINITY;
      for (std::int64_t j = 0; j <= i; ++j) {
        const T *k = saved.k.data() + (start + j) * kvw + kvHead * d;
        T score = 0;
        for (std::int64_t x = 0; x < d; ++x)
          score += q[x] * k[x];
        p[j] = score * scale;
        max = std::max(max, p[j]);
      }
      T sum = 0;
      for (std::int64_t j = 0; j <= i; ++j)
        sum += p[j] = std::exp(p[j] - max);
      T *ctx = saved.context.data() + t * H + head * d;
      for (std::int64_t j = 0; j <= i; ++j) {
        p[j] /= sum;
        const T *v = saved.v.data() + (start + j) * kvw + kvHead * d;
        for (std::int64_t x = 0; x < d; ++x)
          ctx[x] += p[j] * v[x];
      }
    }
  }
  gemmT<T>(false, false, T_, H, H, 1, saved.context.data(), wo.data(), 0,
           output.data());
}

template <typename T>
void attentionBackward(std::span<const T> input, std::span<const T> wq,
                       std::span<const T> wk, std::span<const T> wv,
                       std::span<const T> wo, const AttentionShape &shape,
                       const AttentionSaved<T> &saved,
                       std::span<const T> dOutput, std::span<T> dInput,
                       std::span<T> dWq, std::span<T> dWk, std::span<T> dWv,
                       std::span<T> dWo) {
  checkAttention(shape);
  std::int64_t T_ = shape.tokens, H = shape.hidden, d = shape.headSize();
  std::int64_t kvw = shape.kvWidth(), S = shape.sequenceLength;
  std::int64_t group = shape.heads / shape.kvHeads;
  T scale = static_cast<T>(1.0 / std::sqrt(double(d)));

  std::vector<T> dContext(T_ * H);
  gemmT<T>(false, true, T_, H, H, 1, dOutput.data(), wo.data(), 0,
           dContext.data());
  gemmT<T>(true, false, H, H, T_, 1, saved.context.data(), dOutput.data(), 1,
           dWo.data());

  std::vector<T> dq(T_ * H, 0), dk(T_ * kvw, 0), dv(T_ * kvw, 0), dp(S);
  for (std::int64_t head = 0; head < shape.heads; ++head) {
    std::int64_t kvHead = head / group;
    for (std::int64_t t = 0; t < T_; ++t) {
      std::int64_t start = t - t % S, i = t % S;
      const T *p = saved.probs.data() + (head * T_ + t) * S;
      const T *dctx = dContext.data() + t * H + head * d;
      T dot = 0;
      for (std::int64_t j = 0; j <= i; ++j) {
        const T *v = saved.v.data() + (start + j) * kvw + kvHead * d;
        T *dvj = dv.data() + (start + j) * kvw + kvHead * d;
        dp[j] = 0;
        for (std::int64_t x = 0; x < d; ++x) {
          dp[j] += dctx[x] * v[x];
          dvj[x] += p[j] * dctx[x];
        }
        dot += p[j] * dp[j];
      }
      const T *q = saved.q.data() + t * H + head * d;
      T *dqt = dq.data() + t * H + head * d;
      for (std::int64_t j = 0; j <= i; ++j) {
        T ds = p[j] * (dp[j] - dot) * scale;
        const T *k = saved.k.data() + (start + j) * kvw + kvHead * d;
        T *dkj = dk.data() + (start + j) * kvw + kvHead * d;
        for (std::int64_t x = 0; x < d; ++x) {
          dqt[x] += ds * k[x];
          dkj[x] += ds * q[x];
        }
      }
    }
  }
  rotate<T>(dq, H, shape, true);
  rotate<T>(dk, kvw, shape, true);
  gemmT<T>(false, true, T_, H, H, 1, dq.data(), wq.data(), 0, dInput.data());
  gemmT<T>(false, true, T_, H, kvw, 1, dk.data(), wk.data(), 1,
           dInput.data());
  gemmT<T>(false, true, T_, H, kvw, 1, dv.data(), wv.data(), 1,
           dInput.data());
  gemmT<T>(true, false, H, H, T_, 1, input.data(), dq.data(), 1, dWq.data());
  gemmT<T>(true, false, H, kvw, T_, 1, input.data(), dk.data(), 1,
           dWk.data());
  gemmT<T>(true, false, H, kvw, T_, 1, input.data(), dv.data(), 1,
           dWv.data());
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
    for (std::int64_t v = 0; v < vocab; ++v)
      sum += p[v] = std::exp(row[v] - max);
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
  template void embeddingForward<T>(std::span<const T>,                       \
                                    std::span<const std::int32_t>,            \
                                    std::int64_t, std::int64_t, std::span<T>); \
  template void embeddingBackward<T>(std::span<const std::int32_t>,           \
                                     std::span<const T>, std::int64_t,        \
                                     std::int64_t, std::span<T>);             \
  template void rmsNormForward<T>(std::span<const T>, std::span<const T>,     \
                                  std::int64_t, std::int64_t, double,         \
                                  std::span<T>, std::span<T>);                \
  template void rmsNormBackward<T>(std::span<const T>, std::span<const T>,    \
                                   std::span<const T>, std::span<const T>,    \
                                   std::int64_t, std::int64_t, std::span<T>,  \
                                   std::span<T>);                             \
  template void attentionForward<T>(                                          \
      std::span<const T>, std::span<const T>, std::span<const T>,             \
      std::span<const T>, std::span<const T>, const AttentionShape &,         \
      std::span<T>, AttentionSaved<T> &);                                     \
  template void attentionBackward<T>(                                         \
      std::span<const T>, std::span<const T>, std::span<const T>,             \
      std::span<const T>, std::span<const T>, const AttentionShape &,         \
      const AttentionSaved<T> &, std::span<const T>, std::span<T>,            \
      std::span<T>, std::span<T>, std::span<T>, std::span<T>);                \
  template T crossEntropyForward<T>(std::span<const T>,                       \
                                    std::span<const std::int32_t>,            \
                                    std::int64_t, std::int64_t, std::span<T>); \
  template void crossEntropyBackward<T>(std::span<const T>,                   \
                                        std::span<const std::int32_t>,        \
                                        std::int64_t, std::int64_t, T,        \
                                        std::span<T>);

LAER_INSTANTIATE(float)
LAER_INSTANTIATE(double)

} // namespace laer::rt::cpu
