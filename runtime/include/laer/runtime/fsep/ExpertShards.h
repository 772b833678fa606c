//===- ExpertShards.h - FSEP storage of one layer's experts -----*- C++ -*-===//
//
// Every expert's parameters (the SwiGLU FFN's w1 [H, F], w3 [H, F] and
// w2 [F, H], flattened in that order) are cut into N equal contiguous
// shards, the last one zero-padded; rank r owns shard r of every expert,
// together with its gradient and AdamW moments. Nothing here ever holds a
// full expert: full weights exist only in the working set restored for a
// step (see FsepMoELayer).
//
//===----------------------------------------------------------------------===//

#ifndef LAER_RUNTIME_FSEP_EXPERTSHARDS_H
#define LAER_RUNTIME_FSEP_EXPERTSHARDS_H

#include "laer/runtime/comm/Communicator.h"

#include <cstdint>
#include <span>
#include <vector>

namespace laer::rt {

struct ExpertShape {
  std::int64_t hidden = 0; // H
  std::int64_t ffn = 0;    // F
  std::int64_t parameters() const { return 3 * hidden * ffn; }
  // Offsets of the three matrices in a flattened expert.
  std::int64_t w1Offset() const { return 0; }
  std::int64_t w3Offset() const { return hidden * ffn; }
  std::int64_t w2Offset() const { return 2 * hidden * ffn; }
};

/// Fails unless 3 H F E, every expert's parameters, fits a 64-bit size
/// (then so does every product of fewer of them).
void checkExpertStorage(const ExpertShape &shape, std::int64_t numExperts,
                        const ErrorContext &where);

class ExpertShards {
public:
  ExpertShards(ExpertShape shape, int numExperts, int numRanks, int rank);

  const ExpertShape &shape() const { return shape_; }
  int numExperts() const { return numExperts_; }
  int numRanks() const { return numRanks_; }
  int rank() const { return rank_; }
  /// ceil(P / N) elements, P = 3 * H * F.
  std::int64_t shardSize() const { return shardSize_; }
  /// N * shardSize(): a full expert including its padding.
  std::int64_t paddedSize() const { return shardSize_ * numRanks_; }

  std::span<float> params(int expert) { return slice(params_, expert); }
  std::span<const float> params(int expert) const {
    return slice(params_, expert);
  }
  std::span<float> grads(int expert) { return slice(grads_, expert); }
  std::span<const float> grads(int expert) const {
    return slice(grads_, expert);
  }
  // Whole-layer views (E * shardSize), for the optimizer.
  std::span<float> allParams() { return params_; }
  std::span<float> allGrads() { return grads_; }
  std::span<float> firstMoments() { return adamM_; }
  std::span<float> secondMoments() { return adamV_; }

  /// Fills this rank's shards so that element i of expert e is a function
  /// of (seed, e, i) only: the full weights are the same for every N.
  /// Uniform in [-scale, scale).
  void initialize(std::uint64_t seed, float scale);
  /// Takes this rank's shards from full weights `[E][P]`.
  void loadFull(std::span<const float> full, const ErrorContext &context);
  /// Takes this rank's shards of the AdamW moments from full `[E][P]`
  /// tensors (re-sharding a checkpoint written by another number of ranks).
  void loadFullMoments(std::span<const float> firstMoment,
                       std::span<const float> secondMoment,
                       const ErrorContext &context);
  /// Replaces this rank's shard of one expert (e.g. from a checkpoint).
  void loadShard(int expert, std::span<const float> shard,
                 const ErrorContext &context);
  void zeroGrads();

  /// Collective: the full weights (or gradients) `[E][P]` on every rank.
  std::vector<float> gatherFullParams(Communicator &comm) const;
  std::vector<float> gatherFullGrads(Communicator &comm) const;

  /// Bytes this rank holds for the layer's experts: params, grads and two
  /// AdamW moments, i.e. 4 * E * shardSize() floats.
  std::int64_t bytesHeld() const;

private:
  std::span<float> slice(std::vector<float> &data, int expert) {
    return std::span<float>(data).subspan(expert * shardSize_, shardSize_);
  }
  std::span<const float> slice(const std::vector<float> &data,
                               int expert) const {
    return std::span<const float>(data).subspan(expert * shardSize_,
                                                shardSize_);
  }
  std::vector<float> gatherFull(const std::vector<float> &local,
                                Communicator &comm) const;
  /// Cuts this rank's shards out of full `[E][P]` data into `target`.
  void cutShards(std::span<const float> full, std::vector<float> &target,
                 const ErrorContext &context) const;

  ExpertShape shape_;
  int numExperts_, numRanks_, rank_;
  std::int64_t shardSize_;
  std::vector<float> params_, grads_, adamM_, adamV_;
};

/// Counter-based random numbers: value i of stream (seed, a) without state,
/// so every rank can generate exactly its slice of a global tensor.
float uniformAt(std::uint64_t seed, std::uint64_t stream, std::uint64_t index);

} // namespace laer::rt

#endif // LAER_RUNTIME_FSEP_EXPERTSHARDS_H
