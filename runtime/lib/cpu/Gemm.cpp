//===- Gemm.cpp - OpenBLAS GEMM -------------------------------------------===//

#include "laer/runtime/cpu/Kernels.h"

#include <algorithm>
#include <cblas.h>

void laer::rt::cpu::gemm(bool transA, bool transB, std::int64_t m,
                         std::int64_t n, std::int64_t k, float alpha,
                         const float *a, const float *b, float beta, float *c) {
  if (m == 0 || n == 0)
    return;
  if (k == 0) {
    // BLAS leaves C untouched for k = 0 only when beta = 1; be explicit.
    for (std::int64_t i = 0; i < m * n; ++i)
      c[i] = beta == 0.0f ? 0.0f : beta * c[i];
    return;
  }
  std::int64_t lda = transA ? m : k;
  std::int64_t ldb = transB ? k : n;
  cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans,
              transB ? CblasTrans : CblasNoTrans, static_cast<int>(m),
              static_cast<int>(n), static_cast<int>(k), alpha, a,
              static_cast<int>(std::max<std::int64_t>(lda, 1)), b,
              static_cast<int>(std::max<std::int64_t>(ldb, 1)), beta, c,
              static_cast<int>(n));
}
