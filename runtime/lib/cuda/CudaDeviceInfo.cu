//===- CudaDeviceInfo.cu - device queries through the CUDA runtime --------===//

#include "laer/runtime/DeviceInfo.h"

#include <cuda_runtime.h>

bool laer::rt::builtWithCuda() { return true; }

std::vector<laer::rt::GpuInfo> laer::rt::listGpus() {
  int count = 0;
  // No driver or no device is a normal state on build machines, not an error.
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();
    return {};
  }
  std::vector<GpuInfo> gpus;
  for (int ordinal = 0; ordinal < count; ++ordinal) {
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, ordinal) != cudaSuccess)
      continue;
    gpus.push_back(GpuInfo{ordinal, prop.name, prop.major, prop.minor,
                           static_cast<std::uint64_t>(prop.totalGlobalMem),
                           prop.multiProcessorCount});
  }
  return gpus;
}
