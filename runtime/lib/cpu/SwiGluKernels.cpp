//===- SwiGluKernels.cpp - gated expert FFN forward and backward ----------===//

#include "laer/runtime/cpu/Kernels.h"

#include <cmath>

using namespace laer::rt;
using namespace laer::rt::cpu;

namespace {

float activate(Activation activation, float v) {
  switch (activation) {
  case Activation::Silu:
    return v / (1.0f + std::exp(-v));
  case Activation::Gelu:
    return 0.5f * v * (1.0f + std::erf(v * 0.70710678118654752f));
  case Activation::Relu:
    return v > 0.0f ? v : 0.0f;
  }
  return v;
}

float activateDerivative(Activation activation, float v) {
  switch (activation) {
  case Activation::Silu: {
    float sigma = 1.0f / (1.0f + std::exp(-v));
    return sigma * (1.0f + v * (1.0f - sigma));
  }
  case Activation::Gelu:
    return 0.5f * (1.0f + std::erf(v * 0.70710678118654752f)) +
           v * 0.39894228040143268f * std::exp(-0.5f * v * v);
  case Activation::Relu:
    return v > 0.0f ? 1.0f : 0.0f;
  }
  return 1.0f;
}

} // namespace

void cpu::swigluForward(std::span<const float> x,
                        std::span<const float> weights, std::int64_t rows,
                        std::int64_t hidden, std::int64_t ffn,
                        Activation activation, std::span<float> y,
                        SwiGluSaved &saved) {
  const float *w1 = weights.data();
  const float *w3 = w1 + hidden * ffn;
  const float *w2 = w3 + hidden * ffn;
  auto inner = static_cast<std::size_t>(rows * ffn);
  saved.gateProj.resize(inner);
  saved.upProj.resize(inner);
  gemm(false, false, rows, ffn, hidden, 1.0f, x.data(), w1, 0.0f,
       saved.gateProj.data());
  gemm(false, false, rows, ffn, hidden, 1.0f, x.data(), w3, 0.0f,
       saved.upProj.data());
  std::vector<float> hiddenAct(inner);
  for (std::size_t i = 0; i < inner; ++i)
    hiddenAct[i] = activate(activation, saved.gateProj[i]) * saved.upProj[i];
  gemm(false, false, rows, hidden, ffn, 1.0f, hiddenAct.data(), w2, 0.0f,
       y.data());
}

void cpu::swigluBackward(std::span<const float> x,
                         std::span<const float> weights,
                         const SwiGluSaved &saved, std::span<const float> dy,
                         std::int64_t rows, std::int64_t hidden,
                         std::int64_t ffn, Activation activation,
                         std::span<float> dx, std::span<float> dWeights,
                         bool accumulate) {
  float beta = accumulate ? 1.0f : 0.0f;
  const float *w1 = weights.data();
  const float *w3 = w1 + hidden * ffn;
  const float *w2 = w3 + hidden * ffn;
  float *dw1 = dWeights.data();
  float *dw3 = dw1 + hidden * ffn;
  float *dw2 = dw3 + hidden * ffn;
  auto inner = static_cast<std::size_t>(rows * ffn);
  std::vector<float> hiddenAct(inner), dHidden(inner), dGateProj(inner),
      dUpProj(inner);
  for (std::size_t i = 0; i < inner; ++i)
    hiddenAct[i] = activate(activation, saved.gateProj[i]) * saved.upProj[i];
  // dw2 = h^T dy ; dh = dy w2^T.
  gemm(true, false, ffn, hidden, rows, 1.0f, hiddenAct.data(), dy.data(),
       beta, dw2);
  gemm(false, true, rows, ffn, hidden, 1.0f, dy.data(), w2, 0.0f,
       dHidden.data());
  for (std::size_t i = 0; i < inner; ++i) {
    float g = saved.gateProj[i];
    dUpProj[i] = dHidden[i] * activate(activation, g);
    dGateProj[i] = dHidden[i] * saved.upProj[i] * activateDerivative(activation, g);
  }
  // dw1 = x^T dg ; dw3 = x^T du ; dx = dg w1^T + du w3^T.
  gemm(true, false, hidden, ffn, rows, 1.0f, x.data(), dGateProj.data(), beta,
       dw1);
  gemm(true, false, hidden, ffn, rows, 1.0f, x.data(), dUpProj.data(), beta,
       dw3);
  gemm(false, true, rows, hidden, ffn, 1.0f, dGateProj.data(), w1, 0.0f,
       dx.data());
  gemm(false, true, rows, hidden, ffn, 1.0f, dUpProj.data(), w3, 1.0f,
       dx.data());
}
