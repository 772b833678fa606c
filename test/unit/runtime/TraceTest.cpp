//===- TraceTest.cpp - every rank's trace on one time origin --------------===//

#include "laer/runtime/io/Trace.h"
#include "laer/runtime/comm/InProcessCommunicator.h"

#include <gtest/gtest.h>

#include <cmath>
#include <thread>

using namespace laer::rt;

TEST(Tracer, AlignedRanksShareOneOrigin) {
  // Rank 1 starts its tracer 40 ms after rank 0 (as a rank that loads its
  // data later would). After alignOrigin, one interval that starts right
  // after a barrier on both ranks has (nearly) the same start time; an
  // event recorded before the alignment moved with the origin.
  std::vector<Tracer::Event> before(2), after(2);
  InProcessGroup::run(2, [&](Communicator &comm) {
    if (comm.rank() == 1)
      std::this_thread::sleep_for(std::chrono::milliseconds(40));
    Tracer tracer(comm.rank());
    tracer.record("early", "test", std::chrono::steady_clock::now(), 0);
    tracer.alignOrigin(comm);
    comm.barrier();
    auto start = std::chrono::steady_clock::now();
    tracer.record("together", "test", start, 1);
    before[comm.rank()] = tracer.events()[0];
    after[comm.rank()] = tracer.events()[1];
  });
  EXPECT_LT(std::abs(after[0].startMicros - after[1].startMicros), 20000.0)
      << "rank 0 at " << after[0].startMicros << " us, rank 1 at "
      << after[1].startMicros;
  for (int rank = 0; rank < 2; ++rank)
    EXPECT_LE(before[rank].startMicros, 0.0) << "rank " << rank;
  // Rank 0 waited for rank 1 in the alignment: its early event lies about
  // 40 ms before the shared origin.
  EXPECT_LT(before[0].startMicros, -30000.0);
}
