//===- Safetensors.cpp - read and write .safetensors files ----------------===//

#include "laer/runtime/Safetensors.h"
#include "laer/runtime/Error.h"
#include "laer/runtime/SafetensorsFiles.h"

#include <nlohmann/json.hpp>

#include <fstream>
#include <numeric>

using namespace laer::rt;

void laer::rt::writeSafetensors(const std::string &path,
                                const TensorMap &tensors,
                                const Metadata &metadata) {
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty())
    header["__metadata__"] = metadata;
  std::uint64_t offset = 0;
  for (const auto &[name, tensor] : tensors) {
    std::int64_t elements =
        std::accumulate(tensor.shape.begin(), tensor.shape.end(),
                        std::int64_t{1}, std::multiplies<>());
    if (elements != static_cast<std::int64_t>(tensor.data.size()))
      fail({}, "safetensors: tensor '", name, "' has ", tensor.data.size(),
           " elements but its shape holds ", elements);
    std::uint64_t bytes = tensor.data.size() * sizeof(float);
    header[name] = {{"dtype", "F32"},
                    {"shape", tensor.shape},
                    {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string text = header.dump();
  // Pad the header with spaces so the data starts 8-byte aligned.
  text.append((8 - text.size() % 8) % 8, ' ');
  std::ofstream out(path, std::ios::binary);
  std::uint64_t length = text.size();
  unsigned char prefix[8];
  for (int i = 0; i < 8; ++i)
    prefix[i] = static_cast<unsigned char>(length >> (8 * i));
  out.write(reinterpret_cast<const char *>(prefix), 8);
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
  for (const auto &[name, tensor] : tensors)
    out.write(reinterpret_cast<const char *>(tensor.data.data()),
              static_cast<std::streamsize>(tensor.data.size() * sizeof(float)));
  if (!out.flush())
    fail({}, "safetensors: cannot write '", path, "'");
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
    tensors.emplace(name, std::move(tensor));
  }
  if (metadata)
    *metadata = file.metadata();
  return tensors;
}
