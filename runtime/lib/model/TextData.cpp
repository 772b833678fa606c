//===- TextData.cpp - byte-level training data from text files ------------===//

#include "laer/runtime/model/TextData.h"
#include "laer/runtime/Error.h"
#include "laer/runtime/fsep/ExpertShards.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>

using namespace laer::rt;

TextData TextData::fromPaths(const std::vector<std::string> &paths,
                             const std::string &suffix, std::int64_t maxBytes) {
  std::vector<std::filesystem::path> files;
  for (const std::string &path : paths) {
    std::error_code error;
    if (std::filesystem::is_directory(path, error)) {
      for (const auto &entry :
           std::filesystem::recursive_directory_iterator(path, error))
        if (entry.is_regular_file() && entry.path().string().ends_with(suffix))
          files.push_back(entry.path());
    } else if (std::filesystem::is_regular_file(path, error)) {
      files.push_back(path);
    } else {
      fail({}, "training data: '", path, "' is neither a file nor a directory");
    }
  }
  std::sort(files.begin(), files.end());
  TextData data;
  for (const auto &file : files) {
    if (static_cast<std::int64_t>(data.tokens_.size()) >= maxBytes)
      break;
    std::ifstream in(file, std::ios::binary);
    std::vector<std::uint8_t> content((std::istreambuf_iterator<char>(in)),
                                      std::istreambuf_iterator<char>());
    auto room = static_cast<std::size_t>(maxBytes) - data.tokens_.size();
    data.tokens_.insert(data.tokens_.end(), content.begin(),
                        content.begin() + std::min(room, content.size()));
  }
  if (data.tokens_.size() < 1024)
    fail({}, "training data: only ", data.tokens_.size(),
         " bytes read from the given paths; need at least 1024");
  return data;
}

TextData TextData::fromTokenFile(const std::string &path, int bits,
                                 std::int64_t vocab, std::int64_t maxTokens) {
  if (bits != 16 && bits != 32)
    fail({}, "token file '", path, "': ids must be 16 or 32 bits, got ", bits);
  // Ids are int32 in the batches.
  if (vocab < 2 || vocab > std::numeric_limits<std::int32_t>::max())
    fail({}, "token file '", path, "': vocabulary of ", vocab,
         " ids (2 to 2^31 - 1)");
  std::ifstream in(path, std::ios::binary);
  if (!in)
    fail({}, "cannot open token file '", path, "'");
  TextData data;
  data.vocab_ = vocab;
  unsigned char bytes[4];
  int width = bits / 8;
  while (static_cast<std::int64_t>(data.tokens_.size()) < maxTokens &&
         in.read(reinterpret_cast<char *>(bytes), width)) {
    std::uint32_t id = 0;
    for (int i = 0; i < width; ++i)
      id |= static_cast<std::uint32_t>(bytes[i]) << (8 * i);
    if (id >= static_cast<std::uint64_t>(vocab))
      fail({}, "token file '", path, "': token ", data.tokens_.size(), " is ",
           id, ", outside the vocabulary [0, ", vocab, ")");
    data.tokens_.push_back(static_cast<std::int32_t>(id));
  }
  if (in.gcount() != 0 && in.gcount() != width)
    fail({}, "token file '", path, "' ends in the middle of a ", bits,
         "-bit id");
  if (data.tokens_.size() < 2)
    fail({}, "token file '", path, "' holds fewer than 2 tokens");
  return data;
}

TextData TextData::slice(std::int64_t begin, std::int64_t end) const {
  if (begin < 0 || end < begin || end > size())
    fail({}, "corpus slice [", begin, ", ", end, ") outside its ", size(),
         " tokens");
  TextData part;
  part.vocab_ = vocab_;
  part.tokens_.assign(tokens_.begin() + begin, tokens_.begin() + end);
  return part;
}

void TextData::batch(long step, std::uint64_t seed, int batch, int sequence,
                     int rank, int ranks, std::vector<std::int32_t> &ids,
                     std::vector<std::int32_t> &targets, DataOrder order,
                     int microBatch, int microBatches) const {
  if (batch % ranks != 0)
    fail({rank, -1, step}, "batch of ", batch,
         " sequences does not split over ", ranks, " ranks");
  if (microBatches < 1 || (batch / ranks) % microBatches != 0 ||
      microBatch < 0 || microBatch >= microBatches)
    fail({rank, -1, step}, "the ", batch / ranks,
         " sequences of each rank's batch do not split into ", microBatches,
         " micro-batches (micro-batch ", microBatch, ")");
  std::int64_t span = size() - sequence - 1;
  std::int64_t windows = size() / (sequence + 1);
  if (order == DataOrder::Random ? span < 1 : windows < 1)
    fail({rank, -1, step}, "training data of ", size(),
         " tokens is shorter than a sequence of ", sequence,
         order == DataOrder::Random ? " plus 2" : " plus 1");
  int local = batch / ranks, part = local / microBatches;
  ids.resize(static_cast<std::size_t>(part) * sequence);
  targets.resize(ids.size());
  for (int w = 0; w < part; ++w) {
    int window = rank * local + microBatch * part + w;
    std::int64_t offset =
        order == DataOrder::Random
            ? static_cast<std::int64_t>(
                  uniformAt(seed, static_cast<std::uint64_t>(step), window) *
                  span)
            : ((static_cast<std::int64_t>(step) * batch + window) % windows) *
                  (sequence + 1);
    // part * sequence may pass 2^31 (both may be 2^24).
    std::size_t row = static_cast<std::size_t>(w) * sequence;
    for (int i = 0; i < sequence; ++i) {
      ids[row + i] = tokens_[offset + i];
      targets[row + i] = tokens_[offset + i + 1];
    }
  }
}
