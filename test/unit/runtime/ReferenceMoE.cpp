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

namespace {

/// One token's routing: logits, scores, chosen experts and weights.
struct TokenRoute {
  std::vector<double> logits, s;
  std::vector<int> chosen;
  std::vector<double> w;
  double selected = 0, lse = 0;
};

TokenRoute routeToken(const rt::MoELayerConfig &config, const float *x,
                      std::span<const float> gate,
                      std::span<const float> bias) {
  const int H = static_cast<int>(config.shape.hidden);
  const int E = config.numExperts, K = config.topK;
  const rt::RoutingConfig &r = config.routing;
  TokenRoute route;
  route.logits.assign(E, 0.0);
  route.s.resize(E);
  for (int e = 0; e < E; ++e)
    for (int h = 0; h < H; ++h)
      route.logits[e] += double(x[h]) * gate[h * E + e];
  double m = *std::max_element(route.logits.begin(), route.logits.end());
  double z = 0;
  for (int e = 0; e < E; ++e)
    z += std::exp(route.logits[e] - m);
  route.lse = m + std::log(z);
  for (int e = 0; e < E; ++e)
    route.s[e] = r.score == rt::ScoreFunction::Softmax
                     ? std::exp(route.logits[e] - route.lse)
                     : 1.0 / (1.0 + std::exp(-route.logits[e]));
  // Candidates: the experts of the best groups, ranked by score + bias.
  std::vector<double> choice(route.s);
  if (r.selectionBias)
    for (int e = 0; e < E; ++e)
      choice[e] = float(float(route.s[e]) + bias[e]);
  std::vector<bool> candidate(E, true);
  if (r.groups > 1) {
    int size = E / r.groups;
    std::vector<double> groupScore(r.groups);
    for (int g = 0; g < r.groups; ++g) {
      std::vector<double> members(choice.begin() + g * size,
                                  choice.begin() + (g + 1) * size);
      std::sort(members.rbegin(), members.rend());
      groupScore[g] = r.groupScore == rt::GroupScore::Max
                          ? members[0]
                          : members[0] + members[1];
    }
    std::vector<int> groups(r.groups);
    std::iota(groups.begin(), groups.end(), 0);
    std::stable_sort(groups.begin(), groups.end(), [&](int a, int b) {
      return groupScore[a] > groupScore[b];
    });
    for (int j = r.topGroups; j < r.groups; ++j)
      for (int i = 0; i < size; ++i)
        candidate[groups[j] * size + i] = false;
  }
  std::vector<int> order;
  for (int e = 0; e < E; ++e)
    if (candidate[e])
      order.push_back(e);
  std::stable_sort(order.begin(), order.end(),
                   [&](int a, int b) { return choice[a] > choice[b]; });
  route.chosen.assign(order.begin(), order.begin() + K);
  for (int e : route.chosen)
    route.selected += route.s[e];
  for (int e : route.chosen)
    route.w.push_back(
        (r.renormalize ? route.s[e] / route.selected : route.s[e]) * r.scale);
  return route;
}

/// p_e: softmax scores, or sigmoid scores over their sum.
std::vector<double> probabilities(const rt::MoELayerConfig &config,
                                  const std::vector<double> &s) {
  double sum = config.routing.score == rt::ScoreFunction::Softmax
                   ? 1.0
                   : std::accumulate(s.begin(), s.end(), 0.0);
  std::vector<double> p(s);
  for (double &v : p)
    v /= sum;
  return p;
}

} // namespace

