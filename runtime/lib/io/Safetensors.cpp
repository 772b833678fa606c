//===- Safetensors.cpp - read and write .safetensors files ----------------===//

#include "laer/runtime/io/Safetensors.h"
#include "laer/runtime/Error.h"
#include "laer/runtime/io/SafetensorsFiles.h"

#include <zlib.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <numeric>

using namespace laer::rt;

namespace {

/// Metadata key prefix of a tensor's CRC-32.
const std::string kChecksumPrefix = "crc32.";

/// The CRC-32 (zlib's) of `data`'s bytes, as 8 hex digits.
std::string checksum(std::span<const float> data) {
  uLong crc = crc32(0L, Z_NULL, 0);
  const auto *bytes = reinterpret_cast<const Bytef *>(data.data());
  std::size_t left = data.size() * sizeof(float);
  while (left > 0) { // zlib takes 32-bit lengths
    auto chunk = static_cast<uInt>(std::min<std::size_t>(left, 1u << 30));
    crc = crc32(crc, bytes, chunk);
    bytes += chunk;
    left -= chunk;
  }
  char text[9];
  std::snprintf(text, sizeof text, "%08lx", static_cast<unsigned long>(crc));
  return text;
}

} // namespace

void laer::rt::writeSafetensors(const std::string &path,
                                const TensorMap &tensors,
                                const Metadata &metadata) {
  SafetensorsPlan plan(FileDType::F32, ~std::uint64_t{0});
  for (const auto &[name, tensor] : tensors) {
    std::int64_t elements =
        std::accumulate(tensor.shape.begin(), tensor.shape.end(),
                        std::int64_t{1}, std::multiplies<>());
    if (elements != static_cast<std::int64_t>(tensor.data.size()))
      fail({}, "safetensors: tensor '", name, "' has ", tensor.data.size(),
           " elements but its shape holds ", elements);
    plan.add(name, tensor.shape);
  }
  // A CRC-32 of each tensor's bytes, checked by readSafetensors: a
  // corrupted checkpoint must not load as garbage.
  Metadata withChecksums = metadata;
  for (const auto &[name, tensor] : tensors)
    withChecksums[kChecksumPrefix + name] = checksum(tensor.data);
  plan.setMetadata(withChecksums);
  std::filesystem::path file(path);
  std::string directory =
      file.has_parent_path() ? file.parent_path().string() : ".";
  plan.finish(file.filename().string());
  plan.createFiles(directory, {});
  plan.open(directory, {});
  for (const auto &[name, tensor] : tensors) {
    std::int64_t size = static_cast<std::int64_t>(tensor.data.size());
    ElementRange whole{0, static_cast<std::uint64_t>(size), 0, 1};
    plan.write(name, std::span<const ElementRange>(&whole, 1), tensor.data, {});
  }
}

TensorMap laer::rt::readSafetensors(const std::string &path,
                                    Metadata *metadata) {
  SafetensorsFiles file(path, {});
  TensorMap tensors;
  for (const auto &[name, entry] : file.tensors()) {
    if (entry.dtype != FileDType::F32 || !entry.unsupportedType.empty())
      fail({}, "safetensors: tensor '", name, "' in '", path, "' is not F32");
    Float32Tensor tensor;
    tensor.shape = entry.shape;
    tensor.data.resize(entry.elements);
    file.read(entry, std::vector<ElementRange>{{0, entry.elements, 0, 1}},
              tensor.data);
    auto stored = file.metadata().find(kChecksumPrefix + name);
    if (stored != file.metadata().end()) {
      std::string found = checksum(tensor.data);
      if (found != stored->second)
        fail({}, "safetensors: tensor '", name, "' in '", path,
             "' fails its CRC-32 check (stored ", stored->second, ", read ",
             found, "): the file is corrupt");
    }
    tensors.emplace(name, std::move(tensor));
  }
  for (const auto &[key, value] : file.metadata())
    if (key.starts_with(kChecksumPrefix) &&
        !tensors.contains(key.substr(kChecksumPrefix.size())))
      fail({}, "safetensors: '", path, "' has a checksum for tensor '",
           key.substr(kChecksumPrefix.size()), "' but no such tensor");
  if (metadata) {
    *metadata = file.metadata();
    std::erase_if(*metadata, [](const auto &entry) {
      return entry.first.starts_with(kChecksumPrefix);
    });
  }
  return tensors;
}
