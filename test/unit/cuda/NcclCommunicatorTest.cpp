//===- NcclCommunicatorTest.cpp - the NCCL backend of Communicator -------===//
//
// One rank per GPU: on a one-GPU machine a one-rank group (the all-to-all
// is then this rank's send to itself through NCCL). Multi-GPU runs go
// through the same code with an MPI bootstrap.
//
//===----------------------------------------------------------------------===//

#include "CudaTestSupport.h"

#include "laer/runtime/comm/InProcessCommunicator.h"
#include "laer/runtime/cuda/NcclCommunicator.h"

using namespace laer::rt;
using namespace laer::rt::cuda;
using namespace laer::test;

namespace {

TEST(NcclCommunicator, CollectivesOnOneGpu) {
  LAER_REQUIRE_GPU();
  FreshRandom random;
  SCOPED_TRACE(random.seed);
  InProcessGroup::run(1, [&](Communicator &bootstrap) {
    NcclCommunicator tokens(bootstrap, 0);
    // A second communicator with its own stream: the parameter traffic.
    NcclCommunicator parameters(bootstrap, 0);
    EXPECT_EQ(tokens.backend(), "nccl");
    EXPECT_EQ(tokens.size(), 1);
    EXPECT_NE(tokens.stream(), parameters.stream());

    // All-to-all with offsets: 5 elements from offset 3 land at offset 2.
    std::vector<float> send = random.uniform(10);
    DeviceBuffer<float> dSend(10), dRecv(8);
    dSend.upload(send);
    dRecv.poison();
    AllToAllSizes sizes{{5}, {3}, {5}, {2}};
    auto handle = tokens.startAllToAllV(dSend.data(), dRecv.data(), sizes,
                                        DataType::Float32);
    // The parameter communicator works while the token transfer is in
    // flight.
    std::vector<float> shard = random.uniform(6);
    DeviceBuffer<float> dShard(6), dGathered(6);
    dShard.upload(shard);
    parameters.allGather(dShard.data(), dGathered.data(), 6, DataType::Float32);
    handle->wait();
    std::vector<float> received = dRecv.download();
    for (int i = 0; i < 5; ++i)
      EXPECT_EQ(received[2 + i], send[3 + i]);
    EXPECT_EQ(dGathered.download(), shard);

    DeviceBuffer<double> sum(4);
    std::vector<double> values = {1.5, -2.0, 3.25, 0.0};
    sum.upload(values);
    tokens.allReduceSum(sum.data(), 4, DataType::Float64);
    EXPECT_EQ(sum.download(), values);
    tokens.broadcast(sum.data(), 4, DataType::Float64, 0);
    tokens.barrier();

    AllToAllSizes wrong{{1, 1}, {0, 1}, {1, 1}, {0, 1}};
    EXPECT_THROW(tokens.startAllToAllV(dSend.data(), dRecv.data(), wrong,
                                       DataType::Float32),
                 RuntimeError);
  });
}

} // namespace
