//===- Communicator.cpp - backend-independent communicator helpers --------===//

#include "laer/runtime/comm/Communicator.h"

#include <numeric>

using namespace laer::rt;

std::size_t laer::rt::sizeOf(DataType type) {
  switch (type) {
  case DataType::Float32:
  case DataType::Int32:
    return 4;
  case DataType::Float64:
  case DataType::Int64:
    return 8;
  case DataType::Byte:
    return 1;
  }
  return 1;
}

const char *laer::rt::nameOf(DataType type) {
  switch (type) {
  case DataType::Float32:
    return "float32";
  case DataType::Float64:
    return "float64";
  case DataType::Int32:
    return "int32";
  case DataType::Int64:
    return "int64";
  case DataType::Byte:
    return "byte";
  }
  return "?";
}

AllToAllSizes AllToAllSizes::packed(std::vector<std::int64_t> sendCounts,
                                    std::vector<std::int64_t> recvCounts) {
  AllToAllSizes sizes;
  sizes.sendOffsets.resize(sendCounts.size());
  sizes.recvOffsets.resize(recvCounts.size());
  std::exclusive_scan(sendCounts.begin(), sendCounts.end(),
                      sizes.sendOffsets.begin(), std::int64_t{0});
  std::exclusive_scan(recvCounts.begin(), recvCounts.end(),
                      sizes.recvOffsets.begin(), std::int64_t{0});
  sizes.sendCounts = std::move(sendCounts);
  sizes.recvCounts = std::move(recvCounts);
  return sizes;
}

std::int64_t AllToAllSizes::totalSend() const {
  return std::accumulate(sendCounts.begin(), sendCounts.end(), std::int64_t{0});
}

std::int64_t AllToAllSizes::totalRecv() const {
  return std::accumulate(recvCounts.begin(), recvCounts.end(), std::int64_t{0});
}

AllToAllSizes AllToAllSizes::reversed() const {
  return {recvCounts, recvOffsets, sendCounts, sendOffsets};
}

AllToAllSizes AllToAllSizes::withoutSelf(int rank) const {
  std::vector<std::int64_t> send = sendCounts, recv = recvCounts;
  if (rank < 0 || static_cast<std::size_t>(rank) >= send.size() ||
      static_cast<std::size_t>(rank) >= recv.size())
    fail({}, "all-to-all sizes: rank ", rank, " outside the ", send.size(),
         " ranks");
  send[rank] = recv[rank] = 0;
  return packed(std::move(send), std::move(recv));
}

AllToAllSizes AllToAllSizes::scaled(std::int64_t factor) const {
  AllToAllSizes sizes = *this;
  for (auto *values : {&sizes.sendCounts, &sizes.sendOffsets, &sizes.recvCounts,
                       &sizes.recvOffsets})
    for (std::int64_t &value : *values)
      value *= factor;
  return sizes;
}

void Communicator::checkSpan(std::size_t elements,
                             const std::vector<std::int64_t> &counts,
                             const std::vector<std::int64_t> &offsets,
                             const char *what) const {
  auto ranks = static_cast<std::size_t>(size());
  if (counts.size() != ranks || offsets.size() != ranks)
    fail(errorContext(), "all-to-all ", what, " sizes have ", counts.size(),
         " counts and ", offsets.size(), " offsets for ", ranks, " ranks");
  for (std::size_t peer = 0; peer < ranks; ++peer) {
    if (counts[peer] < 0 || offsets[peer] < 0 ||
        static_cast<std::size_t>(offsets[peer] + counts[peer]) > elements)
      fail(errorContext(), "all-to-all ", what, " range for rank ", peer,
           " (offset ", offsets[peer], ", count ", counts[peer],
           ") is outside the ", elements, "-element buffer");
  }
}
