//===- CudaRuntime.h - streams, events and device buffers ------*- C++ -*-===//
//
// RAII over the CUDA runtime for the GPU backend: every failed call becomes
// a RuntimeError naming the call, never a silent error code.
//
//===----------------------------------------------------------------------===//

#ifndef LAER_RUNTIME_CUDA_CUDARUNTIME_H
#define LAER_RUNTIME_CUDA_CUDARUNTIME_H

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <utility>
#include <vector>

namespace laer::rt::cuda {

/// Throws a RuntimeError "CUDA <what>: <error string>" unless `status` is
/// cudaSuccess.
void check(cudaError_t status, const char *what);

/// Whether a CUDA device can be used here (driver present, at least one
/// device); false on build machines without a GPU.
bool deviceAvailable();

/// A non-blocking stream (it does not synchronise with the legacy default
/// stream).
class Stream {
public:
  Stream();
  ~Stream();
  Stream(const Stream &) = delete;
  Stream &operator=(const Stream &) = delete;
  cudaStream_t get() const { return stream_; }
  operator cudaStream_t() const { return stream_; }
  void synchronize() const;

private:
  cudaStream_t stream_ = nullptr;
};

/// An event without timing unless asked for; orders work across streams.
class Event {
public:
  explicit Event(bool timing = false);
  ~Event();
  Event(const Event &) = delete;
  Event &operator=(const Event &) = delete;
  cudaEvent_t get() const { return event_; }
  void record(cudaStream_t stream);
  /// Work queued on `stream` after this call waits for the event.
  void waitOn(cudaStream_t stream) const;
  void synchronize() const;
  /// Milliseconds from `start` to this event (both recorded with timing).
  float millisecondsSince(const Event &start) const;

private:
  cudaEvent_t event_ = nullptr;
};

/// Device memory for `size` elements of T.
template <typename T> class DeviceBuffer {
public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(std::size_t size) : size_(size) {
    std::size_t bytes = 0;
    if (__builtin_mul_overflow(size, sizeof(T), &bytes))
      check(cudaErrorMemoryAllocation,
            "cudaMalloc (the byte count overflows)");
    if (size)
      check(cudaMalloc(reinterpret_cast<void **>(&data_), bytes),
            "cudaMalloc");
  }
  ~DeviceBuffer() {
    if (data_)
      cudaFree(data_);
  }
  DeviceBuffer(DeviceBuffer &&other) noexcept
      : data_(std::exchange(other.data_, nullptr)),
        size_(std::exchange(other.size_, 0)) {}
  DeviceBuffer &operator=(DeviceBuffer &&other) noexcept {
    std::swap(data_, other.data_);
    std::swap(size_, other.size_);
    return *this;
  }
  DeviceBuffer(const DeviceBuffer &) = delete;
  DeviceBuffer &operator=(const DeviceBuffer &) = delete;

  T *data() { return data_; }
  const T *data() const { return data_; }
  std::size_t size() const { return size_; }
  std::size_t bytes() const { return size_ * sizeof(T); }

  /// Copies `host` (at most size() elements) to the start of the buffer;
  /// returns when the data is on the device (a pageable cudaMemcpy may
  /// return before its DMA ends, and non-blocking streams do not wait for
  /// the legacy stream).
  void upload(std::span<const T> host) {
    if (host.size() > size_)
      check(cudaErrorInvalidValue, "upload larger than the device buffer");
    check(cudaMemcpy(data_, host.data(), host.size() * sizeof(T),
                     cudaMemcpyHostToDevice),
          "cudaMemcpy to device");
    check(cudaStreamSynchronize(cudaStreamLegacy), "cudaStreamSynchronize");
  }
  /// The first `count` elements; the caller synchronises the streams that
  /// wrote them first.
  std::vector<T> download(std::size_t count) const {
    std::vector<T> host(count);
    check(cudaMemcpy(host.data(), data_, count * sizeof(T),
                     cudaMemcpyDeviceToHost),
          "cudaMemcpy to host");
    return host;
  }
  std::vector<T> download() const { return download(size_); }
  /// Fills every byte with 0xFF (NaN for floats, -1 for integers), so a
  /// kernel that leaves an output element unwritten is caught.
  void poison() { check(cudaMemset(data_, 0xFF, bytes()), "cudaMemset"); }

private:
  T *data_ = nullptr;
  std::size_t size_ = 0;
};

} // namespace laer::rt::cuda

#endif // LAER_RUNTIME_CUDA_CUDARUNTIME_H
