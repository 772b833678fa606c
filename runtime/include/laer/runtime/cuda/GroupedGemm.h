//===- GroupedGemm.h - expert GEMMs through cuBLASLt -----------*- C++ -*-===//
//
// The GEMMs of the experts a rank computes: one problem per expert (its
// rows times its weights), all of one precision. Each distinct shape (and
// operand alignment) gets its cuBLASLt descriptors and its heuristic-chosen
// algorithm once, in a cache of at most kMaxPlans entries (expert row
// counts change every step); the workspace is allocated once; run()
// allocates no device memory.
//
//===----------------------------------------------------------------------===//

#ifndef LAER_RUNTIME_CUDA_GROUPEDGEMM_H
#define LAER_RUNTIME_CUDA_GROUPEDGEMM_H

#include "laer/runtime/cuda/CudaRuntime.h"
#include "laer/runtime/cuda/Kernels.h"

#include <cublasLt.h>

#include <map>
#include <span>
#include <tuple>

namespace laer::rt::cuda {

/// C [m, n] = alpha * op(A) op(B) + beta * C, row-major, where op(A) is
/// [m, k] (A stored [k, m] when transA) and op(B) is [k, n] (B stored
/// [n, k] when transB).
struct GemmProblem {
  const void *a = nullptr, *b = nullptr;
  void *c = nullptr;
  std::int64_t m = 0, n = 0, k = 0;
  bool transA = false, transB = false;
};

class GroupedGemm {
public:
  /// A and B in `inputs`, C in `output` (bfloat16 weight gradients may
  /// accumulate in float32); float32 accumulation either way, and no TF32
  /// for float32 inputs.
  GroupedGemm(Precision inputs, Precision output,
              std::size_t workspaceBytes = 32u << 20);
  ~GroupedGemm();
  GroupedGemm(const GroupedGemm &) = delete;
  GroupedGemm &operator=(const GroupedGemm &) = delete;

  /// Queues every problem on `stream`, in order. Problems with m or n = 0
  /// are skipped; k = 0 leaves beta * C (zeros for beta = 0).
  void run(std::span<const GemmProblem> problems, float alpha, float beta,
           cudaStream_t stream);

  /// Distinct (shape, operand alignment) pairs planned so far (each costs one
  /// heuristic query).
  std::size_t plannedShapes() const { return plans_.size(); }

private:
  struct Plan {
    cublasLtMatmulDesc_t desc = nullptr;
    cublasLtMatrixLayout_t left = nullptr, right = nullptr, out = nullptr;
    cublasLtMatmulAlgo_t algo{};
  };
  // (m, n, k, transA, transB, alignments of A, B and C in bytes): the
  // heuristic assumes 256-byte aligned operands unless told otherwise, and
  // expert rows start wherever a chunk's block does.
  using Shape = std::tuple<std::int64_t, std::int64_t, std::int64_t, bool, bool,
                           unsigned, unsigned, unsigned>;
  const Plan &plan(const GemmProblem &problem);
  void dropPlans();
  /// Plans kept at most (a full cache is dropped and refilled).
  static constexpr std::size_t kMaxPlans = 1024;

  Precision inputs_, output_;
  cublasLtHandle_t handle_ = nullptr;
  DeviceBuffer<std::uint8_t> workspace_;
  std::map<Shape, Plan> plans_;
};

} // namespace laer::rt::cuda

#endif // LAER_RUNTIME_CUDA_GROUPEDGEMM_H
