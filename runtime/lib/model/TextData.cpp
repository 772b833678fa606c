//===- TextData.cpp - byte-level training data from text files ------------===//

#include "laer/runtime/model/TextData.h"
#include "laer/runtime/Error.h"
#include "laer/runtime/ExpertShards.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>

using namespace laer::rt;

TextData TextData::fromPaths(const std::vector<std::string> &paths,
                             const std::string &suffix,
                             std::int64_t maxBytes) {
  std::vector<std::filesystem::path> files;
  for (const std::string &path : paths) {
    std::error_code error;
    if (std::filesystem::is_directory(path, error)) {
      for (const auto &entry :
           std::filesystem::recursive_directory_iterator(path, error))
        if (entry.is_regular_file() &&
            entry.path().string().ends_with(suffix))
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
    if (static_cast<std::int64_t>(data.bytes_.size()) >= maxBytes)
      break;
    std::ifstream in(file, std::ios::binary);
    std::vector<std::uint8_t> content((std::istreambuf_iterator<char>(in)),
                                      std::istreambuf_iterator<char>());
    auto room = static_cast<std::size_t>(maxBytes) - data.bytes_.size();
    data.bytes_.insert(data.bytes_.end(), content.begin(),
                       content.begin() + std::min(room, content.size()));
  }
  if (data.bytes_.size() < 1024)
    fail({}, "training data: only ", data.bytes_.size(),
         " bytes read from the given paths; need at least 1024");
  return data;
}

void TextData::batch(long step, std::uint64_t seed, int batch, int sequence,
                     int rank, int ranks, std::vector<std::int32_t> &ids,
                     std::vector<std::int32_t> &targets) const {
  if (batch % ranks != 0)
    fail({rank, -1, step}, "batch of ", batch,
         " sequences does not split over ", ranks, " ranks");
  std::int64_t span = size() - sequence - 1;
  if (span < 1)
    fail({rank, -1, step}, "training data of ", size(),
         " bytes is shorter than a sequence of ", sequence);
  int local = batch / ranks;
  ids.resize(static_cast<std::size_t>(local) * sequence);
  targets.resize(ids.size());
  for (int w = 0; w < local; ++w) {
    int window = rank * local + w;
    auto offset = static_cast<std::int64_t>(
        uniformAt(seed, static_cast<std::uint64_t>(step), window) * span);
    for (int i = 0; i < sequence; ++i) {
      ids[w * sequence + i] = bytes_[offset + i];
      targets[w * sequence + i] = bytes_[offset + i + 1];
    }
  }
}
