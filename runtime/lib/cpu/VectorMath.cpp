//===- VectorMath.cpp - exponentials of float arrays in SIMD lanes --------===//
//
// glibc's libmvec has expf on 4, 8 and 16 lanes (SSE, AVX2, AVX-512),
// within a few ulp of the scalar expf; declaring expf a SIMD function lets
// GCC call it from vectorized loops, and target_clones picks the widest
// lanes the CPU has when the library loads. The SiLU expressions are those
// of cpu::activate and cpu::activateDerivative.
//
//===----------------------------------------------------------------------===//

#include "VectorMath.h"

#include <cmath>

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
extern "C" float expf(float) noexcept __attribute__((simd("notinbranch")));
#define LAER_SIMD_CLONES                                                       \
  __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define LAER_SIMD_CLONES
#endif

using namespace laer::rt::cpu;

LAER_SIMD_CLONES
void detail::siluTimes(const float *__restrict gate, const float *__restrict up,
                       float *__restrict h, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i)
    h[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
}

LAER_SIMD_CLONES
void detail::siluWithDerivative(const float *__restrict gate,
                                float *__restrict act,
                                float *__restrict derivative, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) {
    float g = gate[i], e = expf(-g);
    float sigma = 1.0f / (1.0f + e);
    act[i] = g / (1.0f + e);
    derivative[i] = sigma * (1.0f + g * (1.0f - sigma));
  }
}

LAER_SIMD_CLONES
void detail::expShifted(const float *x, float shift, float *out,
                        std::size_t n) {
  for (std::size_t i = 0; i < n; ++i)
    out[i] = expf(x[i] - shift);
}
