//===- SiluLanes.h - SiLU over float arrays in SIMD lanes -------*- C++ -*-===//
//
// The gated FFN's element-wise SiLU, vectorized: one exponential per
// element dominates the expert compute after the GEMMs.
//
//===----------------------------------------------------------------------===//

#ifndef LAER_RUNTIME_CPU_SILULANES_H
#define LAER_RUNTIME_CPU_SILULANES_H

#include <cstddef>

namespace laer::rt::cpu::detail {

/// h[i] = silu(gate[i]) * up[i] for i < n.
void siluTimes(const float *gate, const float *up, float *h, std::size_t n);

/// act[i] = silu(gate[i]) and derivative[i] = silu'(gate[i]) for i < n,
/// from one exponential each.
void siluWithDerivative(const float *gate, float *act, float *derivative,
                        std::size_t n);

} // namespace laer::rt::cpu::detail

#endif // LAER_RUNTIME_CPU_SILULANES_H
