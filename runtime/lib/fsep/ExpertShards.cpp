//===- ExpertShards.cpp - FSEP storage of one layer's experts -------------===//

#include "laer/runtime/fsep/ExpertShards.h"
#include "laer/runtime/Limits.h"

#include <algorithm>
#include <limits>

using namespace laer::rt;

float laer::rt::uniformAt(std::uint64_t seed, std::uint64_t stream,
                          std::uint64_t index) {
  // splitmix64 finaliser over a combination of the three inputs.
  std::uint64_t z = seed * 0x9e3779b97f4a7c15ull ^
                    (stream + 0x632be59bd9b4e019ull) * 0xbf58476d1ce4e5b9ull ^
                    (index + 1) * 0x94d049bb133111ebull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z ^= z >> 31;
  // 24 random bits -> [0, 1), exactly representable in float.
  return static_cast<float>(z >> 40) * (1.0f / 16777216.0f);
}

void laer::rt::checkExpertStorage(const ExpertShape &shape,
                                  std::int64_t numExperts,
                                  const ErrorContext &where) {
  // 3 H F per expert, E of them: a shape whose product wraps would give
  // tiny shards and kernels running past them.
  const char *what = "the experts' parameters (3 x H x F x E)";
  std::size_t all = checkedMultiply(
      checkedMultiply(checkedMultiply(3, shape.hidden, where, what), shape.ffn,
                      where, what),
      numExperts, where, what);
  if (all > static_cast<std::size_t>(std::numeric_limits<std::int64_t>::max()))
    fail(where, what, ": ", all, " elements do not fit a 64-bit size");
}

ExpertShards::ExpertShards(ExpertShape shape, int numExperts, int numRanks,
                           int rank)
    : shape_(shape), numExperts_(numExperts), numRanks_(numRanks), rank_(rank) {
  if (shape.hidden < 1 || shape.ffn < 1 || numExperts < 1 || numRanks < 1 ||
      numRanks > kMaxRanks || rank < 0 || rank >= numRanks)
    fail({rank, -1, -1}, "expert storage needs H, F, E >= 1, N in [1, ",
         kMaxRanks, "] and a rank in [0, N), got H = ", shape.hidden,
         ", F = ", shape.ffn, ", E = ", numExperts, ", N = ", numRanks,
         ", rank = ", rank);
  checkExpertStorage(shape, numExperts, {rank, -1, -1});
  shardSize_ = (shape.parameters() + numRanks - 1) / numRanks;
  auto total = static_cast<std::size_t>(numExperts * shardSize_);
  params_.assign(total, 0.0f);
  grads_.assign(total, 0.0f);
  adamM_.assign(total, 0.0f);
  adamV_.assign(total, 0.0f);
}

void ExpertShards::initialize(std::uint64_t seed, float scale) {
  std::int64_t begin = rank_ * shardSize_;
  std::int64_t end = std::min(begin + shardSize_, shape_.parameters());
  for (int expert = 0; expert < numExperts_; ++expert) {
    std::span<float> shard = params(expert);
    std::fill(shard.begin(), shard.end(), 0.0f);
    for (std::int64_t i = begin; i < end; ++i)
      shard[i - begin] = scale * (2.0f * uniformAt(seed, expert, i) - 1.0f);
  }
}

void ExpertShards::cutShards(std::span<const float> full,
                             std::vector<float> &target,
                             const ErrorContext &context) const {
  auto expected = static_cast<std::size_t>(numExperts_ * shape_.parameters());
  if (full.size() != expected)
    fail(context, "full expert tensors have ", full.size(),
         " elements but E * 3 * H * F = ", expected);
  std::int64_t begin = rank_ * shardSize_;
  std::int64_t end = std::min(begin + shardSize_, shape_.parameters());
  std::fill(target.begin(), target.end(), 0.0f);
  for (int expert = 0; expert < numExperts_; ++expert)
    if (end > begin)
      std::copy(full.begin() + expert * shape_.parameters() + begin,
                full.begin() + expert * shape_.parameters() + end,
                target.begin() + expert * shardSize_);
}

void ExpertShards::loadFull(std::span<const float> full,
                            const ErrorContext &context) {
  cutShards(full, params_, context);
}

void ExpertShards::loadFullMoments(std::span<const float> firstMoment,
                                   std::span<const float> secondMoment,
                                   const ErrorContext &context) {
  cutShards(firstMoment, adamM_, context);
  cutShards(secondMoment, adamV_, context);
}

void ExpertShards::loadShard(int expert, std::span<const float> shard,
                             const ErrorContext &context) {
  if (expert < 0 || expert >= numExperts_)
    fail(context, "shard for expert ", expert, ", outside [0, ", numExperts_,
         ")");
  if (static_cast<std::int64_t>(shard.size()) != shardSize_)
    fail(context, "shard of expert ", expert, " has ", shard.size(),
         " elements but this rank's shards have ", shardSize_,
         " (3 * H * F = ", shape_.parameters(), " over ", numRanks_, " ranks)");
  std::copy(shard.begin(), shard.end(), params(expert).begin());
}

void ExpertShards::zeroGrads() { std::fill(grads_.begin(), grads_.end(), 0.f); }

std::vector<float> ExpertShards::gatherFull(const std::vector<float> &local,
                                            Communicator &comm) const {
  std::vector<float> gathered = comm.allGather(std::span<const float>(local));
  std::int64_t p = shape_.parameters();
  std::vector<float> full(static_cast<std::size_t>(numExperts_ * p));
  for (int owner = 0; owner < numRanks_; ++owner) {
    std::int64_t begin = owner * shardSize_;
    std::int64_t end = std::min(begin + shardSize_, p);
    for (int expert = 0; expert < numExperts_; ++expert)
      for (std::int64_t i = begin; i < end; ++i)
        full[expert * p + i] =
            gathered[(owner * numExperts_ + expert) * shardSize_ + i - begin];
  }
  return full;
}

std::vector<float> ExpertShards::gatherFullParams(Communicator &comm) const {
  return gatherFull(params_, comm);
}

std::vector<float> ExpertShards::gatherFullGrads(Communicator &comm) const {
  return gatherFull(grads_, comm);
}

std::int64_t ExpertShards::bytesHeld() const {
  return 4 * static_cast<std::int64_t>(params_.size()) * sizeof(float);
}
