//===- TextData.h - byte-level training data from text files ---*- C++ -*-===//

#ifndef LAER_RUNTIME_MODEL_TEXTDATA_H
#define LAER_RUNTIME_MODEL_TEXTDATA_H

#include <cstdint>
#include <string>
#include <vector>

namespace laer::rt {

/// A byte-level corpus (vocabulary 256) read from text files, cut into
/// training windows. Every rank holds the same corpus and takes its own
/// share of each global batch, so N ranks see exactly the sequences one
/// rank would.
class TextData {
public:
  /// Reads `paths` (files, or directories searched recursively for files
  /// ending in `suffix`), concatenated in sorted path order, up to
  /// `maxBytes`. Throws RuntimeError if nothing could be read.
  static TextData fromPaths(const std::vector<std::string> &paths,
                            const std::string &suffix,
                            std::int64_t maxBytes);

  std::int64_t size() const { return static_cast<std::int64_t>(bytes_.size()); }

  /// Global batch `step`: `batch` windows of `sequence + 1` bytes at
  /// seeded pseudo-random offsets; this rank's share is windows
  /// [rank * batch / ranks, (rank + 1) * batch / ranks). Fills `ids` and
  /// `targets` (the next byte) with `sequence` tokens per window.
  void batch(long step, std::uint64_t seed, int batch, int sequence, int rank,
             int ranks, std::vector<std::int32_t> &ids,
             std::vector<std::int32_t> &targets) const;

private:
  std::vector<std::uint8_t> bytes_;
};

} // namespace laer::rt

#endif // LAER_RUNTIME_MODEL_TEXTDATA_H
