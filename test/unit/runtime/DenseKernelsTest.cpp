//===- DenseKernelsTest.cpp - dense kernels against finite differences ----===//
//
// Each backward is checked against central differences of its own forward
// in float64 (a check that does not share the hand-derived gradient
// formulas), and each float32 forward against the float64 one.
//
//===----------------------------------------------------------------------===//

#include "laer/runtime/cpu/DenseKernels.h"
#include "laer/runtime/Error.h"
#include "laer/runtime/cpu/Kernels.h"

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <random>
#include <string>

using namespace laer::rt;
using namespace laer::rt::cpu;

namespace {

std::vector<double> random(std::size_t n, std::mt19937_64 &rng,
                           double scale = 1.0) {
  std::uniform_real_distribution<double> u(-scale, scale);
  std::vector<double> v(n);
  for (double &x : v)
    x = u(rng);
  return v;
}

/// Central-difference gradient of `loss` with respect to `x`, compared
/// entry by entry with `analytic`; returns the largest relative error.
/// `fivePoint` uses the fourth-order stencil with a step of 1e-4: the
/// larger step keeps rounding in losses of size ~10 (attention with biases
/// and QK-norm) well below the errors checked, where the second-order one
/// at 1e-6 leaves ~1e-6 of noise on gradients near the 1e-3 floor.
double gradientError(std::vector<double> &x,
                     const std::function<double()> &loss,
                     const std::vector<double> &analytic,
                     bool fivePoint = false) {
  double worst = 0, h = fivePoint ? 1e-4 : 1e-6;
  for (std::size_t i = 0; i < x.size(); ++i) {
    double saved = x[i];
    auto at = [&](double step) {
      x[i] = saved + step;
      return loss();
    };
    double numeric =
        fivePoint ? (8 * (at(h) - at(-h)) - (at(2 * h) - at(-2 * h))) / (12 * h)
                  : (at(h) - at(-h)) / (2 * h);
    x[i] = saved;
    worst = std::max(worst, std::abs(numeric - analytic[i]) /
                                std::max(1e-3, std::abs(numeric)));
  }
  return worst;
}

double dot(const std::vector<double> &a, const std::vector<double> &b) {
  double s = 0;
  for (std::size_t i = 0; i < a.size(); ++i)
    s += a[i] * b[i];
  return s;
}

TEST(DenseKernels, RmsNormGradients) {
  std::mt19937_64 rng(1);
  std::int64_t T = 5, H = 6;
  auto x = random(T * H, rng), w = random(H, rng), g = random(T * H, rng);
  std::vector<double> y(T * H), r(T);
  auto loss = [&] {
    rmsNormForward<double>(x, w, T, H, 1e-5, y, r);
    return dot(y, g);
  };
  loss();
  std::vector<double> dx(T * H), dw(H, 0.0);
  rmsNormBackward<double>(x, w, r, g, T, H, dx, dw);
  EXPECT_LT(gradientError(x, loss, dx), 1e-6);
  EXPECT_LT(gradientError(w, loss, dw), 1e-6);
}

/// Which QK-norm an attention test uses.
enum class QkNorm { None, PerHead, Whole };

/// Random float64 attention parameters for `shape`, with q/k/v biases
/// when `bias` and QK-norm weights of the form `norm`.
struct AttentionData {
  std::vector<double> wq, wk, wv, wo, bq, bk, bv, qNorm, kNorm;

  AttentionData(const AttentionShape &shape, bool bias, QkNorm norm,
                std::mt19937_64 &rng, double scale = 0.5) {
    std::int64_t H = shape.hidden, qw = shape.qWidth(), kv = shape.kvWidth();
    wq = random(H * qw, rng, scale);
    wk = random(H * kv, rng, scale);
    wv = random(H * kv, rng, scale);
    wo = random(qw * H, rng, scale);
    if (bias) {
      bq = random(qw, rng, 0.5);
      bk = random(kv, rng, 0.5);
      bv = random(kv, rng, 0.5);
    }
    if (norm != QkNorm::None) {
      bool perHead = norm == QkNorm::PerHead;
      qNorm = random(perHead ? shape.headSize() : qw, rng, 0.5);
      kNorm = random(perHead ? shape.headSize() : kv, rng, 0.5);
      for (double &w : qNorm)
        w += 1.0;
      for (double &w : kNorm)
        w += 1.0;
    }
  }

