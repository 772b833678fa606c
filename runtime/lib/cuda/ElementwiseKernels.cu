//===- ElementwiseKernels.cu - activations, replica sums, AdamW ----------===//

#include "Precision.cuh"

#include "laer/runtime/Error.h"

#include <cmath>

namespace laer::rt::cuda {
using namespace detail;

namespace {

#define LAER_GRID_STRIDE(i, n)                                                 \
  for (std::int64_t i =                                                        \
           blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x;   \
       i < (n); i += static_cast<std::int64_t>(gridDim.x) * blockDim.x)

// The CPU kernels' formulas (cpu::activate, cpu::activateDerivative).
__device__ __forceinline__ float activate(Activation activation, float v) {
  switch (activation) {
  case Activation::Silu:
    return v / (1.0f + expf(-v));
  case Activation::Gelu:
    return 0.5f * v * (1.0f + erff(v * 0.70710678118654752f));
  case Activation::Relu:
    return v > 0.0f ? v : 0.0f;
  }
  return v;
}

__device__ __forceinline__ float activateDerivative(Activation activation,
                                                    float v) {
  switch (activation) {
  case Activation::Silu: {
    float sigma = 1.0f / (1.0f + expf(-v));
    return sigma * (1.0f + v * (1.0f - sigma));
  }
  case Activation::Gelu:
    return 0.5f * (1.0f + erff(v * 0.70710678118654752f)) +
           v * 0.39894228040143268f * expf(-0.5f * v * v);
  case Activation::Relu:
    return v > 0.0f ? 1.0f : 0.0f;
  }
  return 1.0f;
}

template <typename T>
__global__ void gatedActivationKernel(const T *gate, const T *up, T *hidden,
                                      std::int64_t n, Activation activation) {
  LAER_GRID_STRIDE(i, n)
  store(hidden, i, activate(activation, load(gate, i)) * load(up, i));
}

template <typename T>
__global__ void gatedActivationBackwardKernel(const T *gate, const T *up,
                                              const T *dHidden, T *dGate,
                                              T *dUp, std::int64_t n,
                                              Activation activation) {
  LAER_GRID_STRIDE(i, n) {
    float g = load(gate, i), d = load(dHidden, i);
    store(dUp, i, d * activate(activation, g));
    store(dGate, i, d * load(up, i) * activateDerivative(activation, g));
  }
}

__global__ void sumReplicasKernel(const float *shards, int replicas,
                                  std::int64_t n, float *out, bool accumulate) {
  LAER_GRID_STRIDE(i, n) {
    float sum = accumulate ? out[i] : 0.0f;
    for (int r = 0; r < replicas; ++r)
      sum += shards[r * n + i];
    out[i] = sum;
  }
}

__global__ void adamwKernel(float *params, const float *grads, float *m,
                            float *v, std::int64_t n, float learningRate,
                            float beta1, float beta2, float epsilon,
                            float decay, float correction1, float correction2,
                            __nv_bfloat16 *bf16) {
  LAER_GRID_STRIDE(i, n) {
    float g = grads[i];
    float mi = m[i] = beta1 * m[i] + (1.0f - beta1) * g;
    float vi = v[i] = beta2 * v[i] + (1.0f - beta2) * g * g;
    float update = (mi / correction1) / (sqrtf(vi / correction2) + epsilon);
    float p = params[i] = params[i] * decay - learningRate * update;
    if (bf16)
      bf16[i] = __float2bfloat16_rn(p);
  }
}

template <typename T>
__global__ void fillUniformKernel(T *out, std::int64_t n, std::uint64_t seed,
                                  float scale) {
  LAER_GRID_STRIDE(i, n) {
    // splitmix64 of (seed, i): independent of the launch shape.
    std::uint64_t z = seed + 0x9E3779B97F4A7C15ull * (i + 1);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    float u = static_cast<float>(z >> 40) * (1.0f / 16777216.0f);
    store(out, i, (2.0f * u - 1.0f) * scale);
  }
}

template <typename From, typename To>
__global__ void convertKernel(const From *src, To *dst, std::int64_t n) {
  LAER_GRID_STRIDE(i, n)
  store(dst, i, load(src, i));
}

template <typename T>
__global__ void accumulateKernel(const float *src, T *dst, std::int64_t n) {
  LAER_GRID_STRIDE(i, n)
  store(dst, i, load(dst, i) + src[i]);
}

__global__ void scaleKernel(float *data, std::int64_t n, float factor) {
  LAER_GRID_STRIDE(i, n)
  data[i] *= factor;
}

constexpr int kThreads = 256;

} // namespace

std::size_t bytesOf(Precision precision) {
  return precision == Precision::Float32 ? 4 : 2;
}

void gatedActivation(const void *gateProj, const void *upProj, void *hidden,
                     Precision precision, std::int64_t n, Activation activation,
                     cudaStream_t stream) {
  if (n == 0)
    return;
  withStorage(precision, [&](auto *type) {
    using T = std::remove_pointer_t<decltype(type)>;
    gatedActivationKernel<T><<<blocksFor(n, kThreads), kThreads, 0, stream>>>(
        static_cast<const T *>(gateProj), static_cast<const T *>(upProj),
        static_cast<T *>(hidden), n, activation);
  });
  check(cudaGetLastError(), "gatedActivation launch");
}

void gatedActivationBackward(const void *gateProj, const void *upProj,
                             const void *dHidden, void *dGateProj,
                             void *dUpProj, Precision precision, std::int64_t n,
                             Activation activation, cudaStream_t stream) {
  if (n == 0)
    return;
  withStorage(precision, [&](auto *type) {
    using T = std::remove_pointer_t<decltype(type)>;
    gatedActivationBackwardKernel<T>
        <<<blocksFor(n, kThreads), kThreads, 0, stream>>>(
            static_cast<const T *>(gateProj), static_cast<const T *>(upProj),
            static_cast<const T *>(dHidden), static_cast<T *>(dGateProj),
            static_cast<T *>(dUpProj), n, activation);
  });
  check(cudaGetLastError(), "gatedActivationBackward launch");
}

void sumReplicas(const float *shards, int replicas, std::int64_t n, float *out,
                 bool accumulate, cudaStream_t stream) {
  if (n == 0)
    return;
  sumReplicasKernel<<<blocksFor(n, kThreads), kThreads, 0, stream>>>(
      shards, replicas, n, out, accumulate);
  check(cudaGetLastError(), "sumReplicas launch");
}

void adamw(float *params, const float *grads, float *firstMoment,
           float *secondMoment, std::int64_t n, const AdamWConfig &config,
           long step, void *bf16Weights, cudaStream_t stream) {
  if (step < 1)
    fail({}, "AdamW: step counts from 1, got ", step);
  if (n == 0)
    return;
  // Bias corrections as the CPU step computes them (float pow on the host).
  float correction1 = 1.0f - std::pow(config.beta1, static_cast<float>(step));
  float correction2 = 1.0f - std::pow(config.beta2, static_cast<float>(step));
  float decay = 1.0f - config.learningRate * config.weightDecay;
  adamwKernel<<<blocksFor(n, kThreads), kThreads, 0, stream>>>(
      params, grads, firstMoment, secondMoment, n, config.learningRate,
      config.beta1, config.beta2, config.epsilon, decay, correction1,
      correction2, static_cast<__nv_bfloat16 *>(bf16Weights));
  check(cudaGetLastError(), "adamw launch");
}

void fillUniform(void *data, Precision precision, std::int64_t n,
                 std::uint64_t seed, float scale, cudaStream_t stream) {
  if (n == 0)
    return;
  withStorage(precision, [&](auto *type) {
    using T = std::remove_pointer_t<decltype(type)>;
    fillUniformKernel<T><<<blocksFor(n, kThreads), kThreads, 0, stream>>>(
        static_cast<T *>(data), n, seed, scale);
  });
  check(cudaGetLastError(), "fillUniform launch");
}

void convert(const void *src, Precision from, void *dst, Precision to,
             std::int64_t n, cudaStream_t stream) {
  if (n == 0)
    return;
  withStorage(from, [&](auto *fromType) {
    using From = std::remove_pointer_t<decltype(fromType)>;
    withStorage(to, [&](auto *toType) {
      using To = std::remove_pointer_t<decltype(toType)>;
      convertKernel<From, To><<<blocksFor(n, kThreads), kThreads, 0, stream>>>(
          static_cast<const From *>(src), static_cast<To *>(dst), n);
    });
  });
  check(cudaGetLastError(), "convert launch");
}

void scale(float *data, std::int64_t n, float factor, cudaStream_t stream) {
  if (n == 0)
    return;
  scaleKernel<<<blocksFor(n, kThreads), kThreads, 0, stream>>>(data, n, factor);
  check(cudaGetLastError(), "scale launch");
}

void accumulate(const float *src, void *dst, Precision precision,
                std::int64_t n, cudaStream_t stream) {
  if (n == 0)
    return;
  withStorage(precision, [&](auto *type) {
    using T = std::remove_pointer_t<decltype(type)>;
    accumulateKernel<T><<<blocksFor(n, kThreads), kThreads, 0, stream>>>(
        src, static_cast<T *>(dst), n);
  });
  check(cudaGetLastError(), "accumulate launch");
}

} // namespace laer::rt::cuda
