//===- MpiCommunicator.h - collectives between MPI processes ----*- C++ -*-===//
//
// The multi-process (and multi-node) CPU backend: one rank per process,
// started by `mpirun -np N`. Errors never abort silently: the communicator
// uses MPI_ERRORS_RETURN and turns every failure into a RuntimeError naming
// the rank, layer and operation, and every wait has a deadline so that a
// dead peer is reported instead of hanging the run.
//
//===----------------------------------------------------------------------===//

#ifndef LAER_RUNTIME_COMM_MPICOMMUNICATOR_H
#define LAER_RUNTIME_COMM_MPICOMMUNICATOR_H

#include "laer/runtime/comm/Communicator.h"

#include <chrono>
#include <mpi.h>

namespace laer::rt {

/// MPI_Init_thread on construction, MPI_Finalize on destruction.
class MpiRuntime {
public:
  MpiRuntime(int *argc, char ***argv);
  ~MpiRuntime();
  MpiRuntime(const MpiRuntime &) = delete;
  MpiRuntime &operator=(const MpiRuntime &) = delete;

  /// Ends every process of the job with `code` after printing `message` on
  /// this rank's stderr: the way out when a rank cannot continue and its
  /// peers may be blocked in a collective.
  [[noreturn]] static void abortJob(const std::string &message, int code = 1);
};

class MpiCommunicator : public Communicator {
public:
  /// Duplicates `parent` so laer's traffic never matches a user's messages.
  explicit MpiCommunicator(
      MPI_Comm parent = MPI_COMM_WORLD,
      std::chrono::milliseconds timeout = std::chrono::seconds(300));
  ~MpiCommunicator() override;
  MpiCommunicator(const MpiCommunicator &) = delete;
  MpiCommunicator &operator=(const MpiCommunicator &) = delete;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string backend() const override { return "mpi"; }

  // The typed conveniences of the base class stay visible.
  using Communicator::allGather;
  using Communicator::allReduceSum;
  using Communicator::broadcast;

  std::unique_ptr<CommHandle> startAllToAllV(const void *send, void *recv,
                                             const AllToAllSizes &sizes,
                                             DataType type) override;
  void allGather(const void *send, void *recv, std::int64_t count,
                 DataType type) override;
  void allReduceSum(void *data, std::int64_t count, DataType type) override;
  void broadcast(void *data, std::int64_t count, DataType type,
                 int root) override;
  void barrier() override;

  MPI_Comm handle() const { return comm_; }

  /// This rank's index among the ranks on its machine, and their count
  /// (the ranks sharing memory with it): rank i of a machine takes its
  /// GPU i. Collective.
  struct MachineRanks {
    int index = 0, count = 1;
  };
  MachineRanks machineRanks() const;

  /// Completes `request`, throwing RuntimeError if MPI reports an error or
  /// the deadline passes (a peer died or skipped the collective).
  void waitFor(MPI_Request &request, const char *op) const;
  /// Throws RuntimeError naming `op` if `code` is not MPI_SUCCESS.
  void check(int code, const char *op) const;

private:
  /// After a deadline passed: every live rank pings every peer on probe_
  /// and listens for a window; the peers not heard from, as text ("rank 1,
  /// rank 3"; empty when all answered).
  std::string silentPeers() const;

  MPI_Comm comm_ = MPI_COMM_NULL;
  /// A second duplicate for silentPeers(): its pings never match laer's
  /// traffic.
  MPI_Comm probe_ = MPI_COMM_NULL;
  int rank_ = 0;
  int size_ = 1;
  std::chrono::milliseconds timeout_;
};

} // namespace laer::rt

#endif // LAER_RUNTIME_COMM_MPICOMMUNICATOR_H
