//===- SwiGluKernels.cpp - gated FFN forward and backward ----------------===//

#include "VectorMath.h"
#include "laer/runtime/cpu/DenseKernels.h"
#include "laer/runtime/cpu/Kernels.h"

#include <cmath>
#include <type_traits>

using namespace laer::rt;
using namespace laer::rt::cpu;

template <typename T> T cpu::activate(Activation activation, T v) {
  switch (activation) {
  case Activation::Silu:
    return v / (T(1) + std::exp(-v));
  case Activation::Gelu:
    return T(0.5) * v * (T(1) + std::erf(v * T(0.70710678118654752)));
  case Activation::Relu:
    return v > T(0) ? v : T(0);
  }
  return v;
}

template <typename T> T cpu::activateDerivative(Activation activation, T v) {
  switch (activation) {
  case Activation::Silu: {
    T sigma = T(1) / (T(1) + std::exp(-v));
    return sigma * (T(1) + v * (T(1) - sigma));
  }
  case Activation::Gelu:
    return T(0.5) * (T(1) + std::erf(v * T(0.70710678118654752))) +
           v * T(0.39894228040143268) * std::exp(T(-0.5) * v * v);
  case Activation::Relu:
    return v > T(0) ? T(1) : T(0);
  }
  return T(1);
}

template float cpu::activate<float>(Activation, float);
template double cpu::activate<double>(Activation, double);
template float cpu::activateDerivative<float>(Activation, float);
template double cpu::activateDerivative<double>(Activation, double);

template <typename T>
void cpu::gatedFfnForward(std::span<const T> x, const T *w1, const T *w3,
                          const T *w2, std::int64_t rows, std::int64_t hidden,
                          std::int64_t ffn, Activation activation,
                          std::span<T> y, GatedFfnSaved<T> &saved,
                          GatedFfnScratch<T> *scratch) {
  auto inner = static_cast<std::size_t>(rows * ffn);
  saved.gateProj.resize(inner);
  saved.upProj.resize(inner);
  gemmT<T>(false, false, rows, ffn, hidden, 1, x.data(), w1, 0,
           saved.gateProj.data());
  gemmT<T>(false, false, rows, ffn, hidden, 1, x.data(), w3, 0,
           saved.upProj.data());
  GatedFfnScratch<T> local;
  std::vector<T> &hiddenAct = (scratch ? *scratch : local).hiddenAct;
  hiddenAct.resize(inner);
  if constexpr (std::is_same_v<T, float>) {
    if (activation == Activation::Silu) {
      detail::siluTimes(saved.gateProj.data(), saved.upProj.data(),
                        hiddenAct.data(), inner);
      gemmT<T>(false, false, rows, hidden, ffn, 1, hiddenAct.data(), w2, 0,
               y.data());
      return;
    }
  }
  for (std::size_t i = 0; i < inner; ++i)
    hiddenAct[i] = activate(activation, saved.gateProj[i]) * saved.upProj[i];
  gemmT<T>(false, false, rows, hidden, ffn, 1, hiddenAct.data(), w2, 0,
           y.data());
}

template <typename T>
void cpu::gatedFfnBackward(std::span<const T> x, const T *w1, const T *w3,
                           const T *w2, const GatedFfnSaved<T> &saved,
                           std::span<const T> dy, std::int64_t rows,
                           std::int64_t hidden, std::int64_t ffn,
                           Activation activation, std::span<T> dx, T *dw1,
                           T *dw3, T *dw2, bool accumulate,
                           GatedFfnScratch<T> *scratch) {
  T beta = accumulate ? T(1) : T(0);
  auto inner = static_cast<std::size_t>(rows * ffn);
  GatedFfnScratch<T> local;
  GatedFfnScratch<T> &s = scratch ? *scratch : local;
  // Every element of these is written before it is read.
  for (std::vector<T> *buffer : {&s.act, &s.actDerivative, &s.hiddenAct,
                                 &s.dHidden, &s.dGateProj, &s.dUpProj})
    buffer->resize(inner);
  std::vector<T> &act = s.act, &actDerivative = s.actDerivative,
                 &hiddenAct = s.hiddenAct, &dHidden = s.dHidden,
                 &dGateProj = s.dGateProj, &dUpProj = s.dUpProj;
  // act(g) and act'(g) once per element; for SiLU both from one exp(-g),
  // as activate and activateDerivative compute them (in SIMD lanes for
  // float).
  const T *gate = saved.gateProj.data();
  if (activation == Activation::Silu) {
    if constexpr (std::is_same_v<T, float>) {
      detail::siluWithDerivative(gate, act.data(), actDerivative.data(), inner);
    } else {
      for (std::size_t i = 0; i < inner; ++i) {
        T g = gate[i], e = std::exp(-g);
        T sigma = T(1) / (T(1) + e);
        act[i] = g / (T(1) + e);
        actDerivative[i] = sigma * (T(1) + g * (T(1) - sigma));
      }
    }
  } else {
    for (std::size_t i = 0; i < inner; ++i) {
      act[i] = activate(activation, gate[i]);
      actDerivative[i] = activateDerivative(activation, gate[i]);
    }
  }
  for (std::size_t i = 0; i < inner; ++i)
    hiddenAct[i] = act[i] * saved.upProj[i];
  // dw2 = h^T dy ; dh = dy w2^T.
  gemmT<T>(true, false, ffn, hidden, rows, 1, hiddenAct.data(), dy.data(), beta,
           dw2);
  gemmT<T>(false, true, rows, ffn, hidden, 1, dy.data(), w2, 0, dHidden.data());
  for (std::size_t i = 0; i < inner; ++i) {
    dUpProj[i] = dHidden[i] * act[i];
    dGateProj[i] = dHidden[i] * saved.upProj[i] * actDerivative[i];
  }
  // dw1 = x^T dg ; dw3 = x^T du ; dx = dg w1^T + du w3^T.
  gemmT<T>(true, false, hidden, ffn, rows, 1, x.data(), dGateProj.data(), beta,
           dw1);
  gemmT<T>(true, false, hidden, ffn, rows, 1, x.data(), dUpProj.data(), beta,
           dw3);
  gemmT<T>(false, true, rows, hidden, ffn, 1, dGateProj.data(), w1, 0,
           dx.data());
  gemmT<T>(false, true, rows, hidden, ffn, 1, dUpProj.data(), w3, 1, dx.data());
}

