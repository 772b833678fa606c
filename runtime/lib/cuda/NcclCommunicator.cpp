//===- NcclCommunicator.cpp - collectives between GPUs through NCCL -------===//

#include "laer/runtime/cuda/NcclCommunicator.h"

#include <cstring>
#include <thread>

using namespace laer::rt;
using namespace laer::rt::cuda;

namespace {

ncclDataType_t ncclType(DataType type) {
  switch (type) {
  case DataType::Float32:
    return ncclFloat32;
  case DataType::Float64:
    return ncclFloat64;
  case DataType::Int32:
    return ncclInt32;
  case DataType::Int64:
    return ncclInt64;
  case DataType::Byte:
    return ncclUint8;
  }
  return ncclUint8;
}

/// Binds the calling thread to `device` (the stream member is created on
/// the current device, so this runs before it).
int selectDevice(int device) {
  check(cudaSetDevice(device), "cudaSetDevice");
  return device;
}

} // namespace

NcclHandle::NcclHandle(ncclComm_t comm, cudaStream_t stream,
                       ErrorContext context, std::chrono::milliseconds timeout)
    : comm_(comm), context_(context), timeout_(timeout) {
  done_.record(stream);
}

NcclHandle::~NcclHandle() {
  try {
    wait();
  } catch (const std::exception &) {
  }
}

void NcclHandle::wait() {
  if (finished_)
    return;
  auto deadline = std::chrono::steady_clock::now() + timeout_;
  for (;;) {
    cudaError_t state = cudaEventQuery(done_.get());
    if (state == cudaSuccess)
      break;
    if (state != cudaErrorNotReady)
      cuda::check(state, "NCCL transfer");
    ncclResult_t async = ncclSuccess;
    ncclCommGetAsyncError(comm_, &async);
    if (async != ncclSuccess && async != ncclInProgress) {
      ncclCommAbort(comm_);
      fail(context_, "NCCL transfer failed: ", ncclGetErrorString(async));
    }
    if (std::chrono::steady_clock::now() > deadline) {
      ncclCommAbort(comm_);
      fail(context_, "NCCL transfer did not finish within ", timeout_.count(),
           " ms (a peer rank died or never joined); the "
           "communicator is aborted");
    }
    std::this_thread::yield();
  }
  finished_ = true;
}

NcclCommunicator::NcclCommunicator(Communicator &bootstrap, int device,
                                   std::chrono::milliseconds timeout)
    : rank_(bootstrap.rank()), size_(bootstrap.size()),
      device_(selectDevice(device)), timeout_(timeout) {
  ncclUniqueId id;
  std::memset(&id, 0, sizeof id);
  if (rank_ == 0)
    check(ncclGetUniqueId(&id), "ncclGetUniqueId");
  bootstrap.broadcast(&id, sizeof id, DataType::Byte, 0);
  check(ncclCommInitRank(&comm_, size_, id, rank_), "ncclCommInitRank");
}

NcclCommunicator::~NcclCommunicator() {
  if (comm_)
    ncclCommDestroy(comm_);
}

void NcclCommunicator::check(ncclResult_t result, const char *what) const {
  if (result != ncclSuccess)
    fail(errorContext(), "NCCL ", what, ": ", ncclGetErrorString(result),
         (result == ncclSystemError || result == ncclRemoteError)
             ? " (a peer rank or the network failed)"
             : "");
}

std::unique_ptr<NcclHandle> NcclCommunicator::finishOnStream() {
  return std::make_unique<NcclHandle>(comm_, stream_.get(), errorContext(),
                                      timeout_);
}

void NcclCommunicator::after(cudaStream_t producer) {
  ordering_.record(producer);
  ordering_.waitOn(stream_.get());
}

void NcclCommunicator::after(const Event &event) {
  event.waitOn(stream_.get());
}

std::unique_ptr<CommHandle>
NcclCommunicator::startAllToAllV(const void *send, void *recv,
                                 const AllToAllSizes &sizes, DataType type) {
  return startDeviceAllToAllV(send, recv, sizes, type);
}

std::unique_ptr<NcclHandle> NcclCommunicator::startDeviceAllToAllV(
    const void *send, void *recv, const AllToAllSizes &sizes, DataType type) {
  if (static_cast<int>(sizes.sendCounts.size()) != size_ ||
      static_cast<int>(sizes.recvCounts.size()) != size_ ||
      sizes.sendOffsets.size() != sizes.sendCounts.size() ||
      sizes.recvOffsets.size() != sizes.recvCounts.size())
    fail(errorContext(),
         "NCCL all-to-all: counts and offsets need one "
         "entry per rank (",
         size_, ")");
  std::size_t bytes = sizeOf(type);
  auto sendBytes = static_cast<const std::uint8_t *>(send);
  auto recvBytes = static_cast<std::uint8_t *>(recv);
  check(ncclGroupStart(), "ncclGroupStart");
  for (int peer = 0; peer < size_; ++peer) {
    if (std::int64_t n = sizes.sendCounts[peer])
      check(ncclSend(sendBytes + sizes.sendOffsets[peer] * bytes,
                     static_cast<std::size_t>(n), ncclType(type), peer, comm_,
                     stream_.get()),
            "ncclSend");
    if (std::int64_t n = sizes.recvCounts[peer])
      check(ncclRecv(recvBytes + sizes.recvOffsets[peer] * bytes,
                     static_cast<std::size_t>(n), ncclType(type), peer, comm_,
                     stream_.get()),
            "ncclRecv");
  }
  check(ncclGroupEnd(), "ncclGroupEnd");
  return finishOnStream();
}

void NcclCommunicator::allGather(const void *send, void *recv,
                                 std::int64_t count, DataType type) {
  check(ncclAllGather(send, recv, static_cast<std::size_t>(count),
                      ncclType(type), comm_, stream_.get()),
        "ncclAllGather");
  finishOnStream()->wait();
}

void NcclCommunicator::allReduceSum(void *data, std::int64_t count,
                                    DataType type) {
  if (type == DataType::Byte)
    fail(errorContext(), "NCCL all-reduce of bytes is not a sum of numbers");
  check(ncclAllReduce(data, data, static_cast<std::size_t>(count),
                      ncclType(type), ncclSum, comm_, stream_.get()),
        "ncclAllReduce");
  finishOnStream()->wait();
}

void NcclCommunicator::broadcast(void *data, std::int64_t count, DataType type,
                                 int root) {
  check(ncclBroadcast(data, data, static_cast<std::size_t>(count),
                      ncclType(type), root, comm_, stream_.get()),
        "ncclBroadcast");
  finishOnStream()->wait();
}

void NcclCommunicator::barrier() {
  // A one-element all-reduce: NCCL has no barrier of its own.
  allReduceSum(barrierToken_.data(), 1, DataType::Float32);
}
