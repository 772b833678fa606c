//===- MpiCommunicator.cpp - collectives between MPI processes ------------===//

#include "laer/runtime/comm/MpiCommunicator.h"

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

using namespace laer::rt;

namespace {

MPI_Datatype mpiType(DataType type) {
  switch (type) {
  case DataType::Float32:
    return MPI_FLOAT;
  case DataType::Float64:
    return MPI_DOUBLE;
  case DataType::Int32:
    return MPI_INT32_T;
  case DataType::Int64:
    return MPI_INT64_T;
  case DataType::Byte:
    return MPI_BYTE;
  }
  return MPI_BYTE;
}

/// MPI-3 counts are ints; larger transfers need the MPI-4 "_c" calls,
/// which Debian 12's Open MPI 4.1 does not have.
int toMpiCount(std::int64_t value, const ErrorContext &context,
               const char *what) {
  if (value < 0 || value > INT_MAX)
    fail(context, what, " of ", value,
         " elements does not fit an MPI int count");
  return static_cast<int>(value);
}

class MpiHandle : public CommHandle {
public:
  MpiHandle(const MpiCommunicator &comm, const char *op)
      : comm_(comm), op_(op) {}
  ~MpiHandle() override {
    if (request != MPI_REQUEST_NULL) {
      // Never throw from a destructor; a failure here was already
      // reported, or will be by the next collective.
      try {
        wait();
      } catch (...) {
      }
    }
  }
  void wait() override {
    if (request != MPI_REQUEST_NULL)
      comm_.waitFor(request, op_);
  }

  MPI_Request request = MPI_REQUEST_NULL;
  // Non-blocking MPI reads the count arrays until completion.
  std::vector<int> sendCounts, sendOffsets, recvCounts, recvOffsets;

private:
  const MpiCommunicator &comm_;
  const char *op_;
};

} // namespace

MpiRuntime::MpiRuntime(int *argc, char ***argv) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (initialized)
    fail({}, "MPI is already initialized: create one MpiRuntime per process");
  int provided = 0;
  if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) !=
      MPI_SUCCESS)
    fail({}, "MPI_Init_thread failed");
  // Errors on MPI_COMM_WORLD (and communicators derived from it) return
  // codes instead of aborting without a word.
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
}

MpiRuntime::~MpiRuntime() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized)
    MPI_Finalize();
}

void MpiRuntime::abortJob(const std::string &message, int code) {
  std::fprintf(stderr, "laer: %s\n", message.c_str());
  std::fflush(stderr);
  MPI_Abort(MPI_COMM_WORLD, code);
  std::_Exit(code);
}

MpiCommunicator::MpiCommunicator(MPI_Comm parent,
                                 std::chrono::milliseconds timeout)
    : timeout_(timeout) {
  check(MPI_Comm_dup(parent, &comm_), "MPI_Comm_dup");
  MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
  check(MPI_Comm_dup(parent, &probe_), "MPI_Comm_dup");
  MPI_Comm_set_errhandler(probe_, MPI_ERRORS_RETURN);
  MPI_Comm_rank(comm_, &rank_);
  MPI_Comm_size(comm_, &size_);
}

MpiCommunicator::~MpiCommunicator() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (comm_ != MPI_COMM_NULL && !finalized)
    MPI_Comm_free(&comm_);
  if (probe_ != MPI_COMM_NULL && !finalized)
    MPI_Comm_free(&probe_);
}

MpiCommunicator::MachineRanks MpiCommunicator::machineRanks() const {
  MPI_Comm machine = MPI_COMM_NULL;
  check(MPI_Comm_split_type(comm_, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL,
                            &machine),
        "MPI_Comm_split_type");
  MachineRanks ranks;
  MPI_Comm_rank(machine, &ranks.index);
  MPI_Comm_size(machine, &ranks.count);
  MPI_Comm_free(&machine);
  return ranks;
}

void MpiCommunicator::check(int code, const char *op) const {
  if (code == MPI_SUCCESS)
    return;
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(code, text, &length);
  fail(errorContext(), op, " failed: ", std::string(text, length));
}

void MpiCommunicator::waitFor(MPI_Request &request, const char *op) const {
  auto deadline = std::chrono::steady_clock::now() + timeout_;
  for (long polls = 0;; ++polls) {
    int done = 0;
    check(MPI_Test(&request, &done, MPI_STATUS_IGNORE), op);
    if (done)
      return;
    // Spin briefly for latency, then yield the core: ranks are often
    // oversubscribed on CPU machines.
    if (polls > 1000)
      std::this_thread::sleep_for(std::chrono::microseconds(20));
    if (std::chrono::steady_clock::now() > deadline) {
      std::string silent = silentPeers();
      if (silent.empty())
        fail(errorContext(), op, " did not complete within ", timeout_.count(),
             " ms: a peer rank probably died or skipped the collective");
      fail(errorContext(), op, " did not complete within ", timeout_.count(),
           " ms; no word from ", silent, " (stopped, dead or stuck elsewhere)");
    }
  }
}

