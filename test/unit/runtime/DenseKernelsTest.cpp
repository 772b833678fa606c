//===- DenseKernelsTest.cpp - dense kernels against finite differences ----===//
//
// Each backward is checked against central differences of its own forward
// in float64 (a check that does not share the hand-derived gradient
// formulas), and each float32 forward against the float64 one.
//
//===----------------------------------------------------------------------===//

#include "laer/runtime/Error.h"
#include "laer/runtime/cpu/DenseKernels.h"
#include "laer/runtime/cpu/Kernels.h"

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <random>

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
double gradientError(std::vector<double> &x,
                     const std::function<double()> &loss,
                     const std::vector<double> &analytic) {
  double worst = 0, h = 1e-6;
  for (std::size_t i = 0; i < x.size(); ++i) {
    double saved = x[i];
    x[i] = saved + h;
    double up = loss();
    x[i] = saved - h;
    double down = loss();
    x[i] = saved;
    double numeric = (up - down) / (2 * h);
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

TEST(DenseKernels, AttentionGradients) {
  std::mt19937_64 rng(2);
  AttentionShape shape{8, 8, 4, 2, 4, 10000.0}; // 2 sequences of 4
  std::int64_t T = shape.tokens, H = shape.hidden, kv = shape.kvWidth();
  auto x = random(T * H, rng), wq = random(H * H, rng, 0.5),
       wk = random(H * kv, rng, 0.5), wv = random(H * kv, rng, 0.5),
       wo = random(H * H, rng, 0.5), g = random(T * H, rng);
  std::vector<double> y(T * H);
  AttentionSaved<double> saved;
  auto loss = [&] {
    attentionForward<double>(x, wq, wk, wv, wo, shape, y, saved);
    return dot(y, g);
  };
  loss();
  std::vector<double> dx(T * H), dwq(H * H, 0.0), dwk(H * kv, 0.0),
      dwv(H * kv, 0.0), dwo(H * H, 0.0);
  attentionBackward<double>(x, wq, wk, wv, wo, shape, saved, g, dx, dwq, dwk,
                            dwv, dwo);
  EXPECT_LT(gradientError(x, loss, dx), 1e-6);
  EXPECT_LT(gradientError(wq, loss, dwq), 1e-6);
  EXPECT_LT(gradientError(wk, loss, dwk), 1e-6);
  EXPECT_LT(gradientError(wv, loss, dwv), 1e-6);
  EXPECT_LT(gradientError(wo, loss, dwo), 1e-6);
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
    gatedFfnBackward<double>(x, w1.data(), w3.data(), w2.data(), saved, g, T,
                             H, F, activation, dx, dw1.data(), dw3.data(),
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
    gatedFfnBackward<double>(x, w1.data(), w3.data(), w2.data(), saved, g, T,
                             H, F, activation, dxAgain, again.data(),
                             dw3.data(), dw2.data(), /*accumulate=*/true);
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
  std::vector<double> before(T * H), after(T * H);
  AttentionSaved<double> saved;
  attentionForward<double>(x, wq, wk, wv, wo, shape, before, saved);
  for (std::int64_t h = 0; h < H; ++h)
    x[3 * H + h] += 1.0;
  attentionForward<double>(x, wq, wk, wv, wo, shape, after, saved);
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
  std::vector<std::int32_t> ids = {0, 3, 3, 6, 1, 2}, targets = {1, 2, 0, 6,
                                                                 6, 3};
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

TEST(DenseKernels, FloatMatchesDouble) {
  std::mt19937_64 rng(5);
  AttentionShape shape{16, 16, 4, 2, 8, 10000.0};
  std::int64_t T = shape.tokens, H = shape.hidden, kv = shape.kvWidth();
  auto xd = random(T * H, rng), wqd = random(H * H, rng, 0.3),
       wkd = random(H * kv, rng, 0.3), wvd = random(H * kv, rng, 0.3),
       wod = random(H * H, rng, 0.3);
  auto toFloat = [](const std::vector<double> &v) {
    return std::vector<float>(v.begin(), v.end());
  };
  std::vector<double> yd(T * H);
  std::vector<float> yf(T * H);
  AttentionSaved<double> sd;
  AttentionSaved<float> sf;
  attentionForward<double>(xd, wqd, wkd, wvd, wod, shape, yd, sd);
  attentionForward<float>(toFloat(xd), toFloat(wqd), toFloat(wkd),
                          toFloat(wvd), toFloat(wod), shape, yf, sf);
  double diff = 0, norm = 0;
  for (std::size_t i = 0; i < yd.size(); ++i) {
    diff += (yf[i] - yd[i]) * (yf[i] - yd[i]);
    norm += yd[i] * yd[i];
  }
  EXPECT_LT(std::sqrt(diff / norm), 1e-5);
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
