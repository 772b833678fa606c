//===- CausalAttention.cpp - attention core and rotary tables -------------===//

#include "laer/runtime/cpu/CausalAttention.h"
#include "VectorMath.h"
#include "laer/runtime/Error.h"
#include "laer/runtime/cpu/DenseKernels.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <type_traits>
#include <vector>

namespace laer::rt::cpu {

namespace {

void checkCore(const CausalAttentionShape &s, std::size_t q, std::size_t k,
               std::size_t v, std::size_t probs, std::size_t context) {
  if (s.tokens < 0 || s.sequenceLength < 1 || s.tokens % s.sequenceLength ||
      s.heads < 1 || s.kvHeads < 1 || s.heads % s.kvHeads || s.qkDim < 1 ||
      s.vDim < 1)
    fail({}, "attention: inconsistent shape (tokens ", s.tokens,
         ", sequence length ", s.sequenceLength, ", heads ", s.heads,
         ", kv heads ", s.kvHeads, ", qk size ", s.qkDim, ", v size ", s.vDim,
         ")");
  auto expect = [](const char *what, std::size_t size, std::int64_t n) {
    if (static_cast<std::int64_t>(size) != n)
      fail({}, "attention: ", what, " has ", size, " elements, expected ", n);
  };
  expect("q", q, s.tokens * s.heads * s.qkDim);
  expect("k", k, s.tokens * s.kvHeads * s.qkDim);
  expect("v", v, s.tokens * s.kvHeads * s.vDim);
  expect("probs", probs, s.heads * s.tokens * s.sequenceLength);
  expect("context", context, s.tokens * s.heads * s.vDim);
}

} // namespace

// Per sequence and head, the scores, the weighted values and their
// gradients are GEMMs over the sequence's S x S block (its upper triangle
// masked), so the work runs at BLAS speed rather than in scalar loops.

template <typename T>
void causalAttentionForward(const CausalAttentionShape &s, std::span<const T> q,
                            std::span<const T> k, std::span<const T> v,
                            std::span<T> probs, std::span<T> context) {
  checkCore(s, q.size(), k.size(), v.size(), probs.size(), context.size());
  const std::int64_t S = s.sequenceLength, dq = s.qkDim, dv = s.vDim;
  const std::int64_t qw = s.heads * dq, kw = s.kvHeads * dq,
                     vw = s.kvHeads * dv, cw = s.heads * dv;
  const std::int64_t group = s.heads / s.kvHeads;
  for (std::int64_t head = 0; head < s.heads; ++head) {
    const std::int64_t kvHead = head / group;
    for (std::int64_t start = 0; start < s.tokens; start += S) {
      const T *Q = q.data() + start * qw + head * dq;
      const T *K = k.data() + start * kw + kvHead * dq;
      const T *V = v.data() + start * vw + kvHead * dv;
      T *P = probs.data() + (head * s.tokens + start) * S;
      gemmStrided<T>(false, true, S, S, dq, static_cast<T>(s.scale), Q, qw, K,
                     kw, T(0), P, S);
      for (std::int64_t i = 0; i < S; ++i) {
        T *row = P + i * S;
        T max = -INFINITY;
        for (std::int64_t j = 0; j <= i; ++j)
          max = std::max(max, row[j]);
        T sum = 0;
        if constexpr (std::is_same_v<T, float>) {
          detail::expShifted(row, max, row, static_cast<std::size_t>(i + 1));
          for (std::int64_t j = 0; j <= i; ++j)
            sum += row[j];
        } else {
          for (std::int64_t j = 0; j <= i; ++j)
            sum += row[j] = std::exp(row[j] - max);
        }
        for (std::int64_t j = 0; j <= i; ++j)
          row[j] /= sum;
        std::fill(row + i + 1, row + S, T(0));
      }
      gemmStrided<T>(false, false, S, dv, S, T(1), P, S, V, vw, T(0),
                     context.data() + start * cw + head * dv, cw);
    }
  }
}

template <typename T>
void causalAttentionBackward(const CausalAttentionShape &s,
                             std::span<const T> q, std::span<const T> k,
                             std::span<const T> v, std::span<const T> probs,
                             std::span<const T> dContext, std::span<T> dq,
                             std::span<T> dk, std::span<T> dv) {
  checkCore(s, q.size(), k.size(), v.size(), probs.size(), dContext.size());
  if (dq.size() != q.size() || dk.size() != k.size() || dv.size() != v.size())
    fail({}, "attention: the gradients of q, k, v have ", dq.size(), ", ",
         dk.size(), ", ", dv.size(), " elements, expected ", q.size(), ", ",
         k.size(), ", ", v.size());
  const std::int64_t S = s.sequenceLength, qkd = s.qkDim, vd = s.vDim;
  const std::int64_t qw = s.heads * qkd, kw = s.kvHeads * qkd,
                     vw = s.kvHeads * vd, cw = s.heads * vd;
  const std::int64_t group = s.heads / s.kvHeads;
  const T scale = static_cast<T>(s.scale);
  std::fill(dq.begin(), dq.end(), T(0));
  std::fill(dk.begin(), dk.end(), T(0));
  std::fill(dv.begin(), dv.end(), T(0));
  std::vector<T> dS(static_cast<std::size_t>(S * S));
  for (std::int64_t head = 0; head < s.heads; ++head) {
    const std::int64_t kvHead = head / group;
    for (std::int64_t start = 0; start < s.tokens; start += S) {
      const T *Q = q.data() + start * qw + head * qkd;
      const T *K = k.data() + start * kw + kvHead * qkd;
      const T *V = v.data() + start * vw + kvHead * vd;
      const T *P = probs.data() + (head * s.tokens + start) * S;
      const T *dC = dContext.data() + start * cw + head * vd;
      // dP = dC V^T; dV += P^T dC (heads sharing a KV head add up).
      gemmStrided<T>(false, true, S, S, vd, T(1), dC, cw, V, vw, T(0),
                     dS.data(), S);
      gemmStrided<T>(true, false, S, vd, S, T(1), P, S, dC, cw, T(1),
                     dv.data() + start * vw + kvHead * vd, vw);
      // The softmax's gradient: dS = P (dP - sum_j P dP), zero above the
      // diagonal where P is.
      for (std::int64_t i = 0; i < S; ++i) {
        const T *p = P + i * S;
        T *row = dS.data() + i * S;
        T dot = 0;
        for (std::int64_t j = 0; j <= i; ++j)
          dot += p[j] * row[j];
        for (std::int64_t j = 0; j <= i; ++j)
          row[j] = p[j] * (row[j] - dot);
        std::fill(row + i + 1, row + S, T(0));
      }
      // dQ = scale dS K; dK += scale dS^T Q.
      gemmStrided<T>(false, false, S, qkd, S, scale, dS.data(), S, K, kw, T(1),
                     dq.data() + start * qw + head * qkd, qw);
      gemmStrided<T>(true, false, S, qkd, S, scale, dS.data(), S, Q, qw, T(1),
                     dk.data() + start * kw + kvHead * qkd, kw);
    }
  }
}

RotaryTable::RotaryTable(std::int64_t dim, double theta, RotaryPairs pairs)
    : dim(dim), pairs(pairs) {
  if (dim < 2 || dim % 2 || !(theta > 0))
    fail({}, "rotary embedding: ", dim, " elements with base ", theta,
         "; the size must be even and positive, the base > 0");
  for (std::int64_t i = 0; i < dim / 2; ++i)
    invFreq.push_back(std::pow(theta, -2.0 * double(i) / double(dim)));
}

RotaryTable::RotaryTable(std::int64_t dim, double theta, RotaryPairs pairs,
                         const YarnScaling &yarn)
    : RotaryTable(dim, theta, pairs) {
  if (!(yarn.factor >= 1) || yarn.originalMaxPosition < 1 ||
      !(yarn.betaFast > 0) || !(yarn.betaSlow > 0) ||
      !(yarn.attentionFactor > 0))
    fail({}, "YaRN: factor ", yarn.factor, ", original max position ",
         yarn.originalMaxPosition, ", beta_fast ", yarn.betaFast,
         ", beta_slow ", yarn.betaSlow, ", attention factor ",
         yarn.attentionFactor,
         "; the factor must be >= 1 and the others positive");
  // The dimension where a frequency turns `rotations` times over the
  // original context; below `low` frequencies stay, above `high` they are
  // divided by the factor, between they blend linearly.
  auto correctionDim = [&](double rotations) {
    return double(dim) *
           std::log(double(yarn.originalMaxPosition) /
                    (rotations * 2 * std::numbers::pi)) /
           (2 * std::log(theta));
  };
  double low = std::max(std::floor(correctionDim(yarn.betaFast)), 0.0);
  double high =
      std::min(std::ceil(correctionDim(yarn.betaSlow)), double(dim - 1));
  if (low == high)
    high += 0.001;
  for (std::int64_t i = 0; i < dim / 2; ++i) {
    double ramp = std::clamp((double(i) - low) / (high - low), 0.0, 1.0);
    double extrapolation = 1.0 - ramp;
    invFreq[i] = invFreq[i] / yarn.factor * (1.0 - extrapolation) +
                 invFreq[i] * extrapolation;
  }
  scale = yarn.attentionFactor;
}

template <typename T>
void RotaryTable::rotate(std::span<T> data, std::int64_t width,
                         std::int64_t offset, std::int64_t stride,
                         std::int64_t count, std::int64_t sequenceLength,
                         bool inverse) const {
  if (width < 1 || offset < 0 || count < 0 || sequenceLength < 1 ||
      data.size() % width ||
      (count > 0 && offset + (count - 1) * stride + dim > width))
    fail({}, "rotary embedding: ", count, " blocks of ", dim,
         " elements from offset ", offset, " every ", stride,
         " do not fit rows of ", width);
  const std::int64_t rows = static_cast<std::int64_t>(data.size()) / width;
  const std::int64_t half = dim / 2;
  // cos and sin once per position, not per row (rows repeat positions
  // every sequence).
  const std::int64_t positions = std::min(rows, sequenceLength);
  std::vector<T> cosines(static_cast<std::size_t>(positions * half)),
      sines(cosines.size());
  for (std::int64_t position = 0; position < positions; ++position)
    for (std::int64_t i = 0; i < half; ++i) {
      double angle = double(position) * invFreq[i];
      cosines[position * half + i] = static_cast<T>(std::cos(angle) * scale);
      T sn = static_cast<T>(std::sin(angle) * scale);
      sines[position * half + i] = inverse ? -sn : sn;
    }
  for (std::int64_t t = 0; t < rows; ++t) {
    std::int64_t position = t % sequenceLength;
    for (std::int64_t i = 0; i < half; ++i) {
      T c = cosines[position * half + i];
      T sn = sines[position * half + i];
      std::int64_t a = pairs == RotaryPairs::Halves ? i : 2 * i;
      std::int64_t b = pairs == RotaryPairs::Halves ? i + half : 2 * i + 1;
      for (std::int64_t block = 0; block < count; ++block) {
        T *x = data.data() + t * width + offset + block * stride;
        T xa = x[a], xb = x[b];
        x[a] = xa * c - xb * sn;
        x[b] = xb * c + xa * sn;
      }
    }
  }
}

#define LAER_INSTANTIATE(T)                                                    \
  template void causalAttentionForward<T>(                                     \
      const CausalAttentionShape &, std::span<const T>, std::span<const T>,    \
      std::span<const T>, std::span<T>, std::span<T>);                         \
  template void causalAttentionBackward<T>(                                    \
      const CausalAttentionShape &, std::span<const T>, std::span<const T>,    \
      std::span<const T>, std::span<const T>, std::span<const T>,              \
      std::span<T>, std::span<T>, std::span<T>);                               \
  template void RotaryTable::rotate<T>(                                        \
      std::span<T>, std::int64_t, std::int64_t, std::int64_t, std::int64_t,    \
      std::int64_t, bool) const;

LAER_INSTANTIATE(float)
LAER_INSTANTIATE(double)

} // namespace laer::rt::cpu
