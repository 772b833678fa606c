//===- AbiVersionTest.cpp - a binary meets a runtime of another ABI -------===//

#include "laer/runtime/compiled/RunCompiled.h"

#include <gtest/gtest.h>

using namespace laer::rt;

TEST(CompiledAbi, AnotherVersionStopsBeforeAnythingRuns) {
  // The program's entry points are never reached: the check comes first.
  char name[] = "old-train";
  char *argv[] = {name, nullptr};
  ::testing::internal::CaptureStderr();
  int status = runCompiledMain(1, argv, CompiledProgram{nullptr, nullptr},
                               kCompiledAbiVersion - 1);
  std::string message = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(status, 1);
  EXPECT_NE(message.find("old-train: built for laer runtime ABI version " +
                         std::to_string(kCompiledAbiVersion - 1) +
                         ", but liblaer_train.so is version " +
                         std::to_string(kCompiledAbiVersion)),
            std::string::npos)
      << message;
}
