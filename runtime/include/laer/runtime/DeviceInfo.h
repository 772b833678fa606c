//===- DeviceInfo.h - accelerators visible to this process -----*- C++ -*-===//

#ifndef LAER_RUNTIME_DEVICEINFO_H
#define LAER_RUNTIME_DEVICEINFO_H

#include <cstdint>
#include <string>
#include <vector>

namespace laer::rt {

/// One GPU as the CUDA driver reports it.
struct GpuInfo {
  int ordinal = 0;
  std::string name;
  int computeMajor = 0;
  int computeMinor = 0;
  std::uint64_t memoryBytes = 0;
  int multiprocessors = 0;
};

/// True when the runtime was compiled with its CUDA backend.
bool builtWithCuda();

/// The GPUs this process can use; empty when the runtime was built without
/// CUDA, when no driver is installed, or when the machine has no GPU.
std::vector<GpuInfo> listGpus();

/// One line per GPU (or a line saying why there is none), for logs.
std::string describeDevices();

} // namespace laer::rt

#endif // LAER_RUNTIME_DEVICEINFO_H