  AttentionParams<double> params() const {
    return {wq, wk, wv, wo, bq, bk, bv, qNorm, kNorm};
  }
};

std::vector<float> toFloat(const std::vector<double> &v) {
  return std::vector<float>(v.begin(), v.end());
}

/// Checks every gradient of attentionBackward (input and each parameter
/// present) against central differences of attentionForward, that weight
/// gradients accumulate and that dInput is overwritten.
void checkAttentionGradients(const AttentionShape &shape, bool bias,
                             QkNorm norm, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::int64_t T = shape.tokens, H = shape.hidden;
  auto x = random(T * H, rng);
  AttentionData p(shape, bias, norm, rng);
  auto g = random(T * H, rng);
  std::vector<double> y(T * H);
  AttentionSaved<double> saved;
  auto loss = [&] {
    attentionForward<double>(x, p.params(), shape, y, saved);
    return dot(y, g);
  };
  loss();
  auto zeros = [](const std::vector<double> &v) {
    return std::vector<double>(v.size(), 0.0);
  };
  std::vector<double> dx(T * H, 42.0),
      dwq = zeros(p.wq), dwk = zeros(p.wk), dwv = zeros(p.wv),
      dwo = zeros(p.wo), dbq = zeros(p.bq), dbk = zeros(p.bk),
      dbv = zeros(p.bv), dqNorm = zeros(p.qNorm), dkNorm = zeros(p.kNorm);
  AttentionGrads<double> grads{dwq, dwk, dwv,    dwo,   dbq,
                               dbk, dbv, dqNorm, dkNorm};
  attentionBackward<double>(x, p.params(), shape, saved, g, dx, grads);

  // A second backward adds the same weight gradients again.
  std::vector<std::vector<double> *> all = {&dwq, &dwk, &dwv,    &dwo,   &dbq,
                                            &dbk, &dbv, &dqNorm, &dkNorm};
  std::vector<std::vector<double>> once;
  for (auto *v : all)
    once.push_back(*v);
  std::vector<double> dxAgain(T * H, -7.0);
  attentionBackward<double>(x, p.params(), shape, saved, g, dxAgain, grads);
  for (std::size_t i = 0; i < all.size(); ++i)
    for (std::size_t j = 0; j < once[i].size(); ++j) {
      EXPECT_NEAR((*all[i])[j], 2 * once[i][j], 1e-12);
      (*all[i])[j] = once[i][j];
    }
  for (std::int64_t i = 0; i < T * H; ++i)
    EXPECT_NEAR(dxAgain[i], dx[i], 1e-12);

  EXPECT_LT(gradientError(x, loss, dx, true), 1e-6);
  EXPECT_LT(gradientError(p.wq, loss, dwq, true), 1e-6);
  EXPECT_LT(gradientError(p.wk, loss, dwk, true), 1e-6);
  EXPECT_LT(gradientError(p.wv, loss, dwv, true), 1e-6);
  EXPECT_LT(gradientError(p.wo, loss, dwo, true), 1e-6);
  EXPECT_EQ(p.bq.empty(), !bias);
  EXPECT_LT(gradientError(p.bq, loss, dbq, true), 1e-6);
  EXPECT_LT(gradientError(p.bk, loss, dbk, true), 1e-6);
  EXPECT_LT(gradientError(p.bv, loss, dbv, true), 1e-6);
  EXPECT_EQ(p.qNorm.empty(), norm == QkNorm::None);
  EXPECT_LT(gradientError(p.qNorm, loss, dqNorm, true), 1e-6);
  EXPECT_LT(gradientError(p.kNorm, loss, dkNorm, true), 1e-6);
}

TEST(DenseKernels, AttentionGradients) {
  AttentionShape shape{8, 8, 4, 2, 4, 10000.0}; // 2 sequences of 4
  checkAttentionGradients(shape, false, QkNorm::None, 2);
}

TEST(DenseKernels, AttentionHeadSizeGradients) {
  // heads * head size (12) differs from hidden (8); one KV head.
  AttentionShape shape{6, 8, 2, 1, 3, 10000.0, /*headDim=*/6};
  EXPECT_EQ(shape.qWidth(), 12);
  EXPECT_EQ(shape.kvWidth(), 6);
  checkAttentionGradients(shape, false, QkNorm::None, 11);
}

TEST(DenseKernels, AttentionBiasGradients) {
  AttentionShape shape{6, 8, 2, 1, 3, 10000.0};
  checkAttentionGradients(shape, true, QkNorm::None, 12);
}

TEST(DenseKernels, AttentionPerHeadQkNormGradients) {
  // Qwen3-MoE: RMSNorm(head_dim) on each head of q and k.
  AttentionShape shape{6, 6, 4, 2, 3, 10000.0, /*headDim=*/4};
  checkAttentionGradients(shape, false, QkNorm::PerHead, 13);
}

TEST(DenseKernels, AttentionWholeQkNormGradients) {
  // OLMoE: RMSNorm over the whole q row and the whole k row.
  AttentionShape shape{6, 6, 4, 2, 3, 10000.0, /*headDim=*/4};
  checkAttentionGradients(shape, false, QkNorm::Whole, 14);
}

TEST(DenseKernels, AttentionAllFeaturesGradients) {
  for (QkNorm norm : {QkNorm::PerHead, QkNorm::Whole}) {
    SCOPED_TRACE(static_cast<int>(norm));
    AttentionShape shape{6,
                         8,
                         4,
                         2,
                         3,
                         10000.0,
                         /*headDim=*/6,
                         /*qkNormEpsilon=*/1e-5};
    checkAttentionGradients(shape, true, norm, 15);
  }
}

TEST(DenseKernels, AttentionExplicitHeadDimIsTheDefault) {
  // head_dim = hidden / heads computes exactly what head_dim 0 does.
  std::mt19937_64 rng(16);
  AttentionShape shape{8, 8, 4, 2, 4, 10000.0};
  auto x = random(8 * 8, rng);
  AttentionData p(shape, false, QkNorm::None, rng);
  std::vector<double> y0(8 * 8), y1(8 * 8);
  AttentionSaved<double> saved;
  attentionForward<double>(x, p.params(), shape, y0, saved);
  shape.headDim = 2;
  attentionForward<double>(x, p.params(), shape, y1, saved);
  EXPECT_EQ(y0, y1);
}

TEST(DenseKernels, GatedFfnGradients) {
  // The shared experts of a layer (dense.swiglu) and every expert use it.
  for (Activation activation :
       {Activation::Silu, Activation::Gelu, Activation::Relu}) {
    std::mt19937_64 rng(7 + static_cast<int>(activation));
    std::int64_t T = 5, H = 4, F = 6;
    auto x = random(T * H, rng), w1 = random(H * F, rng),
         w3 = random(H * F, rng), w2 = random(F * H, rng),
         g = random(T * H, rng);
    std::vector<double> y(T * H);
    GatedFfnSaved<double> saved;
    auto loss = [&] {
      gatedFfnForward<double>(x, w1.data(), w3.data(), w2.data(), T, H, F,
                              activation, y, saved);
      return dot(y, g);
    };
    loss();
    std::vector<double> dx(T * H), dw1(H * F), dw3(H * F), dw2(F * H);
    gatedFfnBackward<double>(x, w1.data(), w3.data(), w2.data(), saved, g, T, H,
                             F, activation, dx, dw1.data(), dw3.data(),
                             dw2.data(), /*accumulate=*/false);
    // ReLU's kink makes central differences exact only away from zero;
    // random inputs land there with probability zero.
    SCOPED_TRACE(static_cast<int>(activation));
    EXPECT_LT(gradientError(x, loss, dx), 1e-6);
    EXPECT_LT(gradientError(w1, loss, dw1), 1e-6);
    EXPECT_LT(gradientError(w3, loss, dw3), 1e-6);
    EXPECT_LT(gradientError(w2, loss, dw2), 1e-6);

    // accumulate adds to the weight gradients, and dx is still overwritten.
    std::vector<double> again = dw1, dxAgain(T * H, 42.0);
    gatedFfnBackward<double>(x, w1.data(), w3.data(), w2.data(), saved, g, T, H,
                             F, activation, dxAgain, again.data(), dw3.data(),
                             dw2.data(), /*accumulate=*/true);
    for (std::size_t i = 0; i < again.size(); ++i)
      EXPECT_NEAR(again[i], 2 * dw1[i], 1e-12);
    for (std::size_t i = 0; i < dx.size(); ++i)
      EXPECT_NEAR(dxAgain[i], dx[i], 1e-12);
  }
}

TEST(DenseKernels, AttentionIsCausalPerSequence) {
  // Changing the last token of the first sequence changes nothing of the
  // earlier tokens, nor of the second sequence.
  std::mt19937_64 rng(3);
  AttentionShape shape{8, 8, 2, 1, 4, 10000.0};
  std::int64_t T = shape.tokens, H = shape.hidden, kv = shape.kvWidth();
  auto x = random(T * H, rng), wq = random(H * H, rng),
       wk = random(H * kv, rng), wv = random(H * kv, rng),
       wo = random(H * H, rng);
  AttentionParams<double> params{wq, wk, wv, wo};
  std::vector<double> before(T * H), after(T * H);
  AttentionSaved<double> saved;
  attentionForward<double>(x, params, shape, before, saved);
  for (std::int64_t h = 0; h < H; ++h)
    x[3 * H + h] += 1.0;
  attentionForward<double>(x, params, shape, after, saved);
  for (std::int64_t t = 0; t < T; ++t)
    for (std::int64_t h = 0; h < H; ++h) {
      bool changed = before[t * H + h] != after[t * H + h];
      EXPECT_EQ(changed, t == 3) << "token " << t;
      if (changed != (t == 3))
        return;
    }
}

TEST(DenseKernels, CrossEntropyAndEmbeddingGradients) {
  std::mt19937_64 rng(4);
  std::int64_t T = 6, V = 7, H = 3;
  std::vector<std::int32_t> ids = {0, 3, 3, 6, 1, 2},
                            targets = {1, 2, 0, 6, 6, 3};
  auto table = random(V * H, rng), proj = random(H * V, rng);
  std::vector<double> h(T * H), logits(T * V), probs(T * V);
  auto loss = [&] {
    embeddingForward<double>(table, ids, V, H, h);
    gemmT<double>(false, false, T, V, H, 1, h.data(), proj.data(), 0,
                  logits.data());
    return crossEntropyForward<double>(logits, targets, T, V, probs);
  };
  double value = loss();
  // Uniform logits give log(V).
  std::vector<double> zeros(T * V, 0.0), p(T * V);
  EXPECT_NEAR(crossEntropyForward<double>(zeros, targets, T, V, p),
              std::log(double(V)), 1e-12);
  EXPECT_GT(value, 0.0);
  std::vector<double> dLogits(T * V), dh(T * H), dTable(V * H, 0.0);
  crossEntropyBackward<double>(probs, targets, T, V, 1.0, dLogits);
  gemmT<double>(false, true, T, H, V, 1, dLogits.data(), proj.data(), 0,
                dh.data());
  embeddingBackward<double>(ids, dh, V, H, dTable);
  EXPECT_LT(gradientError(table, loss, dTable), 1e-6);
}

/// Relative RMS difference of the float32 and float64 attention forward.
double attentionFloatError(const AttentionShape &shape, bool bias, QkNorm norm,
                           std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::int64_t T = shape.tokens, H = shape.hidden;
  auto xd = random(T * H, rng);
  AttentionData d(shape, bias, norm, rng, 0.3);
  std::vector<float> xf = toFloat(xd), wq = toFloat(d.wq), wk = toFloat(d.wk),
                     wv = toFloat(d.wv), wo = toFloat(d.wo), bq = toFloat(d.bq),
                     bk = toFloat(d.bk), bv = toFloat(d.bv),
                     qNorm = toFloat(d.qNorm), kNorm = toFloat(d.kNorm);
  AttentionParams<float> pf{wq, wk, wv, wo, bq, bk, bv, qNorm, kNorm};
  std::vector<double> yd(T * H);
  std::vector<float> yf(T * H);
  AttentionSaved<double> sd;
  AttentionSaved<float> sf;
  attentionForward<double>(xd, d.params(), shape, yd, sd);
  attentionForward<float>(xf, pf, shape, yf, sf);
  double diff = 0, norm2 = 0;
  for (std::size_t i = 0; i < yd.size(); ++i) {
    diff += (yf[i] - yd[i]) * (yf[i] - yd[i]);
    norm2 += yd[i] * yd[i];
  }
  return std::sqrt(diff / norm2);
}

TEST(DenseKernels, FloatMatchesDouble) {
  AttentionShape shape{16, 16, 4, 2, 8, 10000.0};
  EXPECT_LT(attentionFloatError(shape, false, QkNorm::None, 5), 1e-5);
}

TEST(DenseKernels, FloatMatchesDoubleAllFeatures) {
  // Head size 6 (q width 24 != hidden 16), biases and each QK-norm.
  AttentionShape shape{16, 16, 4, 2, 8, 10000.0, /*headDim=*/6};
  for (QkNorm norm : {QkNorm::PerHead, QkNorm::Whole}) {
    SCOPED_TRACE(static_cast<int>(norm));
    EXPECT_LT(attentionFloatError(shape, true, norm, 17), 1e-5);
  }
}

/// The message attentionForward fails with, or "" when it does not fail.
std::string attentionError(const AttentionShape &shape,
                           const AttentionParams<double> &params) {
  std::vector<double> x(shape.tokens * shape.hidden, 0.5),
      y(shape.tokens * shape.hidden);
  AttentionSaved<double> saved;
  try {
    attentionForward<double>(x, params, shape, y, saved);
  } catch (const RuntimeError &error) {
    return error.what();
  }
  return "";
}

TEST(DenseKernels, AttentionBadOperandsAreClearErrors) {
  std::mt19937_64 rng(18);
  // q width 12, kv width 6, head size 6.
  AttentionShape shape{4, 8, 2, 1, 2, 10000.0, /*headDim=*/6};
  AttentionData d(shape, true, QkNorm::PerHead, rng);
  EXPECT_EQ(attentionError(shape, d.params()), "");

  AttentionParams<double> p = d.params();
  p.bq = p.bq.first(11);
  EXPECT_EQ(attentionError(shape, p),
            "attention: bq has 11 elements, expected 12 (q width)");
  p = d.params();
  p.bv = p.bv.first(5);
  EXPECT_EQ(attentionError(shape, p),
            "attention: bv has 5 elements, expected 6 (kv width)");
  p = d.params();
  p.bk = {};
  EXPECT_EQ(attentionError(shape, p),
            "attention: bq, bk and bv have 12, 0 and 6 elements; the q/k/v "
            "biases are all given or all absent");
  p = d.params();
  p.wo = p.wo.first(64);
  EXPECT_EQ(attentionError(shape, p),
            "attention: wo has 64 elements, expected 96 (q width x hidden)");

  std::vector<double> wrong(7, 1.0);
  p = d.params();
  p.qNorm = wrong;
  EXPECT_EQ(attentionError(shape, p),
            "attention: qNorm has 7 elements, expected 6 (head size: per-head "
            "QK-norm) or 12 (q width: whole-projection QK-norm)");
  p = d.params();
  p.kNorm = wrong; // one KV head: per head and whole are the same
  EXPECT_EQ(attentionError(shape, p),
            "attention: kNorm has 7 elements, expected 6 (head size = kv "
            "width)");
  p = d.params();
  p.kNorm = {};
  EXPECT_EQ(attentionError(shape, p),
            "attention: qNorm has 6 elements and kNorm 0; the QK-norm needs "
            "both weights or neither");

  AttentionShape odd = shape;
  odd.headDim = 5;
  AttentionData o(odd, false, QkNorm::None, rng);
  EXPECT_EQ(attentionError(odd, o.params()),
            "attention: head size 5 is odd; the rotary embedding rotates the "
            "two halves of each head, so it must be even");

  // Backward names a gradient of the wrong size.
  std::vector<double> x(4 * 8, 0.5), y(4 * 8), dx(4 * 8);
  AttentionSaved<double> saved;
  attentionForward<double>(x, d.params(), shape, y, saved);
  std::vector<double> dwq(d.wq.size()), dwk(d.wk.size()), dwv(d.wv.size()),
      dwo(d.wo.size()), dbq(12), dbk(6), dbv(6), dqNorm(6), dkNorm(6);
  AttentionGrads<double> grads{dwq, dwk, dwv, dwo, dbq, dbk, dbv, dqNorm, {}};
  try {
    attentionBackward<double>(x, d.params(), shape, saved, y, dx, grads);
    FAIL() << "no error";
  } catch (const RuntimeError &error) {
    EXPECT_STREQ(error.what(), "attention: the gradient of kNorm has 0 "
                               "elements, expected 6 (as the parameter)");
  }
}

TEST(DenseKernels, BadIdsAreClearErrors) {
  std::vector<float> table(4 * 2), out(2 * 2);
  std::vector<std::int32_t> ids = {1, 4};
  try {
    embeddingForward<float>(table, ids, 4, 2, out);
    FAIL() << "no error";
  } catch (const RuntimeError &error) {
    EXPECT_STREQ(error.what(),
                 "embedding: token 1 has id 4, outside the vocabulary [0, 4)");
  }
}

} // namespace

// Qwen-MoE's shared-expert gate: y[t] *= sigmoid(x[t] . g).
TEST(DenseKernels, SigmoidGateGradients) {
  std::mt19937_64 rng(11);
  std::int64_t T = 5, H = 6;
  auto x = random(T * H, rng), g = random(H, rng), ungated = random(T * H, rng),
       dy = random(T * H, rng);
  std::vector<double> y(T * H), values(T);
  auto loss = [&] {
    y = ungated;
    sigmoidGateForward<double>(x, g, T, H, y, values);
    return dot(y, dy);
  };
  loss();
  std::vector<double> dUngated(T * H), dx(T * H, 0.0), dg(H, 0.0);
  sigmoidGateBackward<double>(x, g, ungated, values, dy, T, H, dUngated, dx,
                              dg);
  EXPECT_LT(gradientError(x, loss, dx), 1e-6);
  EXPECT_LT(gradientError(g, loss, dg), 1e-6);
  EXPECT_LT(gradientError(ungated, loss, dUngated), 1e-6);
}
