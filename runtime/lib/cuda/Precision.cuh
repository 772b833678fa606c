//===- Precision.cuh - float32 / bfloat16 element access -----*- CUDA -*-===//
//
// Kernels are templates over the storage type; arithmetic is float32.
//
//===----------------------------------------------------------------------===//

#ifndef LAER_RUNTIME_LIB_CUDA_PRECISION_CUH
#define LAER_RUNTIME_LIB_CUDA_PRECISION_CUH

#include "laer/runtime/cuda/Kernels.h"

#include <cuda_bf16.h>

namespace laer::rt::cuda::detail {

__device__ __forceinline__ float load(const float *p, std::int64_t i) {
  return p[i];
}
__device__ __forceinline__ float load(const __nv_bfloat16 *p, std::int64_t i) {
  return __bfloat162float(p[i]);
}
__device__ __forceinline__ void store(float *p, std::int64_t i, float v) {
  p[i] = v;
}
__device__ __forceinline__ void store(__nv_bfloat16 *p, std::int64_t i,
                                      float v) {
  p[i] = __float2bfloat16_rn(v);
}

/// Calls `f` with a null pointer of the storage type of `precision`.
template <typename F> void withStorage(Precision precision, F &&f) {
  if (precision == Precision::Float32)
    f(static_cast<float *>(nullptr));
  else
    f(static_cast<__nv_bfloat16 *>(nullptr));
}

/// Blocks for `n` elements with `threads` per block, capped for grid-stride
/// loops.
inline unsigned blocksFor(std::int64_t n, int threads) {
  std::int64_t blocks = (n + threads - 1) / threads;
  return static_cast<unsigned>(blocks < 65535 * 16 ? blocks : 65535 * 16);
}

} // namespace laer::rt::cuda::detail

#endif // LAER_RUNTIME_LIB_CUDA_PRECISION_CUH
