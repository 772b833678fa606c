//===- GroupedGemm.cpp - expert GEMMs through cuBLASLt --------------------===//
//
// cuBLASLt is column-major; a row-major C = op(A) op(B) is the column-major
// C^T = op(B)^T op(A)^T, so B goes in the left slot and A in the right one,
// and each stored matrix's column-major view is its row-major transpose.
//
//===----------------------------------------------------------------------===//

#include "laer/runtime/cuda/GroupedGemm.h"
#include "laer/runtime/Error.h"

#include <cstdint>
#include <utility>

using namespace laer::rt;
using namespace laer::rt::cuda;

namespace {

/// cublasGetStatusName lives in libcublas, which the backend does not
/// otherwise need.
const char *statusName(cublasStatus_t status) {
  switch (status) {
  case CUBLAS_STATUS_SUCCESS:
    return "CUBLAS_STATUS_SUCCESS";
  case CUBLAS_STATUS_NOT_INITIALIZED:
    return "CUBLAS_STATUS_NOT_INITIALIZED";
  case CUBLAS_STATUS_ALLOC_FAILED:
    return "CUBLAS_STATUS_ALLOC_FAILED";
  case CUBLAS_STATUS_INVALID_VALUE:
    return "CUBLAS_STATUS_INVALID_VALUE";
  case CUBLAS_STATUS_ARCH_MISMATCH:
    return "CUBLAS_STATUS_ARCH_MISMATCH";
  case CUBLAS_STATUS_EXECUTION_FAILED:
    return "CUBLAS_STATUS_EXECUTION_FAILED";
  case CUBLAS_STATUS_INTERNAL_ERROR:
    return "CUBLAS_STATUS_INTERNAL_ERROR";
  case CUBLAS_STATUS_NOT_SUPPORTED:
    return "CUBLAS_STATUS_NOT_SUPPORTED";
  default:
    return "cuBLAS error";
  }
}

void checkLt(cublasStatus_t status, const char *what) {
  if (status != CUBLAS_STATUS_SUCCESS)
    fail({}, "cuBLASLt ", what, ": ", statusName(status), " (",
         static_cast<int>(status), ")");
}

/// The largest power of two up to 256 dividing the address.
unsigned alignmentOf(const void *pointer) {
  auto address = reinterpret_cast<std::uintptr_t>(pointer);
  unsigned alignment = 1;
  while (alignment < 256 && address % (2 * alignment) == 0)
    alignment *= 2;
  return alignment;
}

cudaDataType_t dataType(Precision precision) {
  return precision == Precision::Float32 ? CUDA_R_32F : CUDA_R_16BF;
}

} // namespace

GroupedGemm::GroupedGemm(Precision inputs, Precision output,
                         std::size_t workspaceBytes)
    : inputs_(inputs), output_(output), workspace_(workspaceBytes) {
  checkLt(cublasLtCreate(&handle_), "cublasLtCreate");
}

void GroupedGemm::dropPlans() {
  for (auto &[shape, plan] : plans_) {
    cublasLtMatrixLayoutDestroy(plan.left);
    cublasLtMatrixLayoutDestroy(plan.right);
    cublasLtMatrixLayoutDestroy(plan.out);
    cublasLtMatmulDescDestroy(plan.desc);
  }
  plans_.clear();
}

GroupedGemm::~GroupedGemm() {
  dropPlans();
  if (handle_)
    cublasLtDestroy(handle_);
}

