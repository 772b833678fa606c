//===- NcclCommunicator.h - collectives between GPUs through NCCL -*- C++
//-*-===//
//
// The GPU backend of Communicator: buffers are device pointers and every
// operation is queued on the communicator's stream. One rank per GPU. The
// NCCL unique id travels over a bootstrap communicator (MPI in a training
// run: rank 0 makes the id and broadcasts it). The variable-size
// all-to-all is a group of ncclSend/ncclRecv, one pair per peer. Token
// traffic and parameter traffic use two NcclCommunicators, each with its
// own NCCL communicator and stream, so a restore can run beside a
// dispatch.
//
//===----------------------------------------------------------------------===//

#ifndef LAER_RUNTIME_CUDA_NCCLCOMMUNICATOR_H
#define LAER_RUNTIME_CUDA_NCCLCOMMUNICATOR_H

#include "laer/runtime/comm/Communicator.h"
#include "laer/runtime/cuda/CudaRuntime.h"

#include <nccl.h>

#include <chrono>

namespace laer::rt::cuda {

/// A transfer in flight on the communicator's stream.
class NcclHandle : public CommHandle {
public:
  NcclHandle(ncclComm_t comm, cudaStream_t stream, ErrorContext context,
             std::chrono::milliseconds timeout);
  /// Waits like every CommHandle (errors are dropped: destructors must
  /// not throw; call wait() to see them).
  ~NcclHandle() override;
  /// Blocks the host until the transfer is done (a peer that never takes
  /// part is reported after the timeout, and the communicator aborted).
  void wait() override;
  /// Orders work queued on `stream` after the transfer, without blocking
  /// the host: how compute streams consume received buffers.
  void waitOn(cudaStream_t stream) const { done_.waitOn(stream); }

private:
  ncclComm_t comm_;
  Event done_;
  ErrorContext context_;
  std::chrono::milliseconds timeout_;
  bool finished_ = false;
};

class NcclCommunicator : public Communicator {
public:
  /// Collective over `bootstrap`'s ranks; this rank uses GPU `device`.
  NcclCommunicator(
      Communicator &bootstrap, int device,
      std::chrono::milliseconds timeout = std::chrono::seconds(300));
  ~NcclCommunicator() override;
  NcclCommunicator(const NcclCommunicator &) = delete;
  NcclCommunicator &operator=(const NcclCommunicator &) = delete;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string backend() const override { return "nccl"; }
  int device() const { return device_; }
  cudaStream_t stream() const { return stream_.get(); }

  using Communicator::allGather;
  using Communicator::allReduceSum;
  using Communicator::broadcast;

  /// Returns an NcclHandle.
  std::unique_ptr<CommHandle> startAllToAllV(const void *send, void *recv,
                                             const AllToAllSizes &sizes,
                                             DataType type) override;
  /// The same, typed for device-side waits (NcclHandle::waitOn).
  std::unique_ptr<NcclHandle> startDeviceAllToAllV(const void *send, void *recv,
                                                   const AllToAllSizes &sizes,
                                                   DataType type);
  /// Orders this communicator's next operations after the work queued so
  /// far on `producer` (the kernels that filled a send buffer), without
  /// blocking the host.
  void after(cudaStream_t producer);
  /// The same, after `event` (recorded by the caller).
  void after(const Event &event);
  // The blocking collectives return when the result is in device memory.
  void allGather(const void *send, void *recv, std::int64_t count,
                 DataType type) override;
  void allReduceSum(void *data, std::int64_t count, DataType type) override;
  void broadcast(void *data, std::int64_t count, DataType type,
                 int root) override;
  void barrier() override;

private:
  void check(ncclResult_t result, const char *what) const;
  std::unique_ptr<NcclHandle> finishOnStream();

  int rank_ = 0, size_ = 1, device_ = 0;
  std::chrono::milliseconds timeout_;
  Stream stream_;
  Event ordering_;                      // what after(stream) records
  DeviceBuffer<float> barrierToken_{1}; // what barrier() all-reduces
  ncclComm_t comm_ = nullptr;
};

} // namespace laer::rt::cuda

#endif // LAER_RUNTIME_CUDA_NCCLCOMMUNICATOR_H
