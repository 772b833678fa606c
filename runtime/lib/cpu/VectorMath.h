//===- VectorMath.h - exponentials of float arrays in SIMD lanes -*- C++
//-*-===//
//
// The element-wise exponentials of the float kernels (the experts' SiLU,
// the softmaxes of attention and of the loss), vectorized: after the GEMMs
// they are what a training step spends most on.
//
//===----------------------------------------------------------------------===//

#ifndef LAER_RUNTIME_CPU_VECTORMATH_H
#define LAER_RUNTIME_CPU_VECTORMATH_H

#include <cstddef>

namespace laer::rt::cpu::detail {

/// h[i] = silu(gate[i]) * up[i] for i < n.
void siluTimes(const float *gate, const float *up, float *h, std::size_t n);

/// act[i] = silu(gate[i]) and derivative[i] = silu'(gate[i]) for i < n,
/// from one exponential each.
void siluWithDerivative(const float *gate, float *act, float *derivative,
                        std::size_t n);

/// out[i] = exp(x[i] - shift) for i < n (a softmax's numerators); `out`
/// may be `x`.
void expShifted(const float *x, float shift, float *out, std::size_t n);

} // namespace laer::rt::cpu::detail

#endif // LAER_RUNTIME_CPU_VECTORMATH_H
