//===- MoEFunctions.h - router scores and expert activations ----*- C++ -*-===//
//
// The element-wise functions of an MoE layer, shared by the CPU and CUDA
// kernels (the numbering matches the moe dialect's enums, which the
// compiled ABI passes as integers).
//
//===----------------------------------------------------------------------===//

#ifndef LAER_RUNTIME_MOEFUNCTIONS_H
#define LAER_RUNTIME_MOEFUNCTIONS_H

namespace laer::rt {

enum class ScoreFunction { Softmax, Sigmoid };
enum class Activation { Silu, Gelu, Relu };

} // namespace laer::rt

#endif // LAER_RUNTIME_MOEFUNCTIONS_H
