//===- TextData.h - byte-level training data from text files ---*- C++ -*-===//

#ifndef LAER_RUNTIME_MODEL_TEXTDATA_H
#define LAER_RUNTIME_MODEL_TEXTDATA_H

#include <cstdint>
#include <string>
#include <vector>

namespace laer::rt {

/// How batches take windows from the corpus: at seeded pseudo-random
/// offsets, or one after the other (window i of step s is the corpus'
/// (s * batch + i)-th run of sequence + 1 tokens, wrapping around).
enum class DataOrder { Random, Sequential };

/// A token corpus cut into training windows: byte-level text (vocabulary
/// 256) or pre-tokenized files of little-endian uint16/uint32 ids. Every
/// rank holds the same corpus and takes its own share of each global batch,
/// so N ranks see exactly the sequences one rank would.
class TextData {
public:
  /// Reads `paths` (files, or directories searched recursively for files
  /// ending in `suffix`), concatenated in sorted path order, up to
  /// `maxBytes`. Throws RuntimeError if nothing could be read.
  static TextData fromPaths(const std::vector<std::string> &paths,
                            const std::string &suffix, std::int64_t maxBytes);

  /// Reads a pre-tokenized file of `bits` (16 or 32) little-endian ids,
  /// every one below `vocab`, up to `maxTokens`. Throws RuntimeError
  /// naming the first id out of range.
  static TextData fromTokenFile(const std::string &path, int bits,
                                std::int64_t vocab, std::int64_t maxTokens);

  std::int64_t size() const {
    return static_cast<std::int64_t>(tokens_.size());
  }
  /// Tokens [begin, end) as a corpus of their own (the same vocabulary):
  /// a held-out split.
  TextData slice(std::int64_t begin, std::int64_t end) const;
  /// 256 for text; the declared vocabulary for token files.
  std::int64_t vocab() const { return vocab_; }

  /// Global batch `step`: `batch` windows of `sequence + 1` tokens in
  /// `order`; this rank's share is windows
  /// [rank * batch / ranks, (rank + 1) * batch / ranks). Fills `ids` and
  /// `targets` (the next byte) with `sequence` tokens per window. With
  /// `microBatches` > 1, micro-batch `microBatch` of the rank's share: its
  /// windows in order, cut into that many equal parts (the micro-batches
  /// of a step together are the whole batch).
  void batch(long step, std::uint64_t seed, int batch, int sequence, int rank,
             int ranks, std::vector<std::int32_t> &ids,
             std::vector<std::int32_t> &targets,
             DataOrder order = DataOrder::Random, int microBatch = 0,
             int microBatches = 1) const;

private:
  std::vector<std::int32_t> tokens_;
  std::int64_t vocab_ = 256;
};

} // namespace laer::rt

#endif // LAER_RUNTIME_MODEL_TEXTDATA_H
