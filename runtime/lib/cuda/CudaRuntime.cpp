//===- CudaRuntime.cpp - streams, events and errors of the GPU backend ----===//

#include "laer/runtime/cuda/CudaRuntime.h"
#include "laer/runtime/Error.h"

using namespace laer::rt;

void cuda::check(cudaError_t status, const char *what) {
  if (status != cudaSuccess)
    fail({}, "CUDA ", what, ": ", cudaGetErrorName(status), " (",
         cudaGetErrorString(status), ")");
}

bool cuda::deviceAvailable() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError(); // no driver is a normal state, not a sticky error
    return false;
  }
  return count > 0;
}

cuda::Stream::Stream() {
  check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking),
        "cudaStreamCreateWithFlags");
}

cuda::Stream::~Stream() {
  if (stream_)
    cudaStreamDestroy(stream_);
}

void cuda::Stream::synchronize() const {
  check(cudaStreamSynchronize(stream_), "cudaStreamSynchronize");
}

cuda::Event::Event(bool timing) {
  check(cudaEventCreateWithFlags(&event_, timing ? cudaEventDefault
                                                 : cudaEventDisableTiming),
        "cudaEventCreateWithFlags");
}

cuda::Event::~Event() {
  if (event_)
    cudaEventDestroy(event_);
}

void cuda::Event::record(cudaStream_t stream) {
  check(cudaEventRecord(event_, stream), "cudaEventRecord");
}

void cuda::Event::waitOn(cudaStream_t stream) const {
  check(cudaStreamWaitEvent(stream, event_, 0), "cudaStreamWaitEvent");
}

void cuda::Event::synchronize() const {
  check(cudaEventSynchronize(event_), "cudaEventSynchronize");
}

float cuda::Event::millisecondsSince(const Event &start) const {
  float ms = 0;
  check(cudaEventElapsedTime(&ms, start.event_, event_),
        "cudaEventElapsedTime");
  return ms;
}