const GroupedGemm::Plan &GroupedGemm::plan(const GemmProblem &p) {
  unsigned alignA = alignmentOf(p.a), alignB = alignmentOf(p.b),
           alignC = alignmentOf(p.c);
  Shape shape{p.m, p.n, p.k, p.transA, p.transB, alignA, alignB, alignC};
  if (auto found = plans_.find(shape); found != plans_.end())
    return found->second;
  // Expert row counts change every step; keep the cache bounded.
  if (plans_.size() >= kMaxPlans)
    dropPlans();
  Plan plan;
  checkLt(cublasLtMatmulDescCreate(&plan.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F),
          "cublasLtMatmulDescCreate");
  // Left = B: stored [k, n] row-major is column-major [n, k] = op(B)^T
  // (no transpose); stored [n, k] (transB) is column-major [k, n] = op(B).
  cublasOperation_t opLeft = p.transB ? CUBLAS_OP_T : CUBLAS_OP_N;
  cublasOperation_t opRight = p.transA ? CUBLAS_OP_T : CUBLAS_OP_N;
  checkLt(cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_TRANSA,
                                         &opLeft, sizeof opLeft),
          "set TRANSA");
  checkLt(cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_TRANSB,
                                         &opRight, sizeof opRight),
          "set TRANSB");
  auto in = dataType(inputs_), out = dataType(output_);
  auto u = [](std::int64_t v) { return static_cast<std::uint64_t>(v); };
  if (p.transB)
    checkLt(cublasLtMatrixLayoutCreate(&plan.left, in, u(p.k), u(p.n), p.k),
            "layout of B");
  else
    checkLt(cublasLtMatrixLayoutCreate(&plan.left, in, u(p.n), u(p.k), p.n),
            "layout of B");
  if (p.transA)
    checkLt(cublasLtMatrixLayoutCreate(&plan.right, in, u(p.m), u(p.k), p.m),
            "layout of A");
  else
    checkLt(cublasLtMatrixLayoutCreate(&plan.right, in, u(p.k), u(p.m), p.k),
            "layout of A");
  checkLt(cublasLtMatrixLayoutCreate(&plan.out, out, u(p.n), u(p.m), p.n),
          "layout of C");

  cublasLtMatmulPreference_t preference = nullptr;
  checkLt(cublasLtMatmulPreferenceCreate(&preference),
          "cublasLtMatmulPreferenceCreate");
  std::size_t workspace = workspace_.size();
  checkLt(cublasLtMatmulPreferenceSetAttribute(
              preference, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace,
              sizeof workspace),
          "set the workspace limit");
  // cuBLASLt's A is our B (left slot) and its B our A.
  std::pair<cublasLtMatmulPreferenceAttributes_t, unsigned> alignments[] = {
      {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, alignB},
      {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, alignA},
      {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, alignC},
      {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, alignC}};
  for (auto [attribute, bytes] : alignments) {
    std::uint32_t value = bytes;
    checkLt(cublasLtMatmulPreferenceSetAttribute(preference, attribute, &value,
                                                 sizeof value),
            "set an operand alignment");
  }
  cublasLtMatmulHeuristicResult_t result{};
  int found = 0;
  cublasStatus_t status = cublasLtMatmulAlgoGetHeuristic(
      handle_, plan.desc, plan.left, plan.right, plan.out, plan.out, preference,
      1, &result, &found);
  cublasLtMatmulPreferenceDestroy(preference);
  if (status != CUBLAS_STATUS_SUCCESS || found == 0)
    fail({}, "cuBLASLt has no algorithm for the GEMM [", p.m, ", ", p.k,
         "] x [", p.k, ", ", p.n, "] (transA ", p.transA, ", transB ", p.transB,
         "): ", statusName(status));
  plan.algo = result.algo;
  return plans_.emplace(shape, plan).first->second;
}

void GroupedGemm::run(std::span<const GemmProblem> problems, float alpha,
                      float beta, cudaStream_t stream) {
  for (const GemmProblem &p : problems) {
    if (p.m == 0 || p.n == 0)
      continue;
    if (p.k == 0) {
      if (beta != 0.0f && beta != 1.0f)
        fail({}, "GroupedGemm: k = 0 with beta ", beta, " (only 0 or 1)");
      if (beta == 0.0f)
        check(cudaMemsetAsync(p.c, 0, p.m * p.n * bytesOf(output_), stream),
              "cudaMemsetAsync");
      continue;
    }
    const Plan &plan = this->plan(p);
    checkLt(cublasLtMatmul(handle_, plan.desc, &alpha, p.b, plan.left, p.a,
                           plan.right, &beta, p.c, plan.out, p.c, plan.out,
                           &plan.algo, workspace_.data(), workspace_.size(),
                           stream),
            "cublasLtMatmul");
  }
}