ReferenceResult laer::test::referenceMoE(const rt::MoELayerConfig &config,
                                         std::span<const float> input,
                                         std::span<const float> gate,
                                         std::span<const float> experts,
                                         std::span<const float> dOutput,
                                         const ReferenceRouterInputs &router) {
  const int H = static_cast<int>(config.shape.hidden);
  const int F = static_cast<int>(config.shape.ffn);
  const int E = config.numExperts, K = config.topK;
  const int T = static_cast<int>(input.size()) / H;
  const int R = router.ranks, perRank = T / R;
  const std::size_t P = static_cast<std::size_t>(3) * H * F;
  const rt::RoutingConfig &routing = config.routing;
  ReferenceResult r;
  r.output.assign(static_cast<std::size_t>(T) * H, 0.0);
  r.dInput.assign(static_cast<std::size_t>(T) * H, 0.0);
  r.dGate.assign(static_cast<std::size_t>(H) * E, 0.0);
  r.dExperts.assign(P * E, 0.0);
  r.expertCounts.assign(E, 0);

  auto W1 = [&](int e, int h, int f) {
    return double(experts[e * P + h * F + f]);
  };
  auto W3 = [&](int e, int h, int f) {
    return double(experts[e * P + H * F + h * F + f]);
  };
  auto W2 = [&](int e, int f, int h) {
    return double(experts[e * P + 2 * H * F + f * H + h]);
  };

  // Routing of every token, and the loads of each rank and of all.
  std::vector<TokenRoute> routes;
  std::vector<std::vector<double>> rankLoad(R, std::vector<double>(E, 0));
  for (int t = 0; t < T; ++t) {
    routes.push_back(
        routeToken(config, input.data() + t * H, gate, router.bias));
    for (int e : routes.back().chosen) {
      ++r.expertCounts[e];
      rankLoad[t / perRank][e] += 1;
    }
  }
  // f_e per rank: the share of its tokens (or of all tokens) sent to e.
  std::vector<std::vector<double>> fraction(R, std::vector<double>(E));
  for (int rank = 0; rank < R; ++rank)
    for (int e = 0; e < E; ++e)
      fraction[rank][e] = config.losses.aux == rt::AuxLoss::GlobalBatch
                              ? double(r.expertCounts[e]) / T
                              : rankLoad[rank][e] / perRank;
  r.aux.assign(R, 0.0);
  r.z.assign(R, 0.0);
  for (int t = 0; t < T; ++t) {
    int rank = t / perRank;
    std::vector<double> p = probabilities(config, routes[t].s);
    for (int e = 0; e < E; ++e)
      r.aux[rank] += double(E) / K * fraction[rank][e] * p[e] / perRank;
    r.z[rank] += routes[t].lse * routes[t].lse / perRank;
  }

  for (int t = 0; t < T; ++t) {
    const float *x = input.data() + t * H;
    const float *g = dOutput.data() + t * H;
    const TokenRoute &route = routes[t];
    const std::vector<double> &s = route.s;
    std::vector<double> dw(K);

    // Experts, forward and backward per pair.
    for (int j = 0; j < K; ++j) {
      int e = route.chosen[j];
      double w = route.w[j];
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
        r.output[t * H + h] += w * y[h];
        dw[j] += g[h] * y[h];
      }
      // dy = w * g.
      double *dE = r.dExperts.data() + e * P;
      std::vector<double> da(F, 0);
      for (int f = 0; f < F; ++f)
        for (int h = 0; h < H; ++h) {
          double dy = w * g[h];
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

    // Router backward: through the weights, the aux loss's p and the
    // z-loss's logsumexp.
    std::vector<double> ds(E, 0.0), dl(E);
    for (int j = 0; j < K; ++j) {
      // w_j = c s_j / S (renormalised) or c s_j.
      int e = route.chosen[j];
      ds[e] +=
          routing.scale * dw[j] / (routing.renormalize ? route.selected : 1.0);
      if (routing.renormalize)
        for (int i = 0; i < K; ++i)
          ds[route.chosen[i]] -=
              routing.scale * dw[j] * s[e] / (route.selected * route.selected);
    }
    int rank = t / perRank;
    if (config.losses.aux != rt::AuxLoss::None && router.dAux != 0) {
      std::vector<double> dp(E);
      for (int e = 0; e < E; ++e)
        dp[e] = router.dAux * double(E) / K * fraction[rank][e] / perRank;
      if (routing.score == rt::ScoreFunction::Softmax) {
        for (int e = 0; e < E; ++e)
          ds[e] += dp[e];
      } else {
        // p_e = s_e / S.
        double S = std::accumulate(s.begin(), s.end(), 0.0);
        for (int e = 0; e < E; ++e)
          for (int i = 0; i < E; ++i)
            ds[i] += dp[e] * ((i == e ? 1.0 : 0.0) / S - s[e] / (S * S));
      }
    }
    if (routing.score == rt::ScoreFunction::Softmax) {
      double dot = 0;
      for (int e = 0; e < E; ++e)
        dot += ds[e] * s[e];
      for (int e = 0; e < E; ++e)
        dl[e] = s[e] * (ds[e] - dot);
    } else {
      for (int e = 0; e < E; ++e)
        dl[e] = ds[e] * s[e] * (1 - s[e]);
    }
    if (config.losses.z && router.dZ != 0)
      for (int e = 0; e < E; ++e)
        dl[e] += router.dZ * 2 * route.lse *
                 std::exp(route.logits[e] - route.lse) / perRank;
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
