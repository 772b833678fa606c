//===- InProcessCommunicator.cpp - ranks as threads of one process --------===//
//
// Each collective has two phases separated by barriers: every rank first
// publishes pointers to its buffers, then (after barrier A) pulls what it
// needs from its peers' buffers, and (after barrier B) may reuse them.
// Reductions sum in rank order so every rank gets bit-identical results,
// as the MPI backend guarantees by reducing at one root.
//
//===----------------------------------------------------------------------===//

#include "laer/runtime/comm/InProcessCommunicator.h"

#include <condition_variable>
#include <cstring>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

using namespace laer::rt;

namespace {

/// What one rank publishes for the collective in progress.
struct Slot {
  const void *send = nullptr;
  void *recv = nullptr;
  const AllToAllSizes *sizes = nullptr;
  std::int64_t count = 0;
  DataType type = DataType::Byte;
  int root = 0;
  const char *op = "";
};

template <typename T>
void sumInto(void *accumulator, const void *addend, std::int64_t count) {
  auto *acc = static_cast<T *>(accumulator);
  const auto *add = static_cast<const T *>(addend);
  for (std::int64_t i = 0; i < count; ++i)
    acc[i] += add[i];
}

void sumInto(DataType type, void *accumulator, const void *addend,
             std::int64_t count) {
  switch (type) {
  case DataType::Float32:
    return sumInto<float>(accumulator, addend, count);
  case DataType::Float64:
    return sumInto<double>(accumulator, addend, count);
  case DataType::Int32:
    return sumInto<std::int32_t>(accumulator, addend, count);
  case DataType::Int64:
    return sumInto<std::int64_t>(accumulator, addend, count);
  case DataType::Byte:
    return sumInto<std::uint8_t>(accumulator, addend, count);
  }
}

class CompletedHandle : public CommHandle {
public:
  void wait() override {}
};

} // namespace

struct InProcessGroup::State {
  int size;
  std::chrono::milliseconds timeout;
  std::mutex mutex;
  std::condition_variable changed;
  int arrived = 0;
  long generation = 0;
  bool aborted = false;
  std::string abortReason;
  int abortingRank = -1;
  std::vector<Slot> slots;
  std::vector<std::unique_ptr<Communicator>> communicators;

  /// Waits until all ranks arrived; throws if the group was aborted or the
  /// peers did not arrive in time.
  void barrier(int rank, const char *op, const ErrorContext &context) {
    std::unique_lock lock(mutex);
    if (aborted)
      fail(context, op, " aborted: ", abortReason);
    long myGeneration = generation;
    if (++arrived == size) {
      arrived = 0;
      ++generation;
      changed.notify_all();
      return;
    }
    bool done = changed.wait_for(
        lock, timeout, [&] { return aborted || generation != myGeneration; });
    if (aborted)
      fail(context, op, " aborted: ", abortReason);
    if (!done) {
      aborted = true;
      abortingRank = rank;
      abortReason = "rank " + std::to_string(rank) + " waited more than " +
                    std::to_string(timeout.count()) + " ms in " + op +
                    " for its peers";
      changed.notify_all();
      fail(context, op, " timed out: ", abortReason);
    }
  }

  void abort(const std::string &reason, int rank) {
    std::lock_guard lock(mutex);
    if (!aborted) {
      aborted = true;
      abortReason = reason;
      abortingRank = rank;
    }
    changed.notify_all();
  }
};

namespace {

class InProcessCommunicator : public Communicator {
public:
  InProcessCommunicator(InProcessGroup::State &state, int rank)
      : state_(state), rank_(rank) {}

  int rank() const override { return rank_; }
  int size() const override { return state_.size; }
  std::string backend() const override { return "in-process"; }

  std::unique_ptr<CommHandle> startAllToAllV(const void *send, void *recv,
                                             const AllToAllSizes &sizes,
                                             DataType type) override {
    publish({send, recv, &sizes, 0, type, 0, "all-to-all"});
    std::size_t element = sizeOf(type);
    for (int peer = 0; peer < state_.size; ++peer) {
      const Slot &from = state_.slots[peer];
      std::int64_t sent = from.sizes->sendCounts[rank_];
      std::int64_t expected = sizes.recvCounts[peer];
      if (from.type != type)
        finishWithError("all-to-all: rank " + std::to_string(peer) + " sends " +
                        nameOf(from.type) +
                        " but this rank "
                        "receives " +
                        nameOf(type));
      if (sent != expected)
        finishWithError("all-to-all: rank " + std::to_string(peer) + " sends " +
                        std::to_string(sent) +
                        " elements but this rank expects " +
                        std::to_string(expected));
      std::memcpy(static_cast<char *>(recv) + sizes.recvOffsets[peer] * element,
                  static_cast<const char *>(from.send) +
                      from.sizes->sendOffsets[rank_] * element,
                  static_cast<std::size_t>(sent) * element);
    }
    state_.barrier(rank_, "all-to-all", errorContext());
    // The transfer is complete on return; the handle has nothing to wait for.
    return std::make_unique<CompletedHandle>();
  }

