//===- CudaTestSupport.h - GPU-vs-CPU test helpers --------------*- C++ -*-===//
//
// Fresh random inputs every run (the seed is printed on failure), outputs
// poisoned before each kernel, norm-wise relative errors, and a skip with
// the reason when no GPU is visible.
//
//===----------------------------------------------------------------------===//

#ifndef LAER_TEST_UNIT_CUDA_CUDATESTSUPPORT_H
#define LAER_TEST_UNIT_CUDA_CUDATESTSUPPORT_H

#include "RelativeError.h"

#include "laer/runtime/DeviceInfo.h"
#include "laer/runtime/Error.h"
#include "laer/runtime/cuda/CudaRuntime.h"
#include "laer/runtime/cuda/Kernels.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#define LAER_REQUIRE_GPU()                                                     \
  do {                                                                         \
    if (!laer::rt::cuda::deviceAvailable())                                    \
      GTEST_SKIP() << "no GPU visible: " << laer::rt::describeDevices();       \
  } while (false)

namespace laer::test {

/// A generator seeded from std::random_device; SCOPED_TRACE the seed.
struct FreshRandom {
  std::uint64_t seed = std::random_device{}();
  std::mt19937_64 rng{seed};

  std::vector<float> uniform(std::size_t n, float scale = 1.0f) {
    std::uniform_real_distribution<float> u(-scale, scale);
    std::vector<float> v(n);
    for (float &x : v)
      x = u(rng);
    return v;
  }
  std::vector<std::int32_t> integers(std::size_t n, int bound) {
    std::uniform_int_distribution<int> u(0, bound - 1);
    std::vector<std::int32_t> v(n);
    for (auto &x : v)
      x = u(rng);
    return v;
  }
};

/// Device storage of float data in a precision: upload converts from
/// float32, download converts back (through the GPU convert kernel).
class DeviceTensor {
public:
  DeviceTensor(std::size_t n, rt::cuda::Precision precision)
      : precision_(precision), n_(n),
        bytes_(n * rt::cuda::bytesOf(precision) + 16) {}
  void *data() { return bytes_.data(); }
  const void *data() const { return bytes_.data(); }
  void poison() { bytes_.poison(); }
  void upload(const std::vector<float> &host) {
    rt::cuda::DeviceBuffer<float> staging(host.size());
    staging.upload(host);
    rt::cuda::convert(staging.data(), rt::cuda::Precision::Float32,
                      bytes_.data(), precision_, host.size(), nullptr);
    rt::cuda::check(cudaDeviceSynchronize(), "upload");
  }
  std::vector<float> download() const {
    rt::cuda::DeviceBuffer<float> staging(n_);
    rt::cuda::convert(bytes_.data(), precision_, staging.data(),
                      rt::cuda::Precision::Float32, n_, nullptr);
    rt::cuda::check(cudaDeviceSynchronize(), "download");
    return staging.download();
  }
  /// What the device holds after upload: `host` rounded to the precision.
  std::vector<float> rounded(const std::vector<float> &host) {
    upload(host);
    return download();
  }

private:
  rt::cuda::Precision precision_;
  std::size_t n_;
  rt::cuda::DeviceBuffer<std::uint8_t> bytes_;
};

/// Waits for the kernels the tests queue on the default stream.
inline void synchronize() {
  rt::cuda::check(cudaDeviceSynchronize(), "test kernel");
}

/// The tolerance of the issue: 1e-2 for bfloat16, 1e-5 for float32.
inline double tolerance(rt::cuda::Precision precision) {
  return precision == rt::cuda::Precision::BFloat16 ? 1e-2 : 1e-5;
}

inline const char *name(rt::cuda::Precision precision) {
  return precision == rt::cuda::Precision::BFloat16 ? "bf16" : "fp32";
}

} // namespace laer::test

#endif // LAER_TEST_UNIT_CUDA_CUDATESTSUPPORT_H
