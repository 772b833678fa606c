//===- DeviceInfoTest.cpp - runtime device queries ------------------------===//

#include "laer/runtime/DeviceInfo.h"

#include <gtest/gtest.h>

using namespace laer::rt;

TEST(DeviceInfo, DescriptionMatchesDeviceList) {
  std::vector<GpuInfo> gpus = listGpus();
  std::string text = describeDevices();
  if (gpus.empty()) {
    EXPECT_NE(text.find("no GPU"), std::string::npos) << text;
  } else {
    for (const GpuInfo &gpu : gpus)
      EXPECT_NE(text.find(gpu.name), std::string::npos) << text;
  }
}

TEST(DeviceInfo, GpusReportPlausibleProperties) {
  std::vector<GpuInfo> gpus = listGpus();
  if (gpus.empty())
    GTEST_SKIP() << "no GPU visible: " << describeDevices();
  for (size_t i = 0; i < gpus.size(); ++i) {
    EXPECT_EQ(gpus[i].ordinal, static_cast<int>(i));
    EXPECT_FALSE(gpus[i].name.empty());
    EXPECT_GE(gpus[i].computeMajor, 7);
    EXPECT_GT(gpus[i].memoryBytes, 1ull << 30);
    EXPECT_GT(gpus[i].multiprocessors, 0);
  }
}