#define LAER_INSTANTIATE_GATED_FFN(T)                                          \
  template void cpu::gatedFfnForward<T>(                                       \
      std::span<const T>, const T *, const T *, const T *, std::int64_t,       \
      std::int64_t, std::int64_t, Activation, std::span<T>,                    \
      GatedFfnSaved<T> &, GatedFfnScratch<T> *);                               \
  template void cpu::gatedFfnBackward<T>(                                      \
      std::span<const T>, const T *, const T *, const T *,                     \
      const GatedFfnSaved<T> &, std::span<const T>, std::int64_t,              \
      std::int64_t, std::int64_t, Activation, std::span<T>, T *, T *, T *,     \
      bool, GatedFfnScratch<T> *);
LAER_INSTANTIATE_GATED_FFN(float)
LAER_INSTANTIATE_GATED_FFN(double)
#undef LAER_INSTANTIATE_GATED_FFN

template <typename T>
void cpu::sigmoidGateForward(std::span<const T> x, std::span<const T> gate,
                             std::int64_t rows, std::int64_t hidden,
                             std::span<T> y, std::span<T> gateValues) {
  for (std::int64_t t = 0; t < rows; ++t) {
    T z = 0;
    for (std::int64_t h = 0; h < hidden; ++h)
      z += x[t * hidden + h] * gate[h];
    T g = T(1) / (T(1) + std::exp(-z));
    gateValues[t] = g;
    for (std::int64_t h = 0; h < hidden; ++h)
      y[t * hidden + h] *= g;
  }
}

template <typename T>
void cpu::sigmoidGateBackward(std::span<const T> x, std::span<const T> gate,
                              std::span<const T> ungated,
                              std::span<const T> gateValues,
                              std::span<const T> dOutput, std::int64_t rows,
                              std::int64_t hidden, std::span<T> dUngated,
                              std::span<T> dx, std::span<T> dGate) {
  for (std::int64_t t = 0; t < rows; ++t) {
    T g = gateValues[t], dg = 0;
    for (std::int64_t h = 0; h < hidden; ++h) {
      dg += dOutput[t * hidden + h] * ungated[t * hidden + h];
      dUngated[t * hidden + h] = g * dOutput[t * hidden + h];
    }
    // d sigmoid(z) / dz = g (1 - g).
    T dz = dg * g * (T(1) - g);
    for (std::int64_t h = 0; h < hidden; ++h) {
      dx[t * hidden + h] += dz * gate[h];
      dGate[h] += dz * x[t * hidden + h];
    }
  }
}

#define LAER_INSTANTIATE_SIGMOID_GATE(T)                                       \
  template void cpu::sigmoidGateForward<T>(                                    \
      std::span<const T>, std::span<const T>, std::int64_t, std::int64_t,      \
      std::span<T>, std::span<T>);                                             \
  template void cpu::sigmoidGateBackward<T>(                                   \
      std::span<const T>, std::span<const T>, std::span<const T>,              \
      std::span<const T>, std::span<const T>, std::int64_t, std::int64_t,      \
      std::span<T>, std::span<T>, std::span<T>);
LAER_INSTANTIATE_SIGMOID_GATE(float)
LAER_INSTANTIATE_SIGMOID_GATE(double)
#undef LAER_INSTANTIATE_SIGMOID_GATE

void cpu::swigluForward(std::span<const float> x,
                        std::span<const float> weights, std::int64_t rows,
                        std::int64_t hidden, std::int64_t ffn,
                        Activation activation, std::span<float> y,
                        SwiGluSaved &saved, SwiGluScratch *scratch) {
  const float *w1 = weights.data();
  const float *w3 = w1 + hidden * ffn;
  const float *w2 = w3 + hidden * ffn;
  gatedFfnForward<float>(x, w1, w3, w2, rows, hidden, ffn, activation, y, saved,
                         scratch);
}

void cpu::swigluBackward(std::span<const float> x,
                         std::span<const float> weights,
                         const SwiGluSaved &saved, std::span<const float> dy,
                         std::int64_t rows, std::int64_t hidden,
                         std::int64_t ffn, Activation activation,
                         std::span<float> dx, std::span<float> dWeights,
                         bool accumulate, SwiGluScratch *scratch) {
  const float *w1 = weights.data();
  const float *w3 = w1 + hidden * ffn;
  const float *w2 = w3 + hidden * ffn;
  float *dw1 = dWeights.data();
  float *dw3 = dw1 + hidden * ffn;
  float *dw2 = dw3 + hidden * ffn;
  gatedFfnBackward<float>(x, w1, w3, w2, saved, dy, rows, hidden, ffn,
                          activation, dx, dw1, dw3, dw2, accumulate, scratch);
}
