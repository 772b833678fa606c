//===- Communicator.h - collectives between the ranks of a run -*- C++ -*-===//
//
// One interface for every backend: MPI between processes (CPU ranks, also
// across nodes), threads in one process (fast tests), and later NCCL on
// GPUs. Operations are collective: every rank of the group calls them in
// the same order. The `start*` forms return a handle so a backend can
// overlap the transfer with computation; `wait` must be called before the
// buffers are read or reused.
//
//===----------------------------------------------------------------------===//

#ifndef LAER_RUNTIME_COMM_COMMUNICATOR_H
#define LAER_RUNTIME_COMM_COMMUNICATOR_H

#include "laer/runtime/Error.h"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace laer::rt {

enum class DataType { Float32, Float64, Int32, Int64, Byte };

/// Size of one element of `type` in bytes.
std::size_t sizeOf(DataType type);
const char *nameOf(DataType type);

template <typename T> constexpr DataType dataTypeOf();
template <> constexpr DataType dataTypeOf<float>() { return DataType::Float32; }
template <> constexpr DataType dataTypeOf<double>() {
  return DataType::Float64;
}
template <> constexpr DataType dataTypeOf<std::int32_t>() {
  return DataType::Int32;
}
template <> constexpr DataType dataTypeOf<std::int64_t>() {
  return DataType::Int64;
}
template <> constexpr DataType dataTypeOf<std::uint8_t>() {
  return DataType::Byte;
}

/// Element counts and offsets of a variable-size all-to-all, one entry per
/// peer rank: this rank sends `sendCounts[p]` elements starting at
/// `sendOffsets[p]` to rank p and receives `recvCounts[p]` elements from
/// rank p at `recvOffsets[p]`.
struct AllToAllSizes {
  std::vector<std::int64_t> sendCounts, sendOffsets;
  std::vector<std::int64_t> recvCounts, recvOffsets;

  /// Offsets as running sums of the counts (packed buffers).
  static AllToAllSizes packed(std::vector<std::int64_t> sendCounts,
                              std::vector<std::int64_t> recvCounts);
  std::int64_t totalSend() const;
  std::int64_t totalRecv() const;
  /// The same exchange the other way round: what was sent comes back.
  AllToAllSizes reversed() const;
  /// Counts and offsets `factor` times larger (elements into bytes).
  AllToAllSizes scaled(std::int64_t factor) const;
  /// The same exchange without `rank`'s part with itself (its counts zero,
  /// offsets packed again): what a caller that copies to itself directly
  /// leaves to the communicator.
  AllToAllSizes withoutSelf(int rank) const;
};

/// An operation in flight. Destroying an unfinished handle waits for it.
class CommHandle {
public:
  virtual ~CommHandle() = default;
  virtual void wait() = 0;
};

class Communicator {
public:
  virtual ~Communicator() = default;

  virtual int rank() const = 0;
  virtual int size() const = 0;
  /// Backend name for logs ("mpi", "in-process", "nccl").
  virtual std::string backend() const = 0;

  /// Variable-size all-to-all (MPI_Alltoallv semantics).
  virtual std::unique_ptr<CommHandle> startAllToAllV(const void *send,
                                                     void *recv,
                                                     const AllToAllSizes &sizes,
                                                     DataType type) = 0;
  /// Every rank contributes `count` elements; `recv` holds size()*count,
  /// rank-major.
  virtual void allGather(const void *send, void *recv, std::int64_t count,
                         DataType type) = 0;
  /// In-place element-wise sum over all ranks.
  virtual void allReduceSum(void *data, std::int64_t count, DataType type) = 0;
  virtual void broadcast(void *data, std::int64_t count, DataType type,
                         int root) = 0;
  virtual void barrier() = 0;

  /// Labels the errors raised by the following operations (the layer and
  /// step the caller is working on).
  void setErrorContext(int layer, long step) {
    layer_ = layer;
    step_ = step;
  }
  ErrorContext errorContext() const { return {rank(), layer_, step_}; }

  // Typed conveniences.
  template <typename T>
  void allToAllV(std::span<const T> send, std::span<T> recv,
                 const AllToAllSizes &sizes) {
    checkSpan(send.size(), sizes.sendCounts, sizes.sendOffsets, "send");
    checkSpan(recv.size(), sizes.recvCounts, sizes.recvOffsets, "receive");
    startAllToAllV(send.data(), recv.data(), sizes, dataTypeOf<T>())->wait();
  }
  template <typename T> std::vector<T> allGather(std::span<const T> send) {
    std::vector<T> recv(send.size() * static_cast<std::size_t>(size()));
    allGather(send.data(), recv.data(), static_cast<std::int64_t>(send.size()),
              dataTypeOf<T>());
    return recv;
  }
  template <typename T> void allReduceSum(std::span<T> data) {
    allReduceSum(data.data(), static_cast<std::int64_t>(data.size()),
                 dataTypeOf<T>());
  }
  template <typename T> void broadcast(std::span<T> data, int root) {
    broadcast(data.data(), static_cast<std::int64_t>(data.size()),
              dataTypeOf<T>(), root);
  }

protected:
  /// Checks that counts/offsets describe ranges inside a buffer of
  /// `elements` and that there is one entry per rank.
  void checkSpan(std::size_t elements, const std::vector<std::int64_t> &counts,
                 const std::vector<std::int64_t> &offsets,
                 const char *what) const;

private:
  int layer_ = -1;
  long step_ = -1;
};

} // namespace laer::rt

#endif // LAER_RUNTIME_COMM_COMMUNICATOR_H
