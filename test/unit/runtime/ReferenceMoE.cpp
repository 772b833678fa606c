//===- ReferenceMoE.cpp - single-device MoE layer in float64 --------------===//

#include "ReferenceMoE.h"

#include <algorithm>
#include <cmath>
#include <numeric>

using namespace laer;
using namespace laer::test;

namespace {

double act(rt::Activation activation, double v) {
  switch (activation) {
  case rt::Activation::Silu:
    return v / (1.0 + std::exp(-v));
  case rt::Activation::Gelu:
    return 0.5 * v * (1.0 + std::erf(v / std::sqrt(2.0)));
  case rt::Activation::Relu:
    return v > 0 ? v : 0;
  }
  return v;
}

double actDerivative(rt::Activation activation, double v) {
  switch (activation) {
  case rt::Activation::Silu: {
    double s = 1.0 / (1.0 + std::exp(-v));
    return s + v * s * (1.0 - s);
  }
  case rt::Activation::Gelu:
    return 0.5 * (1.0 + std::erf(v / std::sqrt(2.0))) +
           v * std::exp(-0.5 * v * v) / std::sqrt(2.0 * M_PI);
  case rt::Activation::Relu:
    return v > 0 ? 1 : 0;
  }
  return 1;
}

} // namespace

ReferenceResult laer::test::referenceMoE(const rt::MoELayerConfig &config,
                                         std::span<const float> input,
                                         std::span<const float> gate,
                                         std::span<const float> experts,
                                         std::span<const float> dOutput) {
  const int H = static_cast<int>(config.shape.hidden);
  const int F = static_cast<int>(config.shape.ffn);
  const int E = config.numExperts, K = config.topK;
  const int T = static_cast<int>(input.size()) / H;
  const std::size_t P = static_cast<std::size_t>(3) * H * F;
  ReferenceResult r;
  r.output.assign(static_cast<std::size_t>(T) * H, 0.0);
  r.dInput.assign(static_cast<std::size_t>(T) * H, 0.0);
  r.dGate.assign(static_cast<std::size_t>(H) * E, 0.0);
  r.dExperts.assign(P * E, 0.0);
  r.expertCounts.assign(E, 0);

  auto W1 = [&](int e, int h, int f) { return double(experts[e * P + h * F + f]); };
  auto W3 = [&](int e, int h, int f) {
    return double(experts[e * P + H * F + h * F + f]);
  };
  auto W2 = [&](int e, int f, int h) {
    return double(experts[e * P + 2 * H * F + f * H + h]);
  };

  for (int t = 0; t < T; ++t) {
    const float *x = input.data() + t * H;
    const float *g = dOutput.data() + t * H;
    // Router.
    std::vector<double> logits(E, 0.0), s(E);
    for (int e = 0; e < E; ++e)
      for (int h = 0; h < H; ++h)
        logits[e] += double(x[h]) * gate[h * E + e];
    if (config.score == rt::ScoreFunction::Softmax) {
      double m = *std::max_element(logits.begin(), logits.end()), z = 0;
      for (int e = 0; e < E; ++e)
        z += s[e] = std::exp(logits[e] - m);
      for (double &v : s)
        v /= z;
    } else {
      for (int e = 0; e < E; ++e)
        s[e] = 1.0 / (1.0 + std::exp(-logits[e]));
    }
    std::vector<int> order(E);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(),
                     [&](int a, int b) { return s[a] > s[b]; });
    double selected = 0;
    for (int j = 0; j < K; ++j)
      selected += s[order[j]];

    std::vector<double> w(K), dw(K);
    for (int j = 0; j < K; ++j)
      w[j] = config.renormalize ? s[order[j]] / selected : s[order[j]];

    // Experts, forward and backward per pair.
    for (int j = 0; j < K; ++j) {
      int e = order[j];
      ++r.expertCounts[e];
      std::vector<double> h1(F, 0), h3(F, 0), a(F), y(H, 0);
      for (int f = 0; f < F; ++f)
        for (int h = 0; h < H; ++h) {
          h1[f] += x[h] * W1(e, h, f);
          h3[f] += x[h] * W3(e, h, f);
        }
      for (int f = 0; f < F; ++f)
        a[f] = act(config.activation, h1[f]) * h3[f];
      for (int h = 0; h < H; ++h)
        for (int f = 0; f < F; ++f)
          y[h] += a[f] * W2(e, f, h);
      dw[j] = 0;
      for (int h = 0; h < H; ++h) {
        r.output[t * H + h] += w[j] * y[h];
        dw[j] += g[h] * y[h];
      }
      // dy = w * g.
      double *dE = r.dExperts.data() + e * P;
      std::vector<double> da(F, 0);
      for (int f = 0; f < F; ++f)
        for (int h = 0; h < H; ++h) {
          double dy = w[j] * g[h];
          dE[2 * H * F + f * H + h] += a[f] * dy;
          da[f] += W2(e, f, h) * dy;
        }
      for (int f = 0; f < F; ++f) {
        double dh3 = da[f] * act(config.activation, h1[f]);
        double dh1 = da[f] * h3[f] * actDerivative(config.activation, h1[f]);
        for (int h = 0; h < H; ++h) {
          dE[h * F + f] += x[h] * dh1;
          dE[H * F + h * F + f] += x[h] * dh3;
          r.dInput[t * H + h] += W1(e, h, f) * dh1 + W3(e, h, f) * dh3;
        }
      }
    }

    // Router backward.
    std::vector<double> ds(E, 0.0), dl(E);
    if (config.renormalize) {
      double dot = 0;
      for (int j = 0; j < K; ++j)
        dot += dw[j] * w[j];
      for (int j = 0; j < K; ++j)
        ds[order[j]] = (dw[j] - dot) / selected;
    } else {
      for (int j = 0; j < K; ++j)
        ds[order[j]] = dw[j];
    }
    if (config.score == rt::ScoreFunction::Softmax) {
      double dot = 0;
      for (int e = 0; e < E; ++e)
        dot += ds[e] * s[e];
      for (int e = 0; e < E; ++e)
        dl[e] = s[e] * (ds[e] - dot);
    } else {
      for (int e = 0; e < E; ++e)
        dl[e] = ds[e] * s[e] * (1 - s[e]);
    }
    for (int h = 0; h < H; ++h)
      for (int e = 0; e < E; ++e) {
        r.dGate[h * E + e] += x[h] * dl[e];
        r.dInput[t * H + h] += gate[h * E + e] * dl[e];
      }
  }
  return r;
}

double laer::test::relativeError(std::span<const float> actual,
                                 std::span<const double> expected) {
  if (actual.size() != expected.size())
    return INFINITY;
  double diff = 0, norm = 0;
  for (std::size_t i = 0; i < actual.size(); ++i) {
    double d = actual[i] - expected[i];
    diff += d * d;
    norm += expected[i] * expected[i];
  }
  return std::sqrt(diff) / std::max(std::sqrt(norm), 1e-30);
}
