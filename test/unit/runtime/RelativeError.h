//===- RelativeError.h - how far two float tensors are apart ----*- C++ -*-===//
//
// Header-only, so every test binary can use it, including one linked like
// a training binary (against liblaer_train alone).
//
//===----------------------------------------------------------------------===//

#ifndef LAER_TEST_RELATIVEERROR_H
#define LAER_TEST_RELATIVEERROR_H

#include <cmath>
#include <vector>

namespace laer::test {

/// ||a - b|| / ||b|| (0 when both are zero); NaN anywhere gives infinity.
inline double relativeError(const std::vector<float> &a,
                            const std::vector<float> &b) {
  if (a.size() != b.size())
    return INFINITY;
  double diff = 0, norm = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (!std::isfinite(a[i]))
      return INFINITY;
    diff += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
    norm += double(b[i]) * b[i];
  }
  return norm == 0 ? std::sqrt(diff) : std::sqrt(diff / norm);
}

} // namespace laer::test

#endif // LAER_TEST_RELATIVEERROR_H
