//===- NoCudaDeviceInfo.cpp - device queries without a CUDA backend -------===//

#include "laer/runtime/DeviceInfo.h"

bool laer::rt::builtWithCuda() { return false; }

std::vector<laer::rt::GpuInfo> laer::rt::listGpus() { return {}; }