std::string MpiCommunicator::silentPeers() const {
  // The survivors of a stalled collective pass their deadlines about
  // together; a window of a quarter of the timeout (2 to 10 s) covers how
  // far apart.
  auto window = std::clamp<std::chrono::milliseconds>(
      timeout_ / 4, std::chrono::seconds(2), std::chrono::seconds(10));
  constexpr int kAliveTag = 7;
  int ping = rank_;
  std::vector<int> heard(size_, -1);
  std::vector<MPI_Request> receives(size_, MPI_REQUEST_NULL),
      sends(size_, MPI_REQUEST_NULL);
  for (int peer = 0; peer < size_; ++peer) {
    if (peer == rank_)
      continue;
    MPI_Irecv(&heard[peer], 1, MPI_INT, peer, kAliveTag, probe_,
              &receives[peer]);
    MPI_Isend(&ping, 1, MPI_INT, peer, kAliveTag, probe_, &sends[peer]);
  }
  auto end = std::chrono::steady_clock::now() + window;
  std::vector<bool> answered(size_, false);
  answered[rank_] = true;
  int missing = size_ - 1;
  while (missing > 0 && std::chrono::steady_clock::now() < end) {
    for (int peer = 0; peer < size_; ++peer) {
      if (answered[peer])
        continue;
      int done = 0;
      MPI_Test(&receives[peer], &done, MPI_STATUS_IGNORE);
      if (done) {
        answered[peer] = true;
        --missing;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  std::string silent;
  for (int peer = 0; peer < size_; ++peer)
    if (!answered[peer])
      silent += (silent.empty() ? "rank " : ", rank ") + std::to_string(peer);
  // The requests to silent peers stay pending: the caller fails and the
  // job is aborted.
  return silent;
}

std::unique_ptr<CommHandle>
MpiCommunicator::startAllToAllV(const void *send, void *recv,
                                const AllToAllSizes &sizes, DataType type) {
  auto handle = std::make_unique<MpiHandle>(*this, "all-to-all");
  ErrorContext context = errorContext();
  for (int peer = 0; peer < size_; ++peer) {
    handle->sendCounts.push_back(
        toMpiCount(sizes.sendCounts[peer], context, "all-to-all send"));
    handle->sendOffsets.push_back(
        toMpiCount(sizes.sendOffsets[peer], context, "all-to-all offset"));
    handle->recvCounts.push_back(
        toMpiCount(sizes.recvCounts[peer], context, "all-to-all receive"));
    handle->recvOffsets.push_back(
        toMpiCount(sizes.recvOffsets[peer], context, "all-to-all offset"));
  }
  if (size_ == 1) {
    // One process: the exchange is a copy (MPI would copy through its
    // datatype engine); the handle is already complete.
    std::size_t bytes = sizeOf(type);
    if (sizes.sendCounts[0] != sizes.recvCounts[0])
      fail(context, "all-to-all with itself: sends ", sizes.sendCounts[0],
           " elements, receives ", sizes.recvCounts[0]);
    std::memmove(static_cast<char *>(recv) + sizes.recvOffsets[0] * bytes,
                 static_cast<const char *>(send) + sizes.sendOffsets[0] * bytes,
                 static_cast<std::size_t>(sizes.sendCounts[0]) * bytes);
    return handle;
  }
  check(MPI_Ialltoallv(send, handle->sendCounts.data(),
                       handle->sendOffsets.data(), mpiType(type), recv,
                       handle->recvCounts.data(), handle->recvOffsets.data(),
                       mpiType(type), comm_, &handle->request),
        "all-to-all");
  return handle;
}

void MpiCommunicator::allGather(const void *send, void *recv,
                                std::int64_t count, DataType type) {
  MPI_Request request;
  int n = toMpiCount(count, errorContext(), "all-gather");
  if (size_ == 1) {
    if (send != recv)
      std::memmove(recv, send, static_cast<std::size_t>(n) * sizeOf(type));
    return;
  }
  check(MPI_Iallgather(send, n, mpiType(type), recv, n, mpiType(type), comm_,
                       &request),
        "all-gather");
  waitFor(request, "all-gather");
}

void MpiCommunicator::allReduceSum(void *data, std::int64_t count,
                                   DataType type) {
  // Reduce at rank 0, then broadcast: every rank gets the same bits, which
  // MPI_Allreduce does not promise. Replicated parameters must not drift.
  int n = toMpiCount(count, errorContext(), "all-reduce");
  if (size_ == 1)
    return; // the sum over one process is its own data
  MPI_Request request;
  const void *send = rank_ == 0 ? MPI_IN_PLACE : data;
  void *recv = rank_ == 0 ? data : nullptr;
  check(MPI_Ireduce(send, recv, n, mpiType(type), MPI_SUM, 0, comm_, &request),
        "all-reduce");
  waitFor(request, "all-reduce");
  broadcast(data, count, type, 0);
}

void MpiCommunicator::broadcast(void *data, std::int64_t count, DataType type,
                                int root) {
  MPI_Request request;
  int n = toMpiCount(count, errorContext(), "broadcast");
  if (size_ == 1)
    return;
  check(MPI_Ibcast(data, n, mpiType(type), root, comm_, &request), "broadcast");
  waitFor(request, "broadcast");
}

void MpiCommunicator::barrier() {
  if (size_ == 1)
    return;
  MPI_Request request;
  check(MPI_Ibarrier(comm_, &request), "barrier");
  waitFor(request, "barrier");
}