  void allGather(const void *send, void *recv, std::int64_t count,
                 DataType type) override {
    publish({send, recv, nullptr, count, type, 0, "all-gather"});
    std::size_t bytes = static_cast<std::size_t>(count) * sizeOf(type);
    for (int peer = 0; peer < state_.size; ++peer) {
      const Slot &from = requireSameSize(peer, count, type, "contributes");
      std::memcpy(static_cast<char *>(recv) + peer * bytes, from.send, bytes);
    }
    state_.barrier(rank_, "all-gather", errorContext());
  }

  void allReduceSum(void *data, std::int64_t count, DataType type) override {
    publish({data, nullptr, nullptr, count, type, 0, "all-reduce"});
    std::size_t bytes = static_cast<std::size_t>(count) * sizeOf(type);
    std::vector<char> sum(bytes);
    for (int peer = 0; peer < state_.size; ++peer) {
      const Slot &from = requireSameSize(peer, count, type, "reduces");
      if (peer == 0)
        std::memcpy(sum.data(), from.send, bytes);
      else
        sumInto(type, sum.data(), from.send, count);
    }
    // Peers may still be reading `data`; overwrite it only after barrier B.
    state_.barrier(rank_, "all-reduce", errorContext());
    std::memcpy(data, sum.data(), bytes);
    state_.barrier(rank_, "all-reduce", errorContext());
  }

  void broadcast(void *data, std::int64_t count, DataType type,
                 int root) override {
    publish({data, data, nullptr, count, type, root, "broadcast"});
    const Slot &from = state_.slots[root];
    if (from.count != count || from.root != root)
      finishWithError(
          "broadcast: root " + std::to_string(from.root) + " sends " +
          std::to_string(from.count) + " elements but this rank expects " +
          std::to_string(count) + " from root " + std::to_string(root));
    if (rank_ != root)
      std::memcpy(data, from.send,
                  static_cast<std::size_t>(count) * sizeOf(type));
    state_.barrier(rank_, "broadcast", errorContext());
  }

  void barrier() override { state_.barrier(rank_, "barrier", errorContext()); }

private:
  /// Publishes this rank's buffers and waits until every peer did.
  void publish(const Slot &slot) {
    state_.slots[rank_] = slot;
    state_.barrier(rank_, slot.op, errorContext());
  }

  /// `peer`'s published slot for a collective where every rank passes the
  /// same number of elements of the same type; a mismatch is an error.
  const Slot &requireSameSize(int peer, std::int64_t count, DataType type,
                              const char *verb) {
    const Slot &from = state_.slots[peer];
    if (from.count != count || from.type != type)
      finishWithError(std::string(from.op) + ": rank " + std::to_string(peer) +
                      " " + verb + " " + std::to_string(from.count) + " " +
                      nameOf(from.type) + " but this rank " +
                      std::to_string(count) + " " + nameOf(type));
    return from;
  }

  /// A mismatch between ranks: release the peers, then throw.
  [[noreturn]] void finishWithError(const std::string &message) {
    state_.abort("rank " + std::to_string(rank_) + ": " + message, rank_);
    fail(errorContext(), message);
  }

  InProcessGroup::State &state_;
  int rank_;
};

} // namespace

InProcessGroup::InProcessGroup(int size, std::chrono::milliseconds timeout)
    : state_(std::make_unique<State>()) {
  if (size < 1)
    fail({}, "an in-process group needs at least one rank, got ", size);
  state_->size = size;
  state_->timeout = timeout;
  state_->slots.resize(size);
  for (int rank = 0; rank < size; ++rank)
    state_->communicators.push_back(
        std::make_unique<InProcessCommunicator>(*state_, rank));
}

InProcessGroup::~InProcessGroup() = default;

int InProcessGroup::size() const { return state_->size; }

Communicator &InProcessGroup::communicator(int rank) {
  if (rank < 0 || rank >= state_->size)
    fail({}, "rank ", rank, " is not in the group of ", state_->size);
  return *state_->communicators[rank];
}

void InProcessGroup::abort(const std::string &reason) {
  state_->abort(reason, -1);
}

void InProcessGroup::run(int size,
                         const std::function<void(Communicator &)> &body,
                         std::chrono::milliseconds timeout) {
  InProcessGroup group(size, timeout);
  std::vector<std::exception_ptr> errors(size);
  std::vector<std::thread> threads;
  threads.reserve(size);
  for (int rank = 0; rank < size; ++rank) {
    threads.emplace_back([&, rank] {
      try {
        body(group.communicator(rank));
      } catch (const std::exception &error) {
        errors[rank] = std::current_exception();
        group.state_->abort(std::string("rank ") + std::to_string(rank) +
                                " failed: " + error.what(),
                            rank);
      }
    });
  }
  for (std::thread &thread : threads)
    thread.join();
  // Prefer the root cause: the rank that aborted the group first.
  int culprit = group.state_->abortingRank;
  if (culprit >= 0 && errors[culprit])
    std::rethrow_exception(errors[culprit]);
  for (const std::exception_ptr &error : errors)
    if (error)
      std::rethrow_exception(error);
}
