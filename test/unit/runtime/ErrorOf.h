//===- ErrorOf.h - the message a failing call gives -------------*- C++ -*-===//

#ifndef LAER_TEST_ERROROF_H
#define LAER_TEST_ERROROF_H

#include "laer/runtime/Error.h"

#include <functional>
#include <string>

namespace laer::test {

/// The message of the rt::RuntimeError `body` throws ("" when it throws
/// none): what the tests of refused input compare.
inline std::string errorOf(const std::function<void()> &body) {
  try {
    body();
  } catch (const rt::RuntimeError &error) {
    return error.what();
  }
  return "";
}

} // namespace laer::test

#endif // LAER_TEST_ERROROF_H
