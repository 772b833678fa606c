//===- CommunicatorConformance.cpp - one suite for every backend ----------===//

#include "CommunicatorConformance.h"

#include <sstream>

using namespace laer;
using namespace laer::rt;

namespace {

struct Failures {
  int rank;
  std::vector<std::string> list;
  template <typename... Parts> void add(Parts &&...parts) {
    std::ostringstream out;
    out << "rank " << rank << ": ";
    (out << ... << parts);
    list.push_back(out.str());
  }
};

/// Elements rank `from` sends to rank `to`: varies by pair, zero for some.
std::int64_t pairCount(int from, int to) { return (from * 3 + to * 5) % 4; }

float pairValue(int from, int to, std::int64_t i) {
  return static_cast<float>(from * 1000 + to * 100 + i);
}

void checkAllToAll(Communicator &comm, Failures &failures) {
  int n = comm.size(), me = comm.rank();
  std::vector<std::int64_t> sendCounts(n), recvCounts(n);
  for (int peer = 0; peer < n; ++peer) {
    sendCounts[peer] = pairCount(me, peer);
    recvCounts[peer] = pairCount(peer, me);
  }
  AllToAllSizes sizes = AllToAllSizes::packed(sendCounts, recvCounts);
  // Leave a gap between receive blocks: offsets need not be packed.
  for (int peer = 0; peer < n; ++peer)
    sizes.recvOffsets[peer] += peer;
  std::vector<float> send(sizes.totalSend());
  for (int peer = 0; peer < n; ++peer)
    for (std::int64_t i = 0; i < sendCounts[peer]; ++i)
      send[sizes.sendOffsets[peer] + i] = pairValue(me, peer, i);
  std::vector<float> recv(sizes.totalRecv() + n, -1.0f);
  comm.allToAllV(std::span<const float>(send), std::span<float>(recv), sizes);
  for (int peer = 0; peer < n; ++peer)
    for (std::int64_t i = 0; i < recvCounts[peer]; ++i)
      if (recv[sizes.recvOffsets[peer] + i] != pairValue(peer, me, i))
        failures.add("all-to-all element ", i, " from rank ", peer, " is ",
                     recv[sizes.recvOffsets[peer] + i], ", expected ",
                     pairValue(peer, me, i));
}

void checkOverlappedAllToAlls(Communicator &comm, Failures &failures) {
  // Two transfers in flight at once, waited in reverse order.
  int n = comm.size(), me = comm.rank();
  std::vector<std::int64_t> ones(n, 1), twos(n, 2);
  AllToAllSizes a = AllToAllSizes::packed(ones, ones);
  AllToAllSizes b = AllToAllSizes::packed(twos, twos);
  std::vector<std::int64_t> sendA(n), recvA(n), sendB(2 * n), recvB(2 * n);
  for (int peer = 0; peer < n; ++peer) {
    sendA[peer] = me * 10 + peer;
    sendB[2 * peer] = -(me * 10 + peer);
    sendB[2 * peer + 1] = me;
  }
  auto first =
      comm.startAllToAllV(sendA.data(), recvA.data(), a, DataType::Int64);
  auto second =
      comm.startAllToAllV(sendB.data(), recvB.data(), b, DataType::Int64);
  second->wait();
  first->wait();
  for (int peer = 0; peer < n; ++peer) {
    if (recvA[peer] != peer * 10 + me)
      failures.add("overlapped all-to-all A from ", peer, " got ", recvA[peer]);
    if (recvB[2 * peer] != -(peer * 10 + me) || recvB[2 * peer + 1] != peer)
      failures.add("overlapped all-to-all B from ", peer, " got ",
                   recvB[2 * peer], ", ", recvB[2 * peer + 1]);
  }
}

void checkAllGather(Communicator &comm, Failures &failures) {
  int n = comm.size(), me = comm.rank();
  std::vector<std::int64_t> mine = {me, me * me, -me};
  std::vector<std::int64_t> all =
      comm.allGather(std::span<const std::int64_t>(mine));
  if (all.size() != static_cast<std::size_t>(3 * n))
    return failures.add("all-gather returned ", all.size(), " elements");
  for (int peer = 0; peer < n; ++peer)
    if (all[3 * peer] != peer || all[3 * peer + 1] != peer * peer ||
        all[3 * peer + 2] != -peer)
      failures.add("all-gather block of rank ", peer, " is wrong");
}

void checkAllReduce(Communicator &comm, Failures &failures) {
  int n = comm.size(), me = comm.rank();
  // Exact in floating point: small integers.
  std::vector<double> values = {1.0, double(me), double(me * me)};
  comm.allReduceSum(std::span<double>(values));
  double sumRanks = n * (n - 1) / 2.0;
  double sumSquares = (n - 1) * n * (2.0 * n - 1) / 6.0;
  if (values[0] != n || values[1] != sumRanks || values[2] != sumSquares)
    failures.add("all-reduce gave ", values[0], ", ", values[1], ", ",
                 values[2]);
  // Inexact sums must still be bit-identical on every rank.
  std::vector<float> noisy = {0.1f * (me + 1), 1e-8f * me + 1.0f / 3.0f};
  comm.allReduceSum(std::span<float>(noisy));
  std::vector<float> everyone = comm.allGather(std::span<const float>(noisy));
  for (int peer = 0; peer < n; ++peer)
    if (everyone[2 * peer] != noisy[0] || everyone[2 * peer + 1] != noisy[1])
      failures.add("all-reduce result on rank ", peer,
                   " differs from this rank's");
}

void checkBroadcast(Communicator &comm, Failures &failures) {
  int n = comm.size(), me = comm.rank();
  for (int root = 0; root < n; ++root) {
    std::vector<std::int32_t> data = {me == root ? 42 + root : -1,
                                      me == root ? root : -1};
    comm.broadcast(std::span<std::int32_t>(data), root);
    if (data[0] != 42 + root || data[1] != root)
      failures.add("broadcast from root ", root, " gave ", data[0], ", ",
                   data[1]);
  }
  comm.barrier();
}

void checkLocalErrors(Communicator &comm, Failures &failures) {
  // A malformed size table is rejected before anything is sent, on every
  // rank, so no peer is left waiting.
  int n = comm.size();
  std::vector<std::int64_t> counts(n, 4);
  AllToAllSizes sizes = AllToAllSizes::packed(counts, counts);
  std::vector<float> send(2), recv(4 * n);
  try {
    comm.allToAllV(std::span<const float>(send), std::span<float>(recv), sizes);
    failures.add("all-to-all with a too-small send buffer did not throw");
  } catch (const RuntimeError &error) {
    std::string message = error.what();
    if (message.find("outside the 2-element buffer") == std::string::npos ||
        message.find("rank " + std::to_string(comm.rank())) != 0)
      failures.add("unexpected error message: ", message);
  }
}

} // namespace

std::vector<std::string> laer::test::checkCommunicator(Communicator &comm) {
  Failures failures{comm.rank(), {}};
  checkAllToAll(comm, failures);
  checkOverlappedAllToAlls(comm, failures);
  checkAllGather(comm, failures);
  checkAllReduce(comm, failures);
  checkBroadcast(comm, failures);
  checkLocalErrors(comm, failures);
  return failures.list;
}
