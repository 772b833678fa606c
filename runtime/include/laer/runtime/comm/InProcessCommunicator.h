//===- InProcessCommunicator.h - ranks as threads of one process -*- C++
//-*-===//
//
// N ranks that share an address space: collectives copy between the ranks'
// buffers directly. Used by unit tests (no mpirun, no process start-up) and
// semantically identical to the MPI backend: both pass the same conformance
// suite.
//
//===----------------------------------------------------------------------===//

#ifndef LAER_RUNTIME_COMM_INPROCESSCOMMUNICATOR_H
#define LAER_RUNTIME_COMM_INPROCESSCOMMUNICATOR_H

#include "laer/runtime/comm/Communicator.h"

#include <chrono>
#include <functional>
#include <memory>

namespace laer::rt {

class InProcessGroup {
public:
  /// A group of `size` ranks. A collective that waits longer than
  /// `timeout` for its peers aborts the whole group.
  explicit InProcessGroup(
      int size, std::chrono::milliseconds timeout = std::chrono::seconds(60));
  ~InProcessGroup();
  InProcessGroup(const InProcessGroup &) = delete;
  InProcessGroup &operator=(const InProcessGroup &) = delete;

  int size() const;
  Communicator &communicator(int rank);

  /// Makes every pending and future collective of the group throw
  /// RuntimeError with `reason` (a rank failed; the others must not hang).
  void abort(const std::string &reason);

  /// Runs `body(communicator)` on `size` threads, one per rank, and waits
  /// for all. If any rank throws, the group is aborted so that the others
  /// return, and the first exception thrown is rethrown here.
  static void run(int size, const std::function<void(Communicator &)> &body,
                  std::chrono::milliseconds timeout = std::chrono::seconds(60));

  struct State;

private:
  std::unique_ptr<State> state_;
};

} // namespace laer::rt

#endif // LAER_RUNTIME_COMM_INPROCESSCOMMUNICATOR_H
