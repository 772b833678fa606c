//===- DeviceInfo.cpp - backend-independent device reporting --------------===//

#include "laer/runtime/DeviceInfo.h"

#include <sstream>

std::string laer::rt::describeDevices() {
  std::vector<GpuInfo> gpus = listGpus();
  std::ostringstream out;
  if (!builtWithCuda()) {
    out << "no GPU: runtime built without CUDA\n";
    return out.str();
  }
  if (gpus.empty()) {
    out << "no GPU: CUDA backend built, but no device is visible\n";
    return out.str();
  }
  for (const GpuInfo &gpu : gpus)
    out << "gpu " << gpu.ordinal << ": " << gpu.name << ", sm_"
        << gpu.computeMajor << gpu.computeMinor << ", "
        << gpu.memoryBytes / (1ull << 20) << " MiB, " << gpu.multiprocessors
        << " SMs\n";
  return out.str();
}
