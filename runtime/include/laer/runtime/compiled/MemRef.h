//===- MemRef.h - MLIR's ranked memref descriptor, seen from C++ -*- C++
//-*-===//
//
// The struct that MLIR's LLVM lowering passes for a ranked memref to a
// function declared with `llvm.emit_c_interface` (a pointer to it): the
// allocated and aligned pointers, the offset, then the sizes and strides.
// Declared here, not taken from mlir/ExecutionEngine, because the runtime
// must not depend on MLIR; test/unit/runtime checks the layout against the
// code laer-compile emits.
//
//===----------------------------------------------------------------------===//

#ifndef LAER_RUNTIME_COMPILED_MEMREF_H
#define LAER_RUNTIME_COMPILED_MEMREF_H

#include <cstdint>
#include <span>

namespace laer::rt {

template <typename T, int Rank> struct MemRef {
  T *allocated;
  T *aligned;
  std::int64_t offset;
  std::int64_t sizes[Rank];
  std::int64_t strides[Rank];

  std::int64_t elements() const {
    std::int64_t n = 1;
    for (int i = 0; i < Rank; ++i)
      n *= sizes[i];
    return n;
  }
  /// Whether the elements are dense and row-major (what the kernels need).
  bool contiguous() const {
    std::int64_t expected = 1;
    for (int i = Rank - 1; i >= 0; --i) {
      if (sizes[i] != 1 && strides[i] != expected)
        return false;
      expected *= sizes[i];
    }
    return true;
  }
  std::span<T> span() const {
    return std::span<T>(aligned + offset, static_cast<std::size_t>(elements()));
  }
};

/// A rank-0 memref: one element.
template <typename T> struct MemRef<T, 0> {
  T *allocated;
  T *aligned;
  std::int64_t offset;
  T &value() const { return aligned[offset]; }
};

} // namespace laer::rt

#endif // LAER_RUNTIME_COMPILED_MEMREF_H
