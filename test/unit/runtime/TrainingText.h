//===- TrainingText.h - the text the tests train on -------------*- C++ -*-===//
//
// Tests compare training runs that sum in different orders (ranks, chunks,
// CPU and GPU) to 1e-4 or closer. On text that changes with every edit
// (this checkout's sources) a router near-tie can turn up in the batches
// and flip between such runs, so the tests train on text that stays the
// same: the Python standard library the build found (LAER_TEXT_DIR), or
// the folder the LAER_TEXT_DIR environment variable names (a machine the
// test binaries were carried to). Header-only: the compiled-model test
// links no test library.
//
//===----------------------------------------------------------------------===//

#ifndef LAER_TEST_TRAININGTEXT_H
#define LAER_TEST_TRAININGTEXT_H

#include "laer/runtime/model/TextData.h"

#include <cstdlib>
#include <string>

namespace laer::test {

/// The first MiB of the .py files under the text folder, in path order.
inline rt::TextData trainingText() {
  const char *moved = std::getenv("LAER_TEXT_DIR");
  return rt::TextData::fromPaths({moved ? std::string(moved) : LAER_TEXT_DIR},
                                 ".py", 1 << 20);
}

} // namespace laer::test

#endif // LAER_TEST_TRAININGTEXT_H
